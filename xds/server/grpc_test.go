package server

import (
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/translate"
)

// TestGRPCNodeSubscribesByName: a proxyless gRPC node asks for the
// listener of its target first, then its route table, then the clusters
// the routes name, then their endpoints, each by name; it is served in
// that order (not held back waiting for CDS) and counts as synced once it
// holds what it asked for.
func TestGRPCNodeSubscribesByName(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog", "reviews")
	s, addr := start(t, gen)
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "caller", Namespace: "coolapp", Generator: node.GeneratorGRPC}
	c := dial(t, addr, meta)
	target := translate.GRPCTarget("catalog.coolapp.svc.cluster.local", 8080)
	cluster := translate.ClusterName(8080, "", "catalog.coolapp.svc.cluster.local")
	step := func(typ string, names ...string) *discovery.DiscoveryResponse {
		t.Helper()
		c.send(&discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names})
		r := c.next(2 * time.Second)
		if r == nil || r.TypeUrl != typ || len(r.Resources) != 1 {
			t.Fatalf("asked %s %v, got %v", shortType(typ), names, r)
		}
		c.send(&discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce})
		return r
	}
	step(translate.ListenerType, target)
	step(translate.RouteType, target)
	step(translate.ClusterType, cluster)
	step(translate.EndpointType, cluster)
	waitFor(t, "synced", func() bool {
		cs := s.Connections()
		return len(cs) == 1 && cs[0].Sync.State == Synced
	})
	if r := c.next(300 * time.Millisecond); r != nil {
		t.Errorf("unasked for %s sent", shortType(r.TypeUrl))
	}
}
