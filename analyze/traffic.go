package analyze

import (
	"fmt"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// This file holds the checks on traffic-management settings: retries
// against timeouts, faults and mirrors that cannot do what they seem to,
// consistent hashing without a choice of hosts, and L4/L7 mix-ups.

// retryBudget reports WEFT0109 when the retries of an HTTP route cannot
// all run inside its timeout: Envoy's route timeout covers every attempt,
// so attempts beyond timeout/perTryTimeout never happen.
func (a *analyzer) retryBudget(o *config.Object, p string, r *networking.HTTPRoute) {
	rt := r.GetRetries()
	if r.GetTimeout() == nil || rt.GetPerTryTimeout() == nil || rt.GetAttempts() <= 0 {
		return
	}
	timeout, perTry := r.GetTimeout().AsDuration(), rt.GetPerTryTimeout().AsDuration()
	total := time.Duration(rt.GetAttempts()) * perTry
	if total <= timeout || perTry <= 0 {
		return
	}
	a.report(CodeRetryBudget, Warning, o, p+".retries",
		"retries.attempts (%d) × perTryTimeout (%s) = %s is longer than the route timeout (%s); the timeout cuts retries short, so at most %d attempt(s) can run in full",
		rt.GetAttempts(), perTry, total, timeout, int64(timeout/perTry))
}

// ineffectiveFault reports WEFT0111 for fault injections at 0%, which
// never fire, and for mirrors that copy requests to the route's own
// destination, which doubles the load on it for nothing.
func (a *analyzer) ineffectiveFault(o *config.Object, p string, r *networking.HTTPRoute) {
	if d := r.GetFault().GetDelay(); d != nil {
		if pc := d.GetPercentage(); (pc != nil && pc.GetValue() == 0) || (pc == nil && d.GetPercent() == 0) { //nolint:staticcheck // legacy field
			a.report(CodeIneffectiveFault, Warning, o, p+".fault.delay.percentage.value",
				"delay percentage is 0 or unset: no request will ever be delayed (set percentage.value)")
		}
	}
	if pc := r.GetFault().GetAbort().GetPercentage(); pc != nil && pc.GetValue() == 0 {
		a.report(CodeIneffectiveFault, Warning, o, p+".fault.abort.percentage.value",
			"abort percentage is 0: no request will ever be aborted")
	}
	mirrors := map[string]*networking.Destination{}
	if m := r.GetMirror(); m != nil {
		mirrors[p+".mirror"] = m
	}
	for j, m := range r.GetMirrors() {
		if m.GetDestination() != nil {
			mirrors[fmt.Sprintf("%s.mirrors[%d].destination", p, j)] = m.GetDestination()
		}
	}
	for _, field := range sortedKeys(mirrors) {
		m := mirrors[field]
		for _, d := range r.GetRoute() {
			if a.sameDestination(o.Meta.Namespace, m, d.GetDestination()) {
				a.report(CodeIneffectiveFault, Warning, o, field,
					"mirror to %s, which the route already sends its traffic to; every request is handled twice by the same destination",
					describeDestination(a.s.ResolveHost(o.Meta.Namespace, m.GetHost()), m))
				break
			}
		}
	}
}

// sameDestination reports whether two destinations name the same cluster;
// an unset port matches any.
func (a *analyzer) sameDestination(ns string, x, y *networking.Destination) bool {
	if x == nil || y == nil {
		return false
	}
	px, py := x.GetPort().GetNumber(), y.GetPort().GetNumber()
	return a.s.ResolveHost(ns, x.GetHost()) == a.s.ResolveHost(ns, y.GetHost()) &&
		x.GetSubset() == y.GetSubset() && (px == 0 || py == 0 || px == py)
}

func describeDestination(host string, d *networking.Destination) string {
	s := host
	if d.GetSubset() != "" {
		s += " subset " + d.GetSubset()
	}
	if n := d.GetPort().GetNumber(); n != 0 {
		s += fmt.Sprintf(" port %d", n)
	}
	return s
}

// opaqueProtocols are port protocols that do not carry plain HTTP.
var opaqueProtocols = map[string]bool{"TCP": true, "TLS": true, "MONGO": true, "MYSQL": true, "REDIS": true, "UDP": true}

// destinationPort returns the service port a destination means: its own
// port, or the service's only one.
func destinationPort(svc *model.Service, d *networking.Destination) *model.Port {
	n := d.GetPort().GetNumber()
	if n == 0 && len(svc.Ports) == 1 {
		return svc.Ports[0]
	}
	for _, p := range svc.Ports {
		if p.Number == n {
			return p
		}
	}
	return nil
}

// httpToTCPPort reports WEFT0112 for an http route (or mirror) whose
// destination port is declared TCP or another non-HTTP protocol: the proxy
// would speak HTTP to something that expects raw bytes.
func (a *analyzer) httpToTCPPort(o *config.Object, p string, r *networking.HTTPRoute) {
	check := func(field string, d *networking.Destination) {
		svc := a.s.Service(a.s.ResolveHost(o.Meta.Namespace, d.GetHost()))
		if svc == nil {
			return
		}
		if port := destinationPort(svc, d); port != nil && opaqueProtocols[port.Protocol] {
			a.report(CodeProtocolMismatch, Warning, o, field,
				"http route to port %d of %s, which the service declares as %s; HTTP requests will not be understood there (use a tcp route, or declare the port HTTP)",
				port.Number, svc.Hostname, port.Protocol)
		}
	}
	for j, d := range r.GetRoute() {
		check(fmt.Sprintf("%s.route[%d].destination", p, j), d.GetDestination())
	}
	if m := r.GetMirror(); m != nil {
		check(p+".mirror", m)
	}
}

// tcpOnHTTPPort reports WEFT0112 for a mesh VirtualService's tcp route on
// a port its host declares as HTTP: sidecars route such a port with the
// http section, so the tcp route never applies. Gateway-bound routes are
// not checked, since their match ports are Gateway ports.
func (a *analyzer) tcpOnHTTPPort(o *config.Object, vs *networking.VirtualService) {
	if !boundToMesh(vs) {
		return
	}
	var svcs []*model.Service
	for _, h := range vs.GetHosts() {
		if svc := a.s.Service(a.s.ResolveHost(o.Meta.Namespace, h)); svc != nil {
			svcs = append(svcs, svc)
		}
	}
	for i, r := range vs.GetTcp() {
		p := fmt.Sprintf("spec.tcp[%d]", i)
		ported := false
		for j, m := range r.GetMatch() {
			if m.GetPort() == 0 {
				continue
			}
			ported = true
			for _, svc := range svcs {
				for _, port := range svc.Ports {
					if port.Number == m.GetPort() && port.IsHTTP() {
						a.report(CodeProtocolMismatch, Warning, o, fmt.Sprintf("%s.match[%d].port", p, j),
							"tcp route on port %d of %s, which the service declares as %s; requests to that port are routed by the http section, so this route never applies",
							port.Number, svc.Hostname, protocolName(port))
					}
				}
			}
		}
		if ported {
			continue
		}
		for _, svc := range svcs {
			if len(svc.Ports) > 0 && allHTTP(svc.Ports) {
				a.report(CodeProtocolMismatch, Warning, o, p,
					"tcp route for %s, whose ports are all HTTP (%s); requests are routed by the http section, so this route never applies",
					svc.Hostname, portList(svc))
			}
		}
	}
}

func boundToMesh(vs *networking.VirtualService) bool {
	return len(vs.GetGateways()) == 0 || contains(vs.GetGateways(), meshGateway)
}

func allHTTP(ports []*model.Port) bool {
	for _, p := range ports {
		if !p.IsHTTP() {
			return false
		}
	}
	return true
}

func protocolName(p *model.Port) string {
	if p.Protocol == "" {
		return "HTTP (no protocol given)"
	}
	return p.Protocol
}

// hashEffect reports WEFT0110 for consistentHash settings whose set of
// endpoints has fewer than two members: there is nothing to choose between,
// so the hash (and any session affinity it was meant for) has no effect.
// A subset's setting counts the endpoints with the subset's labels. DNS
// services are skipped, since one endpoint may resolve to many addresses.
func (a *analyzer) hashEffect() {
	for _, o := range a.s.Objects(config.KindDestinationRule) {
		dr, ok := o.Spec.(*networking.DestinationRule)
		if !ok {
			continue
		}
		host := a.s.ResolveHost(o.Meta.Namespace, dr.GetHost())
		svc := a.s.Service(host)
		if svc == nil || svc.Resolution == networking.ServiceEntry_DNS || svc.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN ||
			svc.Resolution == networking.ServiceEntry_NONE && len(svc.Endpoints) == 0 {
			continue
		}
		a.policyHash(o, "spec.trafficPolicy", dr.GetTrafficPolicy(), svc, nil, "service "+host)
		for i, ss := range dr.GetSubsets() {
			a.policyHash(o, fmt.Sprintf("spec.subsets[%d].trafficPolicy", i), ss.GetTrafficPolicy(), svc, ss.GetLabels(),
				fmt.Sprintf("subset %q of %s", ss.GetName(), host))
		}
	}
}

func (a *analyzer) policyHash(o *config.Object, p string, tp *networking.TrafficPolicy, svc *model.Service, labels map[string]string, what string) {
	if tp == nil {
		return
	}
	n := 0
	for _, e := range svc.Endpoints {
		if e.Matches(labels) {
			n++
		}
	}
	if n > 1 {
		return
	}
	report := func(field string) {
		a.report(CodeHashNoEffect, Info, o, field,
			"consistentHash has no effect: %s has %d endpoint(s), and hashing only chooses between two or more", what, n)
	}
	if tp.GetLoadBalancer().GetConsistentHash() != nil {
		report(p + ".loadBalancer.consistentHash")
	}
	for k, pl := range tp.GetPortLevelSettings() {
		if pl.GetLoadBalancer().GetConsistentHash() != nil {
			report(fmt.Sprintf("%s.portLevelSettings[%d].loadBalancer.consistentHash", p, k))
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Field paths: natural order keeps mirrors[2] before mirrors[10].
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && naturalLess(keys[j], keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
