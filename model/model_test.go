package model

import (
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

func obj(kind config.Kind, ns, name string, spec any) *config.Object {
	o := &config.Object{Kind: kind, Meta: config.Meta{Name: name, Namespace: ns}}
	switch s := spec.(type) {
	case *networking.ServiceEntry:
		o.Spec = s
	case *networking.WorkloadEntry:
		o.Spec = s
	case *networking.DestinationRule:
		o.Spec = s
	}
	return o
}

func TestBuildServicesAndEndpoints(t *testing.T) {
	s := Build(7, []*config.Object{
		obj(config.KindServiceEntry, "shop", "reviews", &networking.ServiceEntry{
			Hosts:            []string{"reviews.shop.svc.cluster.local"},
			Ports:            []*networking.ServicePort{{Number: 9080, Name: "http", Protocol: "http"}},
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "reviews"}},
		}),
		obj(config.KindWorkloadEntry, "shop", "reviews-v2", &networking.WorkloadEntry{Address: "127.0.0.1", Ports: map[string]uint32{"http": 4002}, Labels: map[string]string{"app": "reviews", "version": "v2"}}),
		obj(config.KindWorkloadEntry, "shop", "reviews-v1", &networking.WorkloadEntry{Address: "127.0.0.1", Ports: map[string]uint32{"http": 4001}, Labels: map[string]string{"app": "reviews", "version": "v1"}}),
		obj(config.KindWorkloadEntry, "other", "reviews-x", &networking.WorkloadEntry{Address: "127.0.0.1", Labels: map[string]string{"app": "reviews"}}),
	})
	if s.Revision != 7 {
		t.Errorf("revision %d", s.Revision)
	}
	svc := s.Service("reviews.shop.svc.cluster.local")
	if svc == nil || svc.Name != "reviews" || svc.Ports[0].Protocol != "HTTP" {
		t.Fatalf("service: %+v", svc)
	}
	if len(svc.Endpoints) != 2 || svc.Endpoints[0].Workload != "reviews-v1" {
		t.Fatalf("endpoints (other namespace excluded, sorted): %+v", svc.Endpoints)
	}
	if p := svc.Endpoints[1].PortFor(svc.Ports[0]); p != 4002 {
		t.Errorf("PortFor = %d, want the WorkloadEntry's named port 4002", p)
	}
	if n := len(s.Services()); n != 1 {
		t.Errorf("%d services", n)
	}
}

func TestResolveHost(t *testing.T) {
	s := Build(1, []*config.Object{obj(config.KindServiceEntry, "shop", "reviews", &networking.ServiceEntry{Hosts: []string{"reviews.shop.svc.cluster.local"}})})
	for in, want := range map[string]string{
		"reviews":                        "reviews.default.svc.cluster.local",
		"reviews.shop":                   "reviews.shop.svc.cluster.local",
		"reviews.shop.svc.cluster.local": "reviews.shop.svc.cluster.local",
		"*.example.com":                  "*.example.com",
		"api.example.com":                "api.example.com",
	} {
		if got := s.ResolveHost("default", in); got != want {
			t.Errorf("ResolveHost(default, %q) = %q, want %q", in, got, want)
		}
	}
}

func TestDestinationRuleLookupOrder(t *testing.T) {
	host := "reviews.shop.svc.cluster.local"
	s := Build(1, []*config.Object{
		obj(config.KindServiceEntry, "shop", "reviews", &networking.ServiceEntry{Hosts: []string{host}}),
		obj(config.KindDestinationRule, "shop", "in-host-ns", &networking.DestinationRule{Host: "reviews"}),
		obj(config.KindDestinationRule, "client", "in-client-ns", &networking.DestinationRule{Host: host}),
	})
	if dr := s.DestinationRule("client", host); dr == nil || dr.Meta.Name != "in-client-ns" {
		t.Errorf("client namespace rule should win, got %v", dr)
	}
	if dr := s.DestinationRule("elsewhere", host); dr == nil || dr.Meta.Name != "in-host-ns" {
		t.Errorf("host namespace rule should apply, got %v", dr)
	}
}

func TestHostMatches(t *testing.T) {
	for _, c := range []struct {
		p, h string
		ok   bool
	}{{"*", "a.b", true}, {"*.example.com", "api.example.com", true}, {"*.example.com", "example.com", false}, {"a.b", "a.b", true}, {"a.b", "a.c", false}} {
		if got := HostMatches(c.p, c.h); got != c.ok {
			t.Errorf("HostMatches(%q, %q) = %v", c.p, c.h, got)
		}
	}
}

// TestInlineEndpointsWithAddresses is a Kubernetes Service as store/kube
// synthesizes it: a ClusterIP in addresses, inline endpoints carrying the
// pods' labels, and a named target port resolved per endpoint.
func TestInlineEndpointsWithAddresses(t *testing.T) {
	host := "reviews.shop.svc.cluster.local"
	s := Build(1, []*config.Object{obj(config.KindServiceEntry, "shop", "reviews", &networking.ServiceEntry{
		Hosts: []string{host}, Addresses: []string{"10.96.0.20"}, Location: networking.ServiceEntry_MESH_INTERNAL,
		Resolution: networking.ServiceEntry_STATIC,
		Ports:      []*networking.ServicePort{{Number: 9080, Name: "http", TargetPort: 9080}},
		Endpoints: []*networking.WorkloadEntry{
			{Address: "10.244.0.7", Ports: map[string]uint32{"http": 8080}, ServiceAccount: "bookinfo-reviews", Locality: "r1/z1",
				Labels: map[string]string{"app": "reviews", "version": "v2", config.LabelWorkload: "reviews-v2", config.LabelTLSMode: "istio"}},
			{Address: "10.244.0.5", ServiceAccount: "bookinfo-reviews",
				Labels: map[string]string{"app": "reviews", "version": "v1", config.LabelWorkload: "reviews-v1"}},
		},
	})})
	svc := s.Service(host)
	if svc == nil || len(svc.Addresses) != 1 || svc.Addresses[0] != "10.96.0.20" {
		t.Fatalf("service addresses: %+v", svc)
	}
	v1, v2 := svc.Endpoints[0], svc.Endpoints[1]
	if v1.Address != "10.244.0.5" || v1.WorkloadName != "reviews-v1" || v1.Sidecar || v1.Workload != "" {
		t.Errorf("v1 endpoint: %+v", v1)
	}
	if v2.WorkloadName != "reviews-v2" || !v2.Sidecar || v2.ServiceAccount != "bookinfo-reviews" || v2.Locality != "r1/z1" {
		t.Errorf("v2 endpoint: %+v", v2)
	}
	if p := v2.PortFor(svc.Ports[0]); p != 8080 {
		t.Errorf("v2 PortFor = %d, want its resolved named target port 8080", p)
	}
	if p := v1.PortFor(svc.Ports[0]); p != 9080 {
		t.Errorf("v1 PortFor = %d, want the targetPort 9080", p)
	}
	if !v2.Matches(map[string]string{"version": "v2"}) || v1.Matches(map[string]string{"version": "v2"}) {
		t.Error("subset labels select on the pods' labels")
	}
}
