package analyze

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
	maistrav1 "github.com/weft-mesh/weft/config/apis/maistra/v1"
	"github.com/weft-mesh/weft/model"
)

// The ingress gateway's identity, as the control plane's CA issues it
// (docs/ARCHITECTURE.md, "Identity, CA and SDS").
const (
	gatewayNamespace      = model.RootNamespace
	gatewayServiceAccount = "istio-ingressgateway-service-account"
	defaultServiceAccount = "default"
)

// workload is one instance the registry knows, as policies see it.
type workload struct {
	namespace, name string
	sa              string
	labels          map[string]string
	ports           map[uint32]bool // every number a policy may mean: endpoint, target and service ports
}

// workloads lists the WorkloadEntries and the inline endpoints that name
// their workload (pods), with the ports they serve through the services
// that select them.
func (a *analyzer) workloads() []*workload {
	if a.wls != nil {
		return a.wls
	}
	byKey := map[string]*workload{}
	for _, o := range a.s.Objects(config.KindWorkloadEntry) {
		we, ok := o.Spec.(*networking.WorkloadEntry)
		if !ok {
			continue
		}
		labels := map[string]string{}
		for k, v := range o.Meta.Labels {
			labels[k] = v
		}
		for k, v := range we.GetLabels() {
			labels[k] = v
		}
		sa := we.GetServiceAccount()
		if sa == "" {
			sa = defaultServiceAccount
		}
		w := &workload{namespace: o.Meta.Namespace, name: o.Meta.Name, sa: sa, labels: labels, ports: map[uint32]bool{}}
		for _, p := range we.GetPorts() {
			w.ports[p] = true
		}
		byKey[w.namespace+"/"+w.name] = w
		a.wls = append(a.wls, w)
	}
	for _, svc := range a.s.Services() {
		for _, ep := range svc.Endpoints {
			w := byKey[ep.Namespace+"/"+ep.Workload]
			if w == nil && ep.Workload == "" && ep.Labels[config.LabelWorkload] != "" {
				// An inline endpoint naming its workload is an instance of
				// one: a pod, in Kubernetes mode (one per address, however
				// many services select it).
				key := ep.Namespace + "/" + ep.Address
				if w = byKey[key]; w == nil {
					sa := ep.ServiceAccount
					if sa == "" {
						sa = defaultServiceAccount
					}
					w = &workload{namespace: ep.Namespace, name: ep.Labels[config.LabelWorkload], sa: sa, labels: ep.Labels, ports: map[uint32]bool{}}
					byKey[key] = w
					a.wls = append(a.wls, w)
				}
			}
			if w == nil {
				continue // another inline endpoint: not a proxy policies apply to
			}
			for _, p := range svc.Ports {
				w.ports[ep.PortFor(p)], w.ports[p.Number] = true, true
				if p.TargetPort != 0 {
					w.ports[p.TargetPort] = true
				}
			}
		}
	}
	if a.wls == nil {
		a.wls = []*workload{}
	}
	return a.wls
}

func (a *analyzer) security() {
	a.authorizationPolicies()
	a.mtlsConflicts()
	a.portLevelMTLS()
	a.memberRolls()
}

// authorizationPolicies reports WEFT0201: exact principals and namespaces
// that no workload of the registry (nor the ingress gateway) has.
func (a *analyzer) authorizationPolicies() {
	identities := map[string]bool{gatewayNamespace + "/" + gatewayServiceAccount: true}
	namespaces := map[string]bool{gatewayNamespace: true}
	for _, w := range a.workloads() {
		identities[w.namespace+"/"+w.sa] = true
		namespaces[w.namespace] = true
	}
	checkPrincipal := func(o *config.Object, field, p string) {
		if strings.Contains(p, "*") {
			return
		}
		parts := strings.Split(p, "/")
		if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
			a.report(CodeUnknownPrincipal, Warning, o, field,
				"principal %q is not of the form TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT, so no workload has it", p)
			return
		}
		if !identities[parts[2]+"/"+parts[4]] {
			a.report(CodeUnknownPrincipal, Warning, o, field,
				"no workload runs as service account %s in namespace %s, so principal %q matches no caller (yet)", parts[4], parts[2], p)
		}
	}
	checkNamespace := func(o *config.Object, field, ns string) {
		if !strings.Contains(ns, "*") && !namespaces[ns] {
			a.report(CodeUnknownPrincipal, Warning, o, field,
				"namespace %s has no workloads, so this value matches no caller (yet)", ns)
		}
	}
	for _, o := range a.s.Objects(config.KindAuthorizationPolicy) {
		ap, ok := o.Spec.(*security.AuthorizationPolicy)
		if !ok {
			continue
		}
		for i, r := range ap.GetRules() {
			rp := fmt.Sprintf("spec.rules[%d]", i)
			for j, f := range r.GetFrom() {
				sp := fmt.Sprintf("%s.from[%d].source", rp, j)
				for k, p := range f.GetSource().GetPrincipals() {
					checkPrincipal(o, fmt.Sprintf("%s.principals[%d]", sp, k), p)
				}
				for k, ns := range f.GetSource().GetNamespaces() {
					checkNamespace(o, fmt.Sprintf("%s.namespaces[%d]", sp, k), ns)
				}
			}
			for j, c := range r.GetWhen() {
				for k, val := range c.GetValues() {
					field := fmt.Sprintf("%s.when[%d].values[%d]", rp, j, k)
					switch c.GetKey() {
					case "source.principal":
						checkPrincipal(o, field, val)
					case "source.namespace":
						checkNamespace(o, field, val)
					}
				}
			}
		}
	}
}

// mtlsConflicts reports WEFT0202: a DestinationRule that sends plaintext
// or one-way TLS to sidecars whose PeerAuthentication is STRICT.
func (a *analyzer) mtlsConflicts() {
	for _, o := range a.s.Objects(config.KindDestinationRule) {
		dr, ok := o.Spec.(*networking.DestinationRule)
		if !ok {
			continue
		}
		svc := a.s.Service(a.s.ResolveHost(o.Meta.Namespace, dr.GetHost()))
		if svc == nil {
			continue
		}
		a.tlsScope(o, svc, "spec.trafficPolicy", dr.GetTrafficPolicy(), nil)
		for i, ss := range dr.GetSubsets() {
			if len(ss.GetLabels()) > 0 {
				a.tlsScope(o, svc, fmt.Sprintf("spec.subsets[%d].trafficPolicy", i), ss.GetTrafficPolicy(), ss.GetLabels())
			}
		}
	}
}

// tlsScope checks one trafficPolicy's tls settings against the endpoints
// (those with subset labels, if given) they apply to.
func (a *analyzer) tlsScope(o *config.Object, svc *model.Service, field string, tp *networking.TrafficPolicy, subset map[string]string) {
	if tp == nil {
		return
	}
	overridden := map[uint32]bool{}
	for i, pl := range tp.GetPortLevelSettings() {
		if pl.GetTls() == nil {
			continue
		}
		n := pl.GetPort().GetNumber()
		overridden[n] = true
		for _, p := range svc.Ports {
			if p.Number == n {
				a.tlsConflict(o, fmt.Sprintf("%s.portLevelSettings[%d].tls.mode", field, i), pl.GetTls(), svc, []*model.Port{p}, subset)
			}
		}
	}
	if tp.GetTls() != nil {
		var ports []*model.Port
		for _, p := range svc.Ports {
			if !overridden[p.Number] {
				ports = append(ports, p)
			}
		}
		a.tlsConflict(o, field+".tls.mode", tp.GetTls(), svc, ports, subset)
	}
}

func (a *analyzer) tlsConflict(o *config.Object, field string, tls *networking.ClientTLSSettings, svc *model.Service, ports []*model.Port, subset map[string]string) {
	mode := tls.GetMode()
	if mode != networking.ClientTLSSettings_DISABLE && mode != networking.ClientTLSSettings_SIMPLE {
		return
	}
	var hit []string
	for _, ep := range svc.Endpoints {
		if !ep.Sidecar || !ep.Matches(subset) {
			continue
		}
		for _, p := range ports {
			port := ep.PortFor(p)
			if a.s.InboundMTLS(ep.Namespace, ep.Labels, port) == model.MTLSStrict {
				hit = append(hit, fmt.Sprintf("%s/%s:%d", ep.Namespace, endpointName(ep), port))
			}
		}
	}
	if len(hit) == 0 {
		return
	}
	what := "plaintext"
	if mode == networking.ClientTLSSettings_SIMPLE {
		what = "TLS without the mesh's client certificate"
	}
	a.report(CodeMTLSConflict, Error, o, field,
		"tls mode %s sends %s to %s, which require mutual TLS (PeerAuthentication STRICT); those requests will fail. Use ISTIO_MUTUAL, or leave tls out for automatic mTLS",
		mode, what, listSome(hit))
}

func endpointName(ep *model.Endpoint) string {
	if ep.Workload != "" {
		return ep.Workload
	}
	return ep.Address
}

// listSome joins up to three items and says how many more there are.
func listSome(items []string) string {
	if len(items) <= 3 {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:3], ", "), len(items)-3)
}

// portLevelMTLS reports WEFT0203: portLevelMtls entries for ports none of
// the selected workloads serves. A policy that selects no workload yet is
// left alone: its workloads may not have started.
func (a *analyzer) portLevelMTLS() {
	for _, o := range a.s.Objects(config.KindPeerAuthentication) {
		pa, ok := o.Spec.(*security.PeerAuthentication)
		if !ok || len(pa.GetPortLevelMtls()) == 0 || len(pa.GetSelector().GetMatchLabels()) == 0 {
			continue
		}
		served := map[uint32]bool{}
		selected := 0
		for _, w := range a.workloads() {
			if w.namespace == o.Meta.Namespace && model.LabelsMatch(w.labels, pa.GetSelector().GetMatchLabels()) {
				selected++
				for p := range w.ports {
					served[p] = true
				}
			}
		}
		if selected == 0 {
			continue
		}
		var list []string
		for _, p := range slices.Sorted(maps.Keys(served)) {
			list = append(list, strconv.Itoa(int(p)))
		}
		for _, port := range slices.Sorted(maps.Keys(pa.GetPortLevelMtls())) {
			if served[port] {
				continue
			}
			a.report(CodeUnservedMTLSPort, Warning, o, fmt.Sprintf("spec.portLevelMtls[%d]", port),
				"none of the %d workloads this policy selects serves port %d (they serve %s); the setting has no effect",
				selected, port, orNone(strings.Join(list, ", ")))
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "no ports"
	}
	return s
}

// memberRolls reports WEFT0204 (namespaces with workloads that the member
// rolls leave out) and WEFT0205 (rolls outside the root namespace).
func (a *analyzer) memberRolls() {
	var rolls []*config.Object
	for _, o := range a.s.Objects(config.KindServiceMeshMemberRoll) {
		if _, ok := o.Spec.(*maistrav1.ServiceMeshMemberRoll); !ok {
			continue
		}
		if o.Meta.Namespace != model.RootNamespace {
			a.report(CodeIgnoredMemberRoll, Warning, o, "",
				"a ServiceMeshMemberRoll takes effect only in the root namespace %s; this one is ignored", model.RootNamespace)
			continue
		}
		rolls = append(rolls, o)
	}
	if len(rolls) == 0 {
		return
	}
	outside := map[string][]string{}
	for _, w := range a.workloads() {
		if ok, _ := a.s.IsMember(w.namespace); !ok && !slices.Contains(outside[w.namespace], w.name) {
			outside[w.namespace] = append(outside[w.namespace], w.name) // pods of one workload once
		}
	}
	for _, ns := range slices.Sorted(maps.Keys(outside)) {
		for _, o := range rolls {
			a.report(CodeNonMemberWorkloads, Warning, o, "spec.members",
				"namespace %s has workloads (%s) but no member roll lists it: their proxies get no configuration and no certificate, and STRICT workloads refuse their traffic",
				ns, listSome(outside[ns]))
		}
	}
}
