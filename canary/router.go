package canary

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/store"
)

// Router routes a Canary's traffic the way Flagger's Istio router does: one
// VirtualService for the apex service (the one named like it, or the one
// routing its host, taken over) sending weighted traffic to the primary and
// canary services, and a DestinationRule for each of those carrying
// spec.service.trafficPolicy. It writes them through the store, the same
// in every mode.
type Router struct {
	Store store.Store
}

// Routes returns the weights the VirtualService gives the primary and the
// canary, and whether it mirrors to the canary. Before the takeover, all
// traffic is the primary's.
func (r *Router) Routes(ctx context.Context, cd *config.Object, h Hosts) (primary, canary int, mirrored bool, err error) {
	vs, owned, err := r.apex(ctx, cd, h)
	if err != nil || !owned {
		return totalWeight, 0, false, err
	}
	spec := vs.Spec.(*networking.VirtualService)
	for _, route := range spec.GetHttp() {
		found := false
		for _, d := range route.GetRoute() {
			switch d.GetDestination().GetHost() {
			case h.Primary:
				primary, found = int(d.GetWeight()), true
			case h.Canary:
				canary, found = int(d.GetWeight()), true
			}
		}
		if found {
			// The first route holding both is the one weights are set on
			// (with an A/B test, the route of the matched requests).
			return primary, canary, route.GetMirror().GetHost() == h.Canary, nil
		}
	}
	return totalWeight, 0, false, nil
}

// SetRoutes writes the VirtualService with these weights and the
// DestinationRules, in one store transaction.
func (r *Router) SetRoutes(ctx context.Context, cd *config.Object, h Hosts, primary, canary int, mirrored bool) error {
	vs, _, err := r.apex(ctx, cd, h)
	if err != nil {
		return err
	}
	name := h.Apex
	if vs != nil {
		name = vs.Meta.Name
	}
	objs := []*config.Object{r.virtualService(cd, name, h, primary, canary, mirrored)}
	svc := cd.Spec.(*flaggerv1beta1.Canary).GetService()
	for _, host := range []string{h.Primary, h.Canary} {
		dr := &networking.DestinationRule{Host: host}
		if tp := svc.GetTrafficPolicy(); tp != nil {
			dr.TrafficPolicy = proto.Clone(tp).(*networking.TrafficPolicy)
		}
		objs = append(objs, owned(cd, config.KindDestinationRule, host, nil, dr))
	}
	return apply(ctx, r.Store, objs)
}

// apex finds the VirtualService of the apex service (see findApex).
func (r *Router) apex(ctx context.Context, cd *config.Object, h Hosts) (vs *config.Object, owned bool, err error) {
	list, _, err := r.Store.List(ctx, config.KindVirtualService, cd.Meta.Namespace)
	if err != nil {
		return nil, false, fmt.Errorf("list VirtualServices: %w", err)
	}
	return findApex(list, cd, h)
}

// findApex picks, from VirtualServices of the Canary's namespace, the one
// the Canary already owns, else the one named like the apex service, else
// the only one routing the service's host for the mesh. owned reports the
// first case; nil when there is none.
func findApex(list []*config.Object, cd *config.Object, h Hosts) (vs *config.Object, owned bool, err error) {
	ns := cd.Meta.Namespace
	var named, routingObj *config.Object
	var routing []string
	for _, o := range list {
		if ownedBy(o, cd) {
			return o, true, nil
		}
		if o.Meta.Name == h.Apex {
			named = o
			continue
		}
		spec := o.Spec.(*networking.VirtualService)
		if bindsMesh(spec.GetGateways()) && routesHost(spec.GetHosts(), h.Apex, ns) {
			routing = append(routing, o.Meta.Name)
			routingObj = o
		}
	}
	switch {
	case named != nil:
		return named, false, nil
	case len(routing) == 1:
		return routingObj, false, nil
	case len(routing) > 1:
		sort.Strings(routing)
		return nil, false, fmt.Errorf("VirtualServices %s all route %s; weft takes one over for the Canary: keep one, or name one %s",
			strings.Join(routing, ", "), h.Apex, h.Apex)
	}
	return nil, false, nil
}

func bindsMesh(gateways []string) bool {
	if len(gateways) == 0 {
		return true
	}
	for _, g := range gateways {
		if g == "mesh" {
			return true
		}
	}
	return false
}

// routesHost reports whether hosts (written in namespace ns) name the
// service name of namespace ns.
func routesHost(hosts []string, name, ns string) bool {
	for _, h := range hosts {
		if h == name || h == name+"."+ns || h == name+"."+ns+".svc" || h == name+"."+ns+"."+model.DomainSuffix {
			return true
		}
	}
	return false
}

// virtualService renders Flagger's VirtualService for the apex service.
func (r *Router) virtualService(cd *config.Object, name string, h Hosts, primary, canary int, mirrored bool) *config.Object {
	spec := cd.Spec.(*flaggerv1beta1.Canary)
	svc, a := spec.GetService(), spec.GetAnalysis()
	hosts := dedupe(append([]string{h.Apex}, svc.GetHosts()...))
	var gateways []string
	if len(svc.GetGateways()) > 0 {
		// Unlike Kubernetes, where the apex Service itself selects only the
		// primary, the local apex service has every version behind it: the
		// mesh must keep going through this route.
		gateways = dedupe(append(append([]string{}, svc.GetGateways()...), "mesh"))
	}
	dest := func(host string, w int) *networking.HTTPRouteDestination {
		return &networking.HTTPRouteDestination{Destination: &networking.Destination{Host: host, Port: &networking.PortSelector{Number: h.Port}}, Weight: int32(w)}
	}
	route := func(match []*networking.HTTPMatchRequest, dests ...*networking.HTTPRouteDestination) *networking.HTTPRoute {
		rt := &networking.HTTPRoute{
			Match: match, Route: dests, Rewrite: svc.GetRewrite(), Retries: svc.GetRetries(), Headers: svc.GetHeaders(), CorsPolicy: svc.GetCorsPolicy(),
		}
		if t, err := time.ParseDuration(svc.GetTimeout()); err == nil && t > 0 {
			rt.Timeout = durationpb.New(t)
		}
		return proto.Clone(rt).(*networking.HTTPRoute)
	}
	main := route(svc.GetMatch(), dest(h.Primary, primary), dest(h.Canary, canary))
	if mirrored {
		main.Mirror = &networking.Destination{Host: h.Canary, Port: &networking.PortSelector{Number: h.Port}}
		if w := a.GetMirrorWeight(); w > 0 {
			main.MirrorPercentage = &networking.Percent{Value: float64(w)}
		}
	}
	vs := &networking.VirtualService{Hosts: hosts, Gateways: gateways}
	if len(a.GetMatch()) > 0 {
		// A/B test: the matched requests take the weights, the rest stay
		// on the primary.
		vs.Http = []*networking.HTTPRoute{
			route(mergeMatches(a.GetMatch(), svc.GetMatch()), dest(h.Primary, primary), dest(h.Canary, canary)),
			route(svc.GetMatch(), dest(h.Primary, totalWeight)),
		}
	} else {
		vs.Http = []*networking.HTTPRoute{main}
	}
	return owned(cd, config.KindVirtualService, name, svc.GetApex(), vs)
}

// mergeMatches ANDs every A/B condition with every service match (each
// HTTPMatchRequest is a conjunction, a list of them a disjunction).
func mergeMatches(ab, svc []*networking.HTTPMatchRequest) []*networking.HTTPMatchRequest {
	if len(svc) == 0 {
		return ab
	}
	var out []*networking.HTTPMatchRequest
	for _, a := range ab {
		for _, s := range svc {
			m := proto.Clone(s).(*networking.HTTPMatchRequest)
			proto.Merge(m, a)
			out = append(out, m)
		}
	}
	return out
}

// owned builds an object the Canary owns, with the Canary's custom
// metadata (spec.service.apex/primary/canary).
func owned(cd *config.Object, kind config.Kind, name string, meta *flaggerv1beta1.CustomMetadata, spec proto.Message) *config.Object {
	o := &config.Object{Kind: kind, Meta: config.Meta{Namespace: cd.Meta.Namespace, Name: name, Labels: map[string]string{}, Annotations: map[string]string{}}, Spec: spec}
	info, _ := config.LookupKind(string(kind))
	o.APIVersion = info.PreferredAPIVersion()
	for k, v := range meta.GetLabels() {
		o.Meta.Labels[k] = v
	}
	for k, v := range meta.GetAnnotations() {
		o.Meta.Annotations[k] = v
	}
	o.Meta.Annotations[AnnotationOwner] = cd.Meta.Name
	if len(o.Meta.Labels) == 0 {
		o.Meta.Labels = nil
	}
	return o
}

func ownedBy(o, cd *config.Object) bool {
	return o.Meta.Namespace == cd.Meta.Namespace && o.Meta.Annotations[AnnotationOwner] == cd.Meta.Name
}

// apply validates what weft generated, as any input, then writes it in one
// transaction; objects already as wanted are left alone by the store.
func apply(ctx context.Context, st store.Store, objs []*config.Object) error {
	var errs config.ErrorList
	for _, o := range objs {
		errs = append(errs, config.Validate(o)...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("generated configuration is invalid: %w", errs)
	}
	if _, err := st.Apply(ctx, objs); err != nil {
		return fmt.Errorf("write routing: %w", err)
	}
	return nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
