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

// TestTranslatorFollowsProxyHealth: one Translator, one snapshot; a
// sidecar going down (DownEpoch moving) makes its endpoint UNHEALTHY in
// the next output, and coming back makes it healthy again, although the
// snapshot never changed.
func TestTranslatorFollowsProxyHealth(t *testing.T) {
	const proxy = "sidecar~127.0.0.1~a.coolapp~coolapp.svc.cluster.local"
	se := svcEntry("catalog", 8080)
	se.Spec.(*networking.ServiceEntry).WorkloadSelector = &networking.WorkloadSelector{Labels: map[string]string{"app": "catalog"}}
	we := obj(config.KindWorkloadEntry, "catalog-a", &networking.WorkloadEntry{Address: "127.0.0.2", Labels: map[string]string{"app": "catalog"}})
	we.Meta.Annotations = map[string]string{config.AnnotationProxy: proxy}
	snap := model.Build(1, []*config.Object{se, we})
	down, epoch := false, uint64(0)
	tr := NewTranslator(Options{ProxyDown: func(id string) bool { return down && id == proxy }, DownEpoch: func() uint64 { return epoch }})
	cluster := ClusterName(8080, "", "catalog."+ns+".svc.cluster.local")
	var prev *Output
	status := func() core.HealthStatus {
		prev = tr.Generate(snap, sidecarMeta(), prev)
		return prev.Resources().Endpoints[cluster].GetEndpoints()[0].GetLbEndpoints()[0].GetHealthStatus()
	}
	if h := status(); h != core.HealthStatus_UNKNOWN {
		t.Fatalf("connected: %v", h)
	}
	down, epoch = true, 1
	if h := status(); h != core.HealthStatus_UNHEALTHY {
		t.Errorf("after its stream dropped: %v, want UNHEALTHY", h)
	}
	down, epoch = false, 2
	if h := status(); h != core.HealthStatus_UNKNOWN {
		t.Errorf("after it reconnected: %v, want no health status", h)
	}
}
