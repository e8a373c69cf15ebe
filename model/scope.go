package model

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

// Scope is what one proxy may see of the mesh, as Istio decides it: the
// services and VirtualServices exported to its namespace and, when a
// Sidecar applies to it, only those its egress hosts name. Proxies of one
// namespace under one Sidecar share a Scope.
type Scope struct {
	Namespace string         // the proxy's
	Sidecar   *config.Object // nil: none applies
	egress    []egressHost
	registry  bool // outboundTrafficPolicy REGISTRY_ONLY
}

type egressHost struct {
	ns   string // a namespace, "*" any, "~" none
	host string // lower case; "*" or "*.suffix" wildcards
}

// ScopeFor returns the scope of a proxy in namespace ns with labels: the
// Sidecar of ns whose workloadSelector matches the labels (the oldest, when
// several do), else ns's Sidecar without selector, else the root
// namespace's (the mesh-wide default), else none.
func (s *Snapshot) ScopeFor(ns string, labels map[string]string) *Scope {
	var pick *config.Object
	var nsDefault, rootDefault *config.Object
	for _, o := range s.objects[config.KindSidecar] {
		sc := o.Spec.(*networking.Sidecar)
		sel := sc.GetWorkloadSelector().GetLabels()
		switch {
		case o.Meta.Namespace == ns && len(sel) > 0 && LabelsMatch(labels, sel):
			if pick == nil || older(o, pick) {
				pick = o
			}
		case o.Meta.Namespace == ns && len(sel) == 0:
			if nsDefault == nil || older(o, nsDefault) {
				nsDefault = o
			}
		case o.Meta.Namespace == RootNamespace && len(sel) == 0:
			if rootDefault == nil || older(o, rootDefault) {
				rootDefault = o
			}
		}
	}
	if pick == nil {
		pick = nsDefault
	}
	if pick == nil {
		pick = rootDefault
	}
	return s.scope(ns, pick)
}

// scope returns the one Scope of (ns, sidecar) in this snapshot.
func (s *Snapshot) scope(ns string, sidecar *config.Object) *Scope {
	key := scopeKey{ns, sidecar}
	s.scopesMu.Lock()
	defer s.scopesMu.Unlock()
	if sc, ok := s.scopes[key]; ok {
		return sc
	}
	sc := &Scope{Namespace: ns, Sidecar: sidecar}
	if sidecar != nil {
		spec := sidecar.Spec.(*networking.Sidecar)
		for _, eg := range spec.GetEgress() {
			for _, h := range eg.GetHosts() {
				hns, host, _ := strings.Cut(h, "/")
				if hns == "." {
					// The proxy's namespace: a root namespace Sidecar
					// applies in every namespace, "." in each its own.
					hns = ns
				}
				sc.egress = append(sc.egress, egressHost{ns: hns, host: strings.ToLower(host)})
			}
		}
		sc.registry = spec.GetOutboundTrafficPolicy().GetMode() == networking.OutboundTrafficPolicy_REGISTRY_ONLY
	}
	if s.scopes == nil {
		s.scopes = map[scopeKey]*Scope{}
	}
	s.scopes[key] = sc
	return sc
}

type scopeKey struct {
	ns      string
	sidecar *config.Object
}

// Sees reports whether the scope's proxies receive svc: the ServiceEntry
// is exported to their namespace and, under a Sidecar, an egress host
// names the service's namespace and host.
func (sc *Scope) Sees(svc *Service) bool {
	if svc.entry != nil && !ExportedTo(svc.entry, sc.Namespace) {
		return false
	}
	return sc.admits(svc.Namespace, svc.Hostname)
}

// SeesConfig reports whether a Sidecar's egress admits an object of
// namespace ns for any of hosts (a VirtualService's): without a Sidecar,
// everything exported is seen.
func (sc *Scope) SeesConfig(ns string, hosts []string) bool {
	if sc.Sidecar == nil {
		return true
	}
	for _, h := range hosts {
		if sc.admits(ns, h) {
			return true
		}
	}
	return false
}

func (sc *Scope) admits(ns, host string) bool {
	if sc.Sidecar == nil {
		return true
	}
	host = strings.ToLower(host)
	for _, e := range sc.egress {
		if e.ns == "~" || e.ns != "*" && e.ns != ns {
			continue
		}
		if HostMatches(e.host, host) || strings.HasPrefix(host, "*") && HostMatches(host, strings.TrimPrefix(e.host, "*")) {
			return true
		}
	}
	return false
}

// RegistryOnly reports whether traffic to hosts outside the scope is
// refused (outboundTrafficPolicy REGISTRY_ONLY) rather than passed through
// (ALLOW_ANY, the default).
func (sc *Scope) RegistryOnly() bool { return sc.registry }

// VisibleServices returns the services the scope sees, sorted by hostname.
func (s *Snapshot) VisibleServices(sc *Scope) []*Service {
	if sc.Sidecar == nil && !s.anyExportTo() {
		return s.services
	}
	out := make([]*Service, 0, len(s.services))
	for _, svc := range s.services {
		if sc.Sees(svc) {
			out = append(out, svc)
		}
	}
	return out
}

// anyExportTo reports whether some ServiceEntry limits its export.
func (s *Snapshot) anyExportTo() bool {
	for _, o := range s.objects[config.KindServiceEntry] {
		if len(o.Spec.(*networking.ServiceEntry).GetExportTo()) > 0 {
			return true
		}
	}
	return false
}

// ScopedVirtualService is MeshVirtualService as the scope's proxies see
// it: among VirtualServices exported to their namespace and admitted by
// their Sidecar's egress hosts.
func (s *Snapshot) ScopedVirtualService(sc *Scope, host string) *config.Object {
	return s.meshVirtualService(sc.Namespace, host, func(o *config.Object, hosts []string) bool {
		return sc.SeesConfig(o.Meta.Namespace, hosts)
	})
}

// Sidecars returns the Sidecar objects, sorted by namespace and name.
func (s *Snapshot) Sidecars() []*config.Object {
	out := append([]*config.Object(nil), s.objects[config.KindSidecar]...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Meta.Namespace < out[j].Meta.Namespace })
	return out
}

// DefaultScope is the scope of a proxy in ns that no Sidecar applies to
// (a gateway's): everything exported to ns.
func (s *Snapshot) DefaultScope(ns string) *Scope { return s.scope(ns, nil) }
