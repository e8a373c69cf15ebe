package translate

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	networking "istio.io/api/networking/v1alpha3"
)

// mirrorPolicies translates mirror (with mirrorPercentage, or the legacy
// mirrorPercent) and mirrors[]. An unset percentage mirrors everything; an
// explicit 0 mirrors nothing, so no policy is emitted. Mirror clusters are
// named like any other destination's.
func (g *generator) mirrorPolicies(ns string, hr *networking.HTTPRoute, sc routeScope) []*route.RouteAction_RequestMirrorPolicy {
	var out []*route.RouteAction_RequestMirrorPolicy
	add := func(d *networking.Destination, pct *typev3.FractionalPercent) {
		if d == nil || pct.GetNumerator() == 0 {
			return
		}
		out = append(out, &route.RouteAction_RequestMirrorPolicy{
			Cluster:         g.destinationCluster(ns, d, sc),
			RuntimeFraction: &core.RuntimeFractionalPercent{DefaultValue: pct},
		})
	}
	if m := hr.GetMirror(); m != nil {
		pct := fraction(hr.GetMirrorPercentage(), 100)
		if hr.GetMirrorPercentage() == nil && hr.GetMirrorPercent() != nil { //nolint:staticcheck // legacy field, still accepted
			pct = percentOf(float64(hr.GetMirrorPercent().GetValue())) //nolint:staticcheck
		}
		add(m, pct)
	}
	for _, m := range hr.GetMirrors() {
		add(m.GetDestination(), fraction(m.GetPercentage(), 100))
	}
	return out
}
