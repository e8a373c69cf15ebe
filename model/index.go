package model

import (
	"maps"
	"slices"
	"sync/atomic"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

// workloadIndex finds WorkloadEntries by namespace and label.
type workloadIndex map[string]map[string][]*config.Object // namespace -> "key=value" -> entries, namespace/name order

func indexWorkloads(wes []*config.Object) workloadIndex {
	idx := workloadIndex{}
	for _, w := range wes {
		byLabel := idx[w.Meta.Namespace]
		if byLabel == nil {
			byLabel = map[string][]*config.Object{}
			idx[w.Meta.Namespace] = byLabel
		}
		for k, v := range workloadLabels(w) {
			byLabel[k+"="+v] = append(byLabel[k+"="+v], w)
		}
	}
	return idx
}

func workloadLabels(w *config.Object) map[string]string {
	return mergeLabels(w.Meta.Labels, w.Spec.(*networking.WorkloadEntry).GetLabels())
}

// selected returns the WorkloadEntries of namespace ns whose labels (the
// object's merged with the spec's) carry every label of sel, in
// namespace/name order; none for an empty selector.
func (idx workloadIndex) selected(ns string, sel map[string]string) []*config.Object {
	if len(sel) == 0 {
		return nil
	}
	// Candidates: the entries with the selector's rarest label.
	var cands []*config.Object
	first := true
	for k, v := range sel {
		c := idx[ns][k+"="+v]
		if first || len(c) < len(cands) {
			cands, first = c, false
		}
	}
	var out []*config.Object
	for _, w := range cands {
		if LabelsMatch(workloadLabels(w), sel) {
			out = append(out, w)
		}
	}
	return out
}

// reusable returns the previous snapshot's service for host when it was
// made from the same ServiceEntry and WorkloadEntries (the same stored
// objects: the stores return one value per object version).
func (prev *Snapshot) reusable(host string, entry *config.Object, workloads []*config.Object) *Service {
	if prev == nil {
		return nil
	}
	old := prev.byHost[host]
	if old == nil || old.entry != entry || !slices.Equal(old.workloads, workloads) {
		return nil
	}
	return old
}

// routingIndex holds the routing objects arranged for per-host lookups.
type routingIndex struct {
	rulesByHost map[string][]*config.Object // DestinationRules by resolved host, namespace/name order
	meshVS      []meshVS                    // VirtualServices bound to the mesh, namespace/name order
	vsByHost    map[string][]int            // exact host -> indexes into meshVS
	vsWildcard  []int                       // indexes into meshVS of those with a wildcard host
	// consistentHash: some DestinationRule hashes consistently, so routes
	// carry hash policies that depend on the client's rule.
	consistentHash bool
}

type meshVS struct {
	obj   *config.Object
	hosts []string // resolved
}

func (s *Snapshot) indexRouting() {
	idx := routingIndex{rulesByHost: map[string][]*config.Object{}, vsByHost: map[string][]int{}}
	for _, o := range s.objects[config.KindDestinationRule] {
		dr := o.Spec.(*networking.DestinationRule)
		h := s.ResolveHost(o.Meta.Namespace, dr.GetHost())
		idx.rulesByHost[h] = append(idx.rulesByHost[h], o)
		if usesConsistentHash(dr) {
			idx.consistentHash = true
		}
	}
	for _, o := range s.objects[config.KindVirtualService] {
		vs := o.Spec.(*networking.VirtualService)
		if !BoundToMesh(vs) {
			continue
		}
		m := meshVS{obj: o}
		wild := false
		for _, h := range vs.GetHosts() {
			r := s.ResolveHost(o.Meta.Namespace, h)
			m.hosts = append(m.hosts, r)
			if len(r) > 0 && r[0] == '*' {
				wild = true
			} else {
				idx.vsByHost[r] = append(idx.vsByHost[r], len(idx.meshVS))
			}
		}
		if wild {
			idx.vsWildcard = append(idx.vsWildcard, len(idx.meshVS))
		}
		idx.meshVS = append(idx.meshVS, m)
	}
	s.routing = idx
}

func usesConsistentHash(dr *networking.DestinationRule) bool {
	pols := []*networking.TrafficPolicy{dr.GetTrafficPolicy()}
	for _, ss := range dr.GetSubsets() {
		pols = append(pols, ss.GetTrafficPolicy())
	}
	for _, p := range pols {
		if p.GetLoadBalancer().GetConsistentHash() != nil {
			return true
		}
		for _, pl := range p.GetPortLevelSettings() {
			if pl.GetLoadBalancer().GetConsistentHash() != nil {
				return true
			}
		}
	}
	return false
}

// BoundToMesh reports whether a VirtualService applies to sidecars: it
// names no gateways, or names "mesh" among them.
func BoundToMesh(vs *networking.VirtualService) bool {
	if len(vs.GetGateways()) == 0 {
		return true
	}
	return slices.Contains(vs.GetGateways(), "mesh")
}

// MeshVirtualService picks the mesh VirtualService for host as a proxy in
// namespace clientNS sees it: among those exported to clientNS, one naming
// the host exactly wins over a wildcard, as in Istio; ties go to the first
// by namespace/name.
func (s *Snapshot) MeshVirtualService(clientNS, host string) *config.Object {
	return s.meshVirtualService(clientNS, host, nil)
}

func (s *Snapshot) meshVirtualService(clientNS, host string, keep func(*config.Object, []string) bool) *config.Object {
	ok := func(m meshVS) bool {
		return ExportedTo(m.obj, clientNS) && (keep == nil || keep(m.obj, m.hosts))
	}
	for _, i := range s.routing.vsByHost[host] {
		if m := s.routing.meshVS[i]; ok(m) {
			return m.obj
		}
	}
	for _, i := range s.routing.vsWildcard {
		m := s.routing.meshVS[i]
		if !ok(m) {
			continue
		}
		for _, h := range m.hosts {
			if HostMatches(h, host) {
				return m.obj
			}
		}
	}
	return nil
}

// HashesConsistently reports whether any DestinationRule hashes
// consistently (then routes depend on which rule a client sees).
func (s *Snapshot) HashesConsistently() bool { return s.routing.consistentHash }

// ExportedTo reports whether a VirtualService, DestinationRule or
// ServiceEntry is visible to proxies in namespace ns under its exportTo:
// empty or "*" everywhere, "." its own namespace, "~" nowhere, else the
// namespaces listed. Other kinds are visible everywhere.
func ExportedTo(o *config.Object, ns string) bool {
	var to []string
	switch spec := o.Spec.(type) {
	case *networking.VirtualService:
		to = spec.GetExportTo()
	case *networking.DestinationRule:
		to = spec.GetExportTo()
	case *networking.ServiceEntry:
		to = spec.GetExportTo()
	}
	if len(to) == 0 {
		return true
	}
	for _, t := range to {
		switch {
		case t == "*", t == ns, t == "." && o.Meta.Namespace == ns:
			return true
		}
	}
	return false
}

// Epochs number the parts of the configuration that caches of generated
// output depend on. An epoch keeps its value from one snapshot to the
// next while its part is unchanged (the same stored objects), and takes a
// value never used before when it changes. Endpoints are not an epoch:
// an unchanged service keeps its *Service, and a changed one gets a new
// one.
type Epochs struct {
	Hosts    uint64 // services' hosts, namespaces, ports, addresses, resolution and selectors
	Routes   uint64 // VirtualServices
	Rules    uint64 // DestinationRules
	PeerAuth uint64 // PeerAuthentications: who takes mTLS, so endpoint metadata and inbound chains
	Security uint64 // AuthorizationPolicy, RequestAuthentication, RateLimit, fetched JWKS
	Gateways uint64 // Gateways
	Scopes   uint64 // Sidecars
	Other    uint64 // every other kind but ServiceEntry and WorkloadEntry
}

var epochCounter atomic.Uint64

func nextEpoch() uint64 { return epochCounter.Add(1) }

// Epochs returns the snapshot's epochs.
func (s *Snapshot) Epochs() Epochs { return s.epochs }

// epochGroups are the kinds behind each epoch but Hosts.
var epochGroups = []struct {
	kinds []config.Kind
	field func(*Epochs) *uint64
}{
	{[]config.Kind{config.KindVirtualService}, func(e *Epochs) *uint64 { return &e.Routes }},
	{[]config.Kind{config.KindDestinationRule}, func(e *Epochs) *uint64 { return &e.Rules }},
	{[]config.Kind{config.KindPeerAuthentication}, func(e *Epochs) *uint64 { return &e.PeerAuth }},
	{[]config.Kind{config.KindAuthorizationPolicy, config.KindRequestAuthentication, config.KindRateLimit}, func(e *Epochs) *uint64 { return &e.Security }},
	{[]config.Kind{config.KindGateway}, func(e *Epochs) *uint64 { return &e.Gateways }},
	{[]config.Kind{config.KindSidecar}, func(e *Epochs) *uint64 { return &e.Scopes }},
}

func epochsOf(s, prev *Snapshot) Epochs {
	var e Epochs
	same := func(kinds ...config.Kind) bool {
		if prev == nil {
			return false
		}
		for _, k := range kinds {
			if !slices.Equal(s.objects[k], prev.objects[k]) {
				return false
			}
		}
		return true
	}
	grouped := map[config.Kind]bool{config.KindServiceEntry: true, config.KindWorkloadEntry: true}
	for _, g := range epochGroups {
		keep := same(g.kinds...)
		if keep && slices.Contains(g.kinds, config.KindRequestAuthentication) {
			keep = maps.Equal(s.jwks, prev.jwks)
		}
		*g.field(&e) = pick(keep, prev, g.field)
		for _, k := range g.kinds {
			grouped[k] = true
		}
	}
	var other []config.Kind
	for k := range s.objects {
		if !grouped[k] {
			other = append(other, k)
		}
	}
	if prev != nil {
		for k := range prev.objects {
			if !grouped[k] && !slices.Contains(other, k) {
				other = append(other, k)
			}
		}
	}
	e.Other = pick(same(other...), prev, func(e *Epochs) *uint64 { return &e.Other })
	e.Hosts = pick(prev != nil && sameHosts(s, prev), prev, func(e *Epochs) *uint64 { return &e.Hosts })
	return e
}

func pick(keep bool, prev *Snapshot, field func(*Epochs) *uint64) uint64 {
	if keep {
		return *field(&prev.epochs)
	}
	return nextEpoch()
}

// sameHosts reports whether two snapshots have the same services but for
// their endpoints.
func sameHosts(a, b *Snapshot) bool {
	if len(a.services) != len(b.services) {
		return false
	}
	for i, x := range a.services {
		y := b.services[i]
		if x == y {
			continue
		}
		if x.Hostname != y.Hostname || x.Namespace != y.Namespace || x.Resolution != y.Resolution ||
			!slices.Equal(x.Addresses, y.Addresses) || !maps.Equal(x.Selector, y.Selector) ||
			!slices.EqualFunc(x.Ports, y.Ports, func(p, q *Port) bool { return *p == *q }) ||
			!exportSame(x.entry, y.entry) {
			return false
		}
	}
	return true
}

func exportSame(a, b *config.Object) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return slices.Equal(a.Spec.(*networking.ServiceEntry).GetExportTo(), b.Spec.(*networking.ServiceEntry).GetExportTo())
}

// EndpointChanges compares the snapshot with the one it was built after:
// when only endpoints changed, it returns the hosts whose endpoints did and
// true; otherwise false (nothing is known, or configuration changed).
func (s *Snapshot) EndpointChanges(prev *Snapshot) (hosts []string, only bool) {
	if prev == nil {
		return nil, false
	}
	e, p := s.epochs, prev.epochs
	if e != p {
		return nil, false
	}
	for i, svc := range s.services {
		if prev.services[i] != svc {
			hosts = append(hosts, svc.Hostname)
		}
	}
	return hosts, true
}

// ServicesAt returns the services with an endpoint at address addr,
// active or inactive (Service.Inactive: a pod still serves its own ports
// while it starts and drains), by hostname.
func (s *Snapshot) ServicesAt(addr string) []*Service {
	s.atOnce.Do(func() {
		s.at = map[string][]*Service{}
		for _, svc := range s.services {
			seen := map[string]bool{}
			for _, eps := range [2][]*Endpoint{svc.Endpoints, svc.Inactive} {
				for _, e := range eps {
					if !seen[e.Address] {
						seen[e.Address] = true
						s.at[e.Address] = append(s.at[e.Address], svc)
					}
				}
			}
		}
	})
	return s.at[addr]
}
