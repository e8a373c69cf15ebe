package model

import (
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

func se(ns, name string, spec *networking.ServiceEntry) *config.Object {
	return &config.Object{Kind: config.KindServiceEntry, Meta: config.Meta{Name: name, Namespace: ns}, Spec: spec}
}

func we(ns, name, addr string, labels map[string]string) *config.Object {
	return &config.Object{Kind: config.KindWorkloadEntry, Meta: config.Meta{Name: name, Namespace: ns}, Spec: &networking.WorkloadEntry{Address: addr, Labels: labels}}
}

func vsObj(ns, name string, spec *networking.VirtualService) *config.Object {
	return &config.Object{Kind: config.KindVirtualService, Meta: config.Meta{Name: name, Namespace: ns}, Spec: spec}
}

func sidecarObj(ns, name string, spec *networking.Sidecar) *config.Object {
	return &config.Object{Kind: config.KindSidecar, Meta: config.Meta{Name: name, Namespace: ns}, Spec: spec}
}

func selected(app string) *networking.ServiceEntry {
	return &networking.ServiceEntry{Hosts: []string{app + ".shop.svc.cluster.local"}, Ports: []*networking.ServicePort{{Number: 80, Name: "http"}},
		WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": app}}}
}

// TestRebuildReusesServices: a service made of the same stored objects is
// the same *Service in the next snapshot; an endpoint change makes a new
// one and is reported as an endpoint-only change.
func TestRebuildReusesServices(t *testing.T) {
	a, b := se("shop", "a", selected("a")), se("shop", "b", selected("b"))
	a1, b1 := we("shop", "a1", "10.0.0.1", map[string]string{"app": "a"}), we("shop", "b1", "10.0.0.2", map[string]string{"app": "b"})
	vs := vsObj("shop", "a", &networking.VirtualService{Hosts: []string{"a"}})
	s1 := Build(1, []*config.Object{a, b, a1, b1, vs})
	s2 := BuildWith(2, []*config.Object{a, b, a1, b1, vs}, Options{Previous: s1})
	if s2.Service("a.shop.svc.cluster.local") != s1.Service("a.shop.svc.cluster.local") {
		t.Error("unchanged service not reused")
	}
	if s2.Epochs() != s1.Epochs() {
		t.Errorf("unchanged snapshot changed epochs: %+v -> %+v", s1.Epochs(), s2.Epochs())
	}
	a2 := we("shop", "a2", "10.0.0.3", map[string]string{"app": "a"})
	s3 := BuildWith(3, []*config.Object{a, b, a1, a2, b1, vs}, Options{Previous: s2})
	if got := s3.Service("a.shop.svc.cluster.local"); got == s2.Service("a.shop.svc.cluster.local") || len(got.Endpoints) != 2 {
		t.Errorf("endpoint added, service %+v", got)
	}
	if s3.Service("b.shop.svc.cluster.local") != s2.Service("b.shop.svc.cluster.local") {
		t.Error("untouched service rebuilt")
	}
	hosts, only := s3.EndpointChanges(s2)
	if !only || len(hosts) != 1 || hosts[0] != "a.shop.svc.cluster.local" {
		t.Errorf("endpoint changes = %v, %v", hosts, only)
	}
	vs2 := vsObj("shop", "a", &networking.VirtualService{Hosts: []string{"a"}, ExportTo: []string{"."}})
	s4 := BuildWith(4, []*config.Object{a, b, a1, a2, b1, vs2}, Options{Previous: s3})
	if _, only := s4.EndpointChanges(s3); only || s4.Epochs().Routes == s3.Epochs().Routes || s4.Epochs().Hosts != s3.Epochs().Hosts {
		t.Errorf("VirtualService change: endpoint-only %v, epochs %+v -> %+v", only, s3.Epochs(), s4.Epochs())
	}
	port := se("shop", "b", &networking.ServiceEntry{Hosts: []string{"b.shop.svc.cluster.local"}, Ports: []*networking.ServicePort{{Number: 81, Name: "http"}},
		WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "b"}}})
	s5 := BuildWith(5, []*config.Object{a, port, a1, a2, b1, vs2}, Options{Previous: s4})
	if s5.Epochs().Hosts == s4.Epochs().Hosts {
		t.Error("a port change kept the hosts epoch")
	}
}

func TestExportToAndScopes(t *testing.T) {
	shop := se("shop", "a", &networking.ServiceEntry{Hosts: []string{"a.shop.svc.cluster.local"}})
	private := se("shop", "p", &networking.ServiceEntry{Hosts: []string{"p.shop.svc.cluster.local"}, ExportTo: []string{"."}})
	other := se("billing", "c", &networking.ServiceEntry{Hosts: []string{"c.billing.svc.cluster.local"}})
	ext := se("shop", "ext", &networking.ServiceEntry{Hosts: []string{"api.example.com"}})
	vsAll := vsObj("shop", "a-all", &networking.VirtualService{Hosts: []string{"a"}})
	vsHere := vsObj("shop", "a-here", &networking.VirtualService{Hosts: []string{"a"}, ExportTo: []string{"."}})
	root := sidecarObj(RootNamespace, "default", &networking.Sidecar{Egress: []*networking.IstioEgressListener{{Hosts: []string{"./*", "*/api.example.com"}}}})
	nsDefault := sidecarObj("shop", "default", &networking.Sidecar{Egress: []*networking.IstioEgressListener{{Hosts: []string{"./*"}}}})
	wl := sidecarObj("shop", "web", &networking.Sidecar{
		WorkloadSelector:      &networking.WorkloadSelector{Labels: map[string]string{"app": "web"}},
		Egress:                []*networking.IstioEgressListener{{Hosts: []string{"billing/c.billing.svc.cluster.local"}}},
		OutboundTrafficPolicy: &networking.OutboundTrafficPolicy{Mode: networking.OutboundTrafficPolicy_REGISTRY_ONLY},
	})
	s := Build(1, []*config.Object{shop, private, other, ext, vsHere, vsAll, root, nsDefault, wl})

	hosts := func(sc *Scope) []string {
		var out []string
		for _, svc := range s.VisibleServices(sc) {
			out = append(out, svc.Hostname)
		}
		return out
	}
	web := s.ScopeFor("shop", map[string]string{"app": "web"})
	if web.Sidecar != wl || !web.RegistryOnly() {
		t.Errorf("web's Sidecar %v, registry only %v", web.Sidecar, web.RegistryOnly())
	}
	if got := hosts(web); len(got) != 1 || got[0] != "c.billing.svc.cluster.local" {
		t.Errorf("web sees %v", got)
	}
	shopDefault := s.ScopeFor("shop", map[string]string{"app": "other"})
	if got := hosts(shopDefault); len(got) != 3 { // a, p and api.example.com (SE in shop); not billing's c
		t.Errorf("shop default sees %v", got)
	}
	if shopDefault != s.ScopeFor("shop", nil) {
		t.Error("proxies under the same Sidecar got different scopes")
	}
	billing := s.ScopeFor("billing", nil) // the root namespace's: "." is billing itself, and api.example.com from anywhere
	if billing.Sidecar != root {
		t.Fatalf("billing's Sidecar %v", billing.Sidecar)
	}
	if got := hosts(billing); len(got) != 2 || got[0] != "api.example.com" || got[1] != "c.billing.svc.cluster.local" {
		t.Errorf("billing sees %v", got)
	}
	none := Build(1, []*config.Object{shop, private, other, vsHere, vsAll})
	if got := none.VisibleServices(none.ScopeFor("billing", nil)); len(got) != 2 {
		t.Errorf("without Sidecars billing sees %d services, want 2 (p is exported to shop only)", len(got))
	}
	if got := none.MeshVirtualService("billing", "a.shop.svc.cluster.local"); got != vsAll {
		t.Errorf("billing's VirtualService for a: %v, want a-all (a-here is exported to shop)", got)
	}
	if got := none.MeshVirtualService("shop", "a.shop.svc.cluster.local"); got != vsAll {
		t.Errorf("shop's VirtualService for a: %v, want the first by name, a-all", got)
	}
}
