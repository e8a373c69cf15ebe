package translate

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// TestEndpointOfGoneSidecarUnhealthy: a WorkloadEntry registered by a
// sidecar (annotation weft.io/proxy) whose xDS stream is down is sent
// UNHEALTHY, and its locality's weight counts only the endpoints still
// taking traffic; the others, and every endpoint without ProxyDown, are
// sent with no health status (in load balancing).
func TestEndpointOfGoneSidecarUnhealthy(t *testing.T) {
	entry := func(name, addr, proxy string) *config.Object {
		o := obj(config.KindWorkloadEntry, name, &networking.WorkloadEntry{Address: addr, Labels: map[string]string{"app": "catalog"}})
		if proxy != "" {
			o.Meta.Annotations = map[string]string{config.AnnotationProxy: proxy}
		}
		return o
	}
	se := svcEntry("catalog", 8080)
	se.Spec.(*networking.ServiceEntry).WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": "catalog"}}
	objs := []*config.Object{se,
		entry("catalog-a", "127.0.0.2", "sidecar~127.0.0.1~a.coolapp~coolapp.svc.cluster.local"),
		entry("catalog-b", "127.0.0.3", "sidecar~127.0.0.1~b.coolapp~coolapp.svc.cluster.local"),
		entry("catalog-vm", "127.0.0.4", ""),
	}
	snap := model.Build(1, objs)
	cluster := ClusterName(8080, "", "catalog."+ns+".svc.cluster.local")
	health := func(opts Options) (map[string]core.HealthStatus, uint32) {
		r := GenerateWith(snap, sidecarMeta(), opts)
		out := map[string]core.HealthStatus{}
		var locW uint32
		for _, l := range r.Endpoints[cluster].GetEndpoints() {
			locW += l.GetLoadBalancingWeight().GetValue()
			for _, e := range l.GetLbEndpoints() {
				out[e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = e.GetHealthStatus()
			}
		}
		return out, locW
	}
	all, w := health(Options{})
	if len(all) != 3 || w != 3 {
		t.Fatalf("without ProxyDown: %v, locality weight %d", all, w)
	}
	for a, h := range all {
		if h != core.HealthStatus_UNKNOWN {
			t.Errorf("without ProxyDown %s is %v", a, h)
		}
	}
	got, w := health(Options{ProxyDown: func(id string) bool { return id == "sidecar~127.0.0.1~a.coolapp~coolapp.svc.cluster.local" }})
	want := map[string]core.HealthStatus{"127.0.0.2": core.HealthStatus_UNHEALTHY, "127.0.0.3": core.HealthStatus_UNKNOWN, "127.0.0.4": core.HealthStatus_UNKNOWN}
	for a, h := range want {
		if got[a] != h {
			t.Errorf("%s: %v, want %v", a, got[a], h)
		}
	}
	if w != 2 {
		t.Errorf("locality weight %d, want 2 (the healthy endpoints')", w)
	}
}
