// Package model turns the stored configuration into an indexed, immutable
// view of the mesh: services (from ServiceEntry), their endpoints (from
// WorkloadEntry and inline endpoints), the routing objects that refer to
// them, and the security policies that apply to each workload. The
// translator and the analyzer read it; nothing writes it after Build.
package model

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

// DomainSuffix is the cluster DNS suffix that short host names expand into.
const DomainSuffix = "svc.cluster.local"

// Snapshot is the mesh at one store revision.
type Snapshot struct {
	Revision int64

	objects  map[config.Kind][]*config.Object // sorted by namespace/name
	services []*Service                       // sorted by hostname
	byHost   map[string]*Service
	sec      securityIndex
	routing  routingIndex
	jwks     map[string]string // jwksUri -> document, as fetched when built
	epochs   Epochs
	opts     Options

	scopesMu sync.Mutex
	scopes   map[scopeKey]*Scope

	atOnce sync.Once
	at     map[string][]*Service // endpoint address -> services
}

// Service is one host of a ServiceEntry, with its endpoints.
type Service struct {
	Hostname  string // FQDN as written in the ServiceEntry hosts
	Name      string // short name: first label of an in-cluster host, else the host
	Namespace string
	Source    config.Key // the ServiceEntry
	// Addresses are the ServiceEntry's addresses: IPs or CIDRs the service
	// is reached on (a Kubernetes Service's clusterIPs), for a captured
	// sidecar to match a connection's original destination by. Empty for
	// a headless service.
	Addresses  []string
	Ports      []*Port
	Resolution networking.ServiceEntry_Resolution
	Selector   map[string]string
	Endpoints  []*Endpoint // sorted by address and port
	// Inactive are instances that get no traffic but exist: a Kubernetes
	// Service's pods that are not ready yet or are terminating (from the
	// ServiceEntry's AnnotationInactiveEndpoints). Only the instances
	// themselves look at them: a pod keeps its inbound listeners while it
	// starts and while it drains, as Istio's sidecars do.
	Inactive []*Endpoint

	// What the service was made of, so the next snapshot can tell whether
	// it is unchanged.
	entry     *config.Object
	workloads []*config.Object
}

// AnnotationInactiveEndpoints, on a ServiceEntry, lists instances of the
// service that must get no traffic but still serve their own ports, as
// JSON: [{"address": "10.244.0.5", "ports": {"http": 9080}}]. The
// Kubernetes source writes it for pods that are not ready or terminating.
const AnnotationInactiveEndpoints = "weft.io/inactive-endpoints"

// InactiveEndpoint is one entry of AnnotationInactiveEndpoints.
type InactiveEndpoint struct {
	Address string            `json:"address"`
	Ports   map[string]uint32 `json:"ports,omitempty"` // port name -> port, as WorkloadEntry ports
}

// Port is a ServiceEntry port.
type Port struct {
	Number     uint32
	Name       string
	Protocol   string // upper case: HTTP, HTTP2, GRPC, TCP, ...
	TargetPort uint32
}

// IsHTTP reports whether the port carries HTTP (any version).
func (p *Port) IsHTTP() bool {
	switch strings.ToUpper(p.Protocol) {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "":
		return true
	}
	return false
}

// Endpoint is one workload instance behind a service.
type Endpoint struct {
	Address   string
	Ports     map[string]uint32 // port name -> port, from the WorkloadEntry
	Labels    map[string]string
	Namespace string
	Workload  string // WorkloadEntry name, or "" for inline endpoints
	// WorkloadName is the workload the instance belongs to: the
	// config.LabelWorkload label, else the WorkloadEntry name.
	WorkloadName   string
	ServiceAccount string
	Locality       string // region/zone/subzone
	Weight         uint32
	// Sidecar is true when the workload runs a sidecar that accepts mutual
	// TLS: its WorkloadEntry (or inline endpoint) has label
	// security.istio.io/tlsMode: istio, or the WorkloadEntry has annotation
	// weft.io/proxy.
	Sidecar bool
	// Proxy is the xDS node ID of the sidecar that registered the
	// WorkloadEntry (annotation weft.io/proxy), "" when none did: the
	// control plane takes such an endpoint out of load balancing while that
	// sidecar has no xDS stream.
	Proxy string
}

// PortFor returns the port the endpoint serves p on: the WorkloadEntry's
// port of the same name, else the target port, else p's own number.
func (e *Endpoint) PortFor(p *Port) uint32 {
	if n, ok := e.Ports[p.Name]; ok && n != 0 {
		return n
	}
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// Matches reports whether the endpoint carries every label in sel.
func (e *Endpoint) Matches(sel map[string]string) bool { return LabelsMatch(e.Labels, sel) }

// LabelsMatch reports whether labels contains every key/value of sel.
func LabelsMatch(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Build indexes objects (any order, any kinds) into a Snapshot. It is
// BuildWith with zero Options.
func Build(revision int64, objects []*config.Object) *Snapshot {
	return BuildWith(revision, objects, Options{})
}

// BuildWith indexes objects (any order, any kinds) into a Snapshot that
// also answers from o. With o.Previous, a service whose ServiceEntry and
// WorkloadEntries are the same objects as before is the same *Service, and
// the snapshot's Epochs say what changed since: the translator's caches
// key on both.
func BuildWith(revision int64, objects []*config.Object, o Options) *Snapshot {
	s := &Snapshot{Revision: revision, objects: map[config.Kind][]*config.Object{}, byHost: map[string]*Service{}, opts: o}
	prev := o.Previous
	s.opts.Previous = nil // a snapshot does not keep its predecessors alive
	for _, o := range objects {
		s.objects[o.Kind] = append(s.objects[o.Kind], o)
	}
	for _, list := range s.objects {
		sort.Slice(list, func(i, j int) bool {
			if list[i].Meta.Namespace != list[j].Meta.Namespace {
				return list[i].Meta.Namespace < list[j].Meta.Namespace
			}
			return list[i].Meta.Name < list[j].Meta.Name
		})
	}
	wes := indexWorkloads(s.objects[config.KindWorkloadEntry])
	for _, o := range s.objects[config.KindServiceEntry] {
		se := o.Spec.(*networking.ServiceEntry)
		matched := wes.selected(o.Meta.Namespace, se.GetWorkloadSelector().GetLabels())
		var eps []*Endpoint
		var ports []*Port
		var inactive []*Endpoint
		made := false
		for _, h := range se.GetHosts() {
			if _, dup := s.byHost[h]; dup {
				continue // first ServiceEntry (by namespace/name) wins; the analyzer reports the clash
			}
			if old := prev.reusable(h, o, matched); old != nil {
				s.byHost[h] = old
				s.services = append(s.services, old)
				continue
			}
			if !made {
				ports, eps = serviceParts(o, se, matched)
				inactive = inactiveEndpoints(o)
				made = true
			}
			svc := &Service{
				Hostname: h, Name: shortName(h), Namespace: o.Meta.Namespace, Source: o.Key(), Addresses: se.GetAddresses(),
				Ports: ports, Resolution: se.GetResolution(), Selector: se.GetWorkloadSelector().GetLabels(), Endpoints: eps,
				entry: o, workloads: matched, Inactive: inactive,
			}
			s.byHost[h] = svc
			s.services = append(s.services, svc)
		}
	}
	sort.Slice(s.services, func(i, j int) bool { return s.services[i].Hostname < s.services[j].Hostname })
	s.freezeJWKS()
	s.indexSecurity()
	s.indexRouting()
	s.epochs = epochsOf(s, prev)
	return s
}

// serviceParts makes the ports and endpoints of a ServiceEntry whose
// selector matched the WorkloadEntries in matched.
func serviceParts(o *config.Object, se *networking.ServiceEntry, matched []*config.Object) ([]*Port, []*Endpoint) {
	var ports []*Port
	for _, p := range se.GetPorts() {
		ports = append(ports, &Port{Number: p.GetNumber(), Name: p.GetName(), Protocol: strings.ToUpper(p.GetProtocol()), TargetPort: p.GetTargetPort()})
	}
	var eps []*Endpoint
	for _, we := range se.GetEndpoints() {
		eps = append(eps, endpointOf(o.Meta.Namespace, "", we, nil))
	}
	for _, w := range matched {
		eps = append(eps, endpointOf(w.Meta.Namespace, w.Meta.Name, w.Spec.(*networking.WorkloadEntry), &w.Meta))
	}
	sort.Slice(eps, func(i, j int) bool {
		if eps[i].Address != eps[j].Address {
			return eps[i].Address < eps[j].Address
		}
		return eps[i].Workload < eps[j].Workload
	})
	return ports, eps
}

// inactiveEndpoints reads o's AnnotationInactiveEndpoints; an annotation
// that does not parse lists none (the source writes it, users do not).
func inactiveEndpoints(o *config.Object) []*Endpoint {
	v := o.Meta.Annotations[AnnotationInactiveEndpoints]
	if v == "" {
		return nil
	}
	var list []InactiveEndpoint
	if err := json.Unmarshal([]byte(v), &list); err != nil {
		return nil
	}
	out := make([]*Endpoint, 0, len(list))
	for _, e := range list {
		out = append(out, &Endpoint{Address: e.Address, Ports: e.Ports, Namespace: o.Meta.Namespace, Weight: 1})
	}
	return out
}

// endpointOf makes the endpoint of a WorkloadEntry spec; meta is the
// WorkloadEntry object's metadata, nil for a ServiceEntry's inline endpoint.
func endpointOf(ns, name string, we *networking.WorkloadEntry, meta *config.Meta) *Endpoint {
	w := we.GetWeight()
	if w == 0 {
		w = 1
	}
	wl := we.GetLabels()[config.LabelWorkload]
	if wl == "" {
		wl = name
	}
	return &Endpoint{
		Address: we.GetAddress(), Ports: we.GetPorts(), Labels: we.GetLabels(), Namespace: ns, Workload: name,
		WorkloadName: wl, ServiceAccount: we.GetServiceAccount(), Locality: we.GetLocality(), Weight: w,
		Sidecar: hasSidecar(we.GetLabels(), meta), Proxy: registeredBy(meta),
	}
}

// registeredBy is the node ID of the sidecar that registered a
// WorkloadEntry, "" for none (or an inline endpoint, meta nil).
func registeredBy(meta *config.Meta) string {
	if meta == nil {
		return ""
	}
	return meta.Annotations[config.AnnotationProxy]
}

func mergeLabels(a, b map[string]string) map[string]string {
	if len(a) == 0 {
		return b
	}
	m := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func shortName(host string) string {
	if strings.HasSuffix(host, "."+DomainSuffix) {
		name, _, _ := strings.Cut(host, ".")
		return name
	}
	return host
}

// Objects returns the objects of one kind, sorted by namespace and name.
func (s *Snapshot) Objects(kind config.Kind) []*config.Object { return s.objects[kind] }

// Object returns one object, or nil.
func (s *Snapshot) Object(kind config.Kind, namespace, name string) *config.Object {
	for _, o := range s.objects[kind] {
		if o.Meta.Namespace == namespace && o.Meta.Name == name {
			return o
		}
	}
	return nil
}

// Services returns every service, sorted by hostname.
func (s *Snapshot) Services() []*Service { return s.services }

// Service returns the service for a fully qualified host, or nil.
func (s *Snapshot) Service(host string) *Service { return s.byHost[host] }

// ResolveHost expands a host written in an object of namespace ns as Istio
// does: a short name ("reviews") becomes "reviews.NS.svc.cluster.local"; a
// name.namespace form becomes its FQDN when that service exists; anything
// else (wildcards included) is returned as written.
func (s *Snapshot) ResolveHost(ns, host string) string {
	if host == "" || strings.HasPrefix(host, "*") {
		return host
	}
	if !strings.Contains(host, ".") {
		return host + "." + ns + "." + DomainSuffix
	}
	if _, ok := s.byHost[host]; ok {
		return host
	}
	if strings.Count(host, ".") == 1 {
		if full := host + "." + DomainSuffix; s.byHost[full] != nil {
			return full
		}
	}
	return host
}

// DestinationRule returns the rule that applies to host for a client in
// namespace clientNS: the client's namespace first, then the host's own
// namespace, then any other (Istio's lookup order), among the rules
// exported to clientNS.
func (s *Snapshot) DestinationRule(clientNS, host string) *config.Object {
	var hostNS, other *config.Object
	svcNS := ""
	if svc := s.byHost[host]; svc != nil {
		svcNS = svc.Namespace
	}
	for _, o := range s.routing.rulesByHost[host] {
		if !ExportedTo(o, clientNS) {
			continue
		}
		switch {
		case o.Meta.Namespace == clientNS:
			return o
		case o.Meta.Namespace == svcNS && hostNS == nil:
			hostNS = o
		case other == nil:
			other = o
		}
	}
	if hostNS != nil {
		return hostNS
	}
	return other
}

// Subset returns the named subset of a DestinationRule object, or nil.
func Subset(dr *config.Object, name string) *networking.Subset {
	if dr == nil {
		return nil
	}
	for _, ss := range dr.Spec.(*networking.DestinationRule).GetSubsets() {
		if ss.GetName() == name {
			return ss
		}
	}
	return nil
}

// HostMatches reports whether a (possibly wildcard) pattern such as
// "*.example.com" or "*" covers host.
func HostMatches(pattern, host string) bool {
	if pattern == "*" || pattern == host {
		return true
	}
	if strings.HasPrefix(pattern, "*") {
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}
