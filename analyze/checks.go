package analyze

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// meshGateway is the reserved gateway name for sidecars.
const meshGateway = "mesh"

// binding is one (gateway, host) pair a VirtualService claims.
type binding struct{ gateway, host string }

// claim is a VirtualService's claim on a binding, with where it was written.
type claim struct {
	vs    *config.Object
	field string
}

func (a *analyzer) virtualServices() {
	claims := map[binding][]claim{}
	for _, o := range a.s.Objects(config.KindVirtualService) {
		vs, ok := o.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		ns := o.Meta.Namespace
		bound := []string{meshGateway}
		if len(vs.GetGateways()) > 0 {
			bound = nil
			for i, g := range vs.GetGateways() {
				a.gatewayRef(o, fmt.Sprintf("spec.gateways[%d]", i), g)
				bound = append(bound, qualifyGateway(ns, g))
			}
		}
		for i, h := range vs.GetHosts() {
			host := a.s.ResolveHost(ns, h)
			for _, g := range dedupe(bound) {
				b := binding{g, host}
				claims[b] = append(claims[b], claim{o, fmt.Sprintf("spec.hosts[%d]", i)})
			}
		}
		for i, r := range vs.GetHttp() {
			p := fmt.Sprintf("spec.http[%d]", i)
			for j, m := range r.GetMatch() {
				for k, g := range m.GetGateways() {
					a.gatewayRef(o, fmt.Sprintf("%s.match[%d].gateways[%d]", p, j, k), g)
				}
			}
			var weights []int32
			for j, d := range r.GetRoute() {
				a.destination(o, fmt.Sprintf("%s.route[%d].destination", p, j), d.GetDestination())
				weights = append(weights, d.GetWeight())
			}
			a.weights(o, p+".route", weights)
			if m := r.GetMirror(); m != nil {
				a.destination(o, p+".mirror", m)
			}
			for j, m := range r.GetMirrors() {
				a.destination(o, fmt.Sprintf("%s.mirrors[%d].destination", p, j), m.GetDestination())
			}
			a.retryBudget(o, p, r)
			a.ineffectiveFault(o, p, r)
			a.httpToTCPPort(o, p, r)
		}
		a.tcpOnHTTPPort(o, vs)
		a.l4Routes(o, "spec.tcp", tcpRoutes(vs.GetTcp()))
		a.l4Routes(o, "spec.tls", tlsRoutes(vs.GetTls()))
	}
	a.conflicts(claims)
}

func tcpRoutes(rs []*networking.TCPRoute) [][]*networking.RouteDestination {
	out := make([][]*networking.RouteDestination, len(rs))
	for i, r := range rs {
		out[i] = r.GetRoute()
	}
	return out
}

func tlsRoutes(rs []*networking.TLSRoute) [][]*networking.RouteDestination {
	out := make([][]*networking.RouteDestination, len(rs))
	for i, r := range rs {
		out[i] = r.GetRoute()
	}
	return out
}

// l4Routes checks the destinations of TCP or TLS routes under base.
func (a *analyzer) l4Routes(o *config.Object, base string, routes [][]*networking.RouteDestination) {
	for i, route := range routes {
		p := fmt.Sprintf("%s[%d].route", base, i)
		var weights []int32
		for j, d := range route {
			a.destination(o, fmt.Sprintf("%s[%d].destination", p, j), d.GetDestination())
			weights = append(weights, d.GetWeight())
		}
		a.weights(o, p, weights)
	}
}

// qualifyGateway turns a gateway reference written in namespace ns into
// "NS/NAME", or "mesh".
func qualifyGateway(ns, g string) string {
	if g == meshGateway || strings.Contains(g, "/") {
		return g
	}
	return ns + "/" + g
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// gatewayRef reports WEFT0105 when g names a Gateway that does not exist.
func (a *analyzer) gatewayRef(o *config.Object, field, g string) {
	if g == meshGateway || g == "" {
		return
	}
	ns, name, _ := strings.Cut(qualifyGateway(o.Meta.Namespace, g), "/")
	if a.s.Object(config.KindGateway, ns, name) == nil {
		a.report(CodeUnknownGateway, Error, o, field,
			"gateway %s/%s does not exist; routes bound to it are not served by any gateway", ns, name)
	}
}

// destination checks one destination at field: its host (WEFT0102), its
// subset (WEFT0101) and its port (WEFT0107).
func (a *analyzer) destination(o *config.Object, field string, d *networking.Destination) {
	if d.GetHost() == "" {
		return // validation reports it
	}
	host := a.s.ResolveHost(o.Meta.Namespace, d.GetHost())
	if !a.knownHost(host) {
		a.report(CodeUnknownHost, Warning, o, field+".host",
			"host %s is not defined by any ServiceEntry; requests to it will fail with 503", describeHost(d.GetHost(), host))
	}
	if ss := d.GetSubset(); ss != "" {
		dr := a.s.DestinationRule(o.Meta.Namespace, host)
		switch {
		case dr == nil:
			a.report(CodeUndefinedSubset, Warning, o, field+".subset",
				"subset %q is not defined by any DestinationRule for host %s; requests will fail with 503", ss, host)
		case model.Subset(dr, ss) == nil:
			a.report(CodeUndefinedSubset, Warning, o, field+".subset",
				"subset %q is not defined by DestinationRule %s/%s, which applies to host %s; requests will fail with 503",
				ss, dr.Meta.Namespace, dr.Meta.Name, host)
		}
	}
	svc := a.s.Service(host)
	if svc == nil {
		return
	}
	if n := d.GetPort().GetNumber(); n != 0 {
		for _, p := range svc.Ports {
			if p.Number == n {
				return
			}
		}
		a.report(CodeUnknownPort, Warning, o, field+".port.number",
			"port %d is not a port of service %s (ports: %s); requests will fail with 503", n, host, portList(svc))
		return
	}
	if len(svc.Ports) > 1 {
		a.report(CodeUnknownPort, Warning, o, field,
			"service %s has several ports (%s); set port.number to say which one this destination means", host, portList(svc))
	}
}

func describeHost(written, resolved string) string {
	if written == resolved {
		return resolved
	}
	return fmt.Sprintf("%q (%s)", written, resolved)
}

func portList(svc *model.Service) string {
	ps := make([]string, len(svc.Ports))
	for i, p := range svc.Ports {
		ps[i] = fmt.Sprint(p.Number)
	}
	return strings.Join(ps, ", ")
}

// weights reports WEFT0103 when a route's weights do not sum to 100. A
// single destination without a weight takes all traffic, as in Istio.
func (a *analyzer) weights(o *config.Object, field string, ws []int32) {
	if len(ws) == 0 || len(ws) == 1 && (ws[0] == 0 || ws[0] == 100) {
		return
	}
	var sum int32
	for _, w := range ws {
		sum += w
	}
	if sum != 100 {
		a.report(CodeWeightSum, Warning, o, field,
			"weights of %d destinations sum to %d, not 100; traffic will not be split as the weights suggest", len(ws), sum)
	}
}

// maxNamed caps how many other VirtualServices one WEFT0104 message names.
// Naming them all would make n messages of n names each for n
// VirtualServices on one host: quadratic output from linear input.
const maxNamed = 3

// conflicts reports WEFT0104 on every VirtualService that shares a
// (gateway, host) pair with another, naming up to maxNamed of the others
// (the first by namespace/name) and counting the rest.
func (a *analyzer) conflicts(claims map[binding][]claim) {
	for b, cs := range claims {
		if len(cs) < 2 {
			continue
		}
		names := make([]string, 0, len(cs))
		for _, c := range cs {
			names = append(names, c.vs.Meta.Namespace+"/"+c.vs.Meta.Name)
		}
		sort.Strings(names)
		names = slices.Compact(names)
		if len(names) < 2 {
			continue // one VirtualService naming a host twice is not a conflict between objects
		}
		for _, c := range cs {
			self := c.vs.Meta.Namespace + "/" + c.vs.Meta.Name
			listed := make([]string, 0, maxNamed)
			for _, n := range names {
				if len(listed) == maxNamed {
					break
				}
				if n != self {
					listed = append(listed, n)
				}
			}
			others := strings.Join(listed, ", ")
			if rest := len(names) - 1 - len(listed); rest > 0 {
				others += fmt.Sprintf(" and %d more", rest)
			}
			a.report(CodeConflictingRoutes, Warning, c.vs, c.field,
				"host %s on gateway %s is also routed by VirtualService %s; only one VirtualService per host and gateway is applied predictably",
				b.host, b.gateway, others)
		}
	}
}

// destinationRules reports WEFT0106 for subsets that select no endpoints.
func (a *analyzer) destinationRules() {
	for _, o := range a.s.Objects(config.KindDestinationRule) {
		dr, ok := o.Spec.(*networking.DestinationRule)
		if !ok {
			continue
		}
		host := a.s.ResolveHost(o.Meta.Namespace, dr.GetHost())
		svc := a.s.Service(host)
		if svc == nil || svc.Resolution == networking.ServiceEntry_NONE && len(svc.Endpoints) == 0 {
			continue // unknown hosts and passthrough services have no endpoints to select
		}
		for i, ss := range dr.GetSubsets() {
			if len(ss.GetLabels()) == 0 || anyMatches(svc.Endpoints, ss.GetLabels()) {
				continue
			}
			a.report(CodeEmptySubset, Info, o, fmt.Sprintf("spec.subsets[%d]", i),
				"subset %q selects no endpoints of %s (none has labels %s); requests routed to it will fail with 503",
				ss.GetName(), host, labelString(ss.GetLabels()))
		}
	}
}

func anyMatches(eps []*model.Endpoint, sel map[string]string) bool {
	for _, e := range eps {
		if e.Matches(sel) {
			return true
		}
	}
	return false
}

func labelString(labels map[string]string) string {
	kv := make([]string, 0, len(labels))
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// serviceEntries reports WEFT0108 for hosts that more than one ServiceEntry
// defines: the model keeps the first (by namespace/name) and drops the rest.
func (a *analyzer) serviceEntries() {
	owner := map[string]*config.Object{}
	for _, o := range a.s.Objects(config.KindServiceEntry) {
		se, ok := o.Spec.(*networking.ServiceEntry)
		if !ok {
			continue
		}
		for i, h := range se.GetHosts() {
			first, dup := owner[h]
			switch {
			case !dup:
				owner[h] = o
			case first != o:
				a.report(CodeDuplicateHost, Warning, o, fmt.Sprintf("spec.hosts[%d]", i),
					"host %s is already defined by ServiceEntry %s/%s; this entry is ignored for it",
					h, first.Meta.Namespace, first.Meta.Name)
			}
		}
	}
}
