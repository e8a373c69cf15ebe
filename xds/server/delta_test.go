package server

import (
	"context"
	"sort"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/resource"
	"github.com/weft-mesh/weft/xds/translate"
)

// deltaClient is a minimal incremental ADS client.
type deltaClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resps  chan *discovery.DeltaDiscoveryResponse
	node   bool
	meta   *node.Meta
}

func dialDelta(t *testing.T, addr string, meta *node.Meta) *deltaClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := &deltaClient{t: t, stream: stream, resps: make(chan *discovery.DeltaDiscoveryResponse, 100), meta: meta}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				close(c.resps)
				return
			}
			c.resps <- r
		}
	}()
	return c
}

func (c *deltaClient) send(req *discovery.DeltaDiscoveryRequest) {
	c.t.Helper()
	if !c.node {
		req.Node, c.node = c.meta.Node(), true
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *deltaClient) next(d time.Duration) *discovery.DeltaDiscoveryResponse {
	select {
	case r := <-c.resps:
		return r
	case <-time.After(d):
		return nil
	}
}

// drain ACKs every response until none comes for quiet; as a proxy does,
// it subscribes to the endpoints of the EDS clusters it is sent.
func (c *deltaClient) drain(quiet time.Duration) []*discovery.DeltaDiscoveryResponse {
	var out []*discovery.DeltaDiscoveryResponse
	for {
		wait := quiet
		if len(out) == 0 {
			wait = time.Second
		}
		r := c.next(wait)
		if r == nil {
			return out
		}
		out = append(out, r)
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce})
	}
}

func deltaNames(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, x := range r.GetResources() {
		out = append(out, x.GetName())
	}
	sort.Strings(out)
	return out
}

func deltaTypes(rs []*discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, r := range rs {
		out = append(out, shortType(r.TypeUrl))
	}
	return out
}

// TestDeltaSendsOnlyChanges: a delta stream gets everything once, then per
// change only the resources that changed and the names of those removed,
// in make-before-break order; a NACKed change is not sent again; a proxy
// reconnecting with what it holds is sent nothing it has.
func TestDeltaSendsOnlyChanges(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog", "reviews")
	s, addr := start(t, gen)
	c := dialDelta(t, addr, sidecar("web"))
	for _, typ := range []string{translate.ClusterType, translate.ListenerType} {
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: typ})
	}
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: translate.EndpointType, ResourceNamesSubscribe: []string{
		translate.ClusterName(8080, "", "catalog.coolapp.svc.cluster.local"), translate.ClusterName(8080, "", "reviews.coolapp.svc.cluster.local")}})
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: translate.RouteType, ResourceNamesSubscribe: []string{translate.OutboundRoute}})
	initial := c.drain(200 * time.Millisecond)
	if got := deltaTypes(initial); !eq(got, []string{"CDS", "EDS", "LDS", "RDS"}) {
		t.Fatalf("initial responses %v", got)
	}
	if n := len(initial[0].GetResources()); n != 3 { // two services and the inbound cluster
		t.Errorf("initial CDS carried %d clusters", n)
	}
	for _, r := range initial {
		for _, x := range r.GetResources() {
			if x.GetVersion() == "" || x.GetResource() == nil {
				t.Errorf("%s %s without version or resource", shortType(r.TypeUrl), x.GetName())
			}
		}
	}

	// One service more: one cluster, then (once the proxy asks for them)
	// its assignment, and only then the route table naming it.
	gen.set("catalog", "reviews", "ratings")
	s.Push("ratings added")
	got := c.drain(200 * time.Millisecond)
	if !eq(deltaTypes(got), []string{"CDS"}) || !eq(deltaNames(got[0]), []string{translate.ClusterName(8080, "", "ratings.coolapp.svc.cluster.local")}) {
		t.Fatalf("after adding ratings: %v, CDS %v (routes wait for the new cluster's endpoints)", deltaTypes(got), deltaNames(got[0]))
	}
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: translate.EndpointType, ResourceNamesSubscribe: []string{translate.ClusterName(8080, "", "ratings.coolapp.svc.cluster.local")}})
	if got := c.drain(200 * time.Millisecond); !eq(deltaTypes(got), []string{"EDS", "RDS"}) || !eq(deltaNames(got[0]), []string{translate.ClusterName(8080, "", "ratings.coolapp.svc.cluster.local")}) {
		t.Fatalf("subscribing to ratings' endpoints sent %v", deltaTypes(got))
	}

	// Removing a service: routes first, then the cluster's removal.
	gen.set("catalog", "ratings")
	s.Push("reviews removed")
	got = c.drain(300 * time.Millisecond)
	if !eq(deltaTypes(got), []string{"RDS", "CDS", "EDS"}) {
		t.Fatalf("removal %v, want RDS, then CDS and EDS", deltaTypes(got))
	}
	if rm := got[1].GetRemovedResources(); len(rm) != 1 || rm[0] != translate.ClusterName(8080, "", "reviews.coolapp.svc.cluster.local") || len(got[1].GetResources()) != 0 {
		t.Errorf("CDS after removal: resources %v, removed %v", deltaNames(got[1]), rm)
	}

	// A NACKed change stays unsent until the next one.
	gen.set("catalog", "ratings", "details")
	s.Push("details added")
	for {
		r := c.next(time.Second)
		if r == nil {
			t.Fatal("no RDS for details")
		}
		if r.TypeUrl != translate.RouteType {
			c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce})
			if r.TypeUrl == translate.ClusterType {
				c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: translate.EndpointType, ResourceNamesSubscribe: []string{translate.ClusterName(8080, "", "details.coolapp.svc.cluster.local")}})
			}
			continue
		}
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce, ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "route: unsupported"}})
		break
	}
	if r := c.next(300 * time.Millisecond); r != nil {
		t.Fatalf("after NACK got %s", shortType(r.TypeUrl))
	}
	s.Push("again")
	if r := c.next(300 * time.Millisecond); r != nil {
		t.Fatalf("NACKed change resent: %s", shortType(r.TypeUrl))
	}
	gen.set("catalog", "details")
	s.Push("ratings removed")
	got = c.drain(300 * time.Millisecond)
	// The proxy kept the route table it had before the NACK, so the next
	// one comes whole again; ratings' cluster goes after it.
	if !eq(deltaTypes(got), []string{"RDS", "CDS", "EDS"}) || len(got[0].GetResources()) != 1 || len(got[1].GetRemovedResources()) != 1 {
		t.Errorf("after the NACK and a new change: %v", deltaTypes(got))
	}

	// Reconnecting with everything it holds: nothing is resent.
	have := map[string]string{}
	out, _ := gen.Generate(sidecar("web"), nil)
	out.Clusters.Range(func(r *resource.Resource) bool { have[r.Name] = r.Version; return true })
	c2 := dialDelta(t, addr, sidecar("web"))
	c2.send(&discovery.DeltaDiscoveryRequest{TypeUrl: translate.ClusterType, InitialResourceVersions: have})
	if r := c2.next(time.Second); r == nil || len(r.GetResources()) != 0 || len(r.GetRemovedResources()) != 0 {
		t.Errorf("reconnect with every cluster got %v", r)
	}
	stale := map[string]string{translate.ClusterName(8080, "", "details.coolapp.svc.cluster.local"): "old", "gone": "x"}
	c3 := dialDelta(t, addr, sidecar("web"))
	c3.send(&discovery.DeltaDiscoveryRequest{TypeUrl: translate.ClusterType, InitialResourceVersions: stale})
	r := c3.next(time.Second)
	if r == nil || len(r.GetResources()) != 3 || len(r.GetRemovedResources()) != 1 || r.GetRemovedResources()[0] != "gone" {
		t.Errorf("reconnect with a stale and an unknown cluster got %v", r)
	}
	var cl cluster.Cluster
	if r != nil && r.GetResources()[0].GetResource().UnmarshalTo(&cl) != nil {
		t.Error("resource does not decode as a Cluster")
	}
}
