package server

import (
	"testing"

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
	initial := c.expect(5)
	cds, eds := initial[1], initial[2]
	if cds.TypeUrl != translate.ClusterType || eds.TypeUrl != translate.EndpointType {
		t.Fatalf("initial order %v", types(initial))
	}
	// Subscribe by name, as the weft proxy and Envoy do.
	edsRequest := func(names []string) *discovery.DiscoveryRequest {
		return &discovery.DiscoveryRequest{TypeUrl: translate.EndpointType, VersionInfo: eds.VersionInfo, ResponseNonce: eds.Nonce, ResourceNames: names}
	}
	c.send(edsRequest(edsClusterNames(t, cds)))
	c.settle()

	gen.set("catalog", "reviews")
	s.Push("reviews added")
	got := c.expect(1)
	if got[0].TypeUrl != translate.ClusterType {
		t.Fatalf("first push response %v", types(got))
	}
	cds = got[0]
	// The CDS is ACKed; the proxy has not asked for the new cluster's
	// endpoints yet: nothing may route to it.
	if got = c.settle(); len(got) != 0 {
		t.Fatalf("sent %v before the proxy asked for the new cluster's endpoints", types(got))
	}
	c.send(edsRequest(edsClusterNames(t, cds)))
	if got = c.expect(2); !eq(types(got), []string{"EDS", "RDS"}) {
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
