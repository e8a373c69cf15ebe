package server

import (
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/weft-mesh/weft/xds/translate"
)

// TestRoutesWaitForNewClustersEndpoints: a proxy asks for a new cluster's
// endpoints by name only after it took the CDS naming it; the routes that
// may send traffic there wait until it has them, or the proxy would route
// to a cluster without endpoints (503 UH).
func TestRoutesWaitForNewClustersEndpoints(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	s, addr := start(t, gen)
	c := dial(t, addr, sidecar("web"))
	c.subscribeAll()
	var edsNames []string
	var eds *discovery.DiscoveryResponse
	for _, r := range c.drain(200 * time.Millisecond) {
		if r.TypeUrl == translate.ClusterType {
			edsNames = edsClusterNames(t, r)
		}
		if r.TypeUrl == translate.EndpointType {
			eds = r
		}
	}
	// Subscribe by name, as the weft proxy and Envoy do.
	c.send(&discovery.DiscoveryRequest{TypeUrl: translate.EndpointType, VersionInfo: eds.VersionInfo, ResponseNonce: eds.Nonce, ResourceNames: edsNames})
	c.drain(200 * time.Millisecond)

	gen.set("catalog", "reviews")
	s.Push("reviews added")
	cds := c.next(time.Second)
	if cds == nil || cds.TypeUrl != translate.ClusterType {
		t.Fatalf("first push response %v", cds)
	}
	c.ack(cds)
	for r := c.next(300 * time.Millisecond); r != nil; r = c.next(300 * time.Millisecond) {
		if r.TypeUrl == translate.RouteType || r.TypeUrl == translate.ListenerType {
			t.Fatalf("%s sent before the proxy asked for the new cluster's endpoints", shortType(r.TypeUrl))
		}
		c.ack(r)
	}
	c.send(&discovery.DiscoveryRequest{TypeUrl: translate.EndpointType, VersionInfo: eds.VersionInfo, ResponseNonce: eds.Nonce,
		ResourceNames: edsClusterNames(t, cds)})
	got := c.drain(300 * time.Millisecond)
	if !eq(types(got), []string{"EDS", "RDS"}) {
		t.Errorf("after the EDS subscription: %v, want EDS then RDS", types(got))
	}
}

func edsClusterNames(t *testing.T, r *discovery.DiscoveryResponse) []string {
	t.Helper()
	var names []string
	for _, a := range r.Resources {
		cl := &cluster.Cluster{}
		if err := a.UnmarshalTo(cl); err != nil {
			t.Fatal(err)
		}
		if cl.GetType() == cluster.Cluster_EDS {
			names = append(names, cl.GetName())
		}
	}
	return names
}
