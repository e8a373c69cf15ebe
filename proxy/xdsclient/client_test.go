package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weft-mesh/weft/proxy/runtime"
	"github.com/weft-mesh/weft/xds/node"
)

const wait = 5 * time.Second

// fakeADS is a minimal ADS server: it records requests per type and lets
// the test push responses on the current stream.
type fakeADS struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	addr string
	srv  *grpc.Server

	mu     sync.Mutex
	reqs   map[string]chan *discovery.DiscoveryRequest
	out    chan *discovery.DiscoveryResponse // current stream's sends
	nonce  int
	stream chan struct{} // receives one value per stream opened
	auth   []string      // the authorization metadata of the last stream
	opts   []grpc.ServerOption
}

func newFakeADS(t *testing.T, addr string, opts ...grpc.ServerOption) *fakeADS {
	t.Helper()
	f := &fakeADS{reqs: map[string]chan *discovery.DiscoveryRequest{}, stream: make(chan struct{}, 16), opts: opts}
	for _, typ := range typeOrder {
		f.reqs[typ] = make(chan *discovery.DiscoveryRequest, 64)
	}
	f.start(t, addr)
	return f
}

func (f *fakeADS) start(t *testing.T, addr string) {
	t.Helper()
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(wait); ; {
		// The port of a stopped server may take a moment to be free.
		if lis, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f.addr = lis.Addr().String()
	f.srv = grpc.NewServer(f.opts...)
	discovery.RegisterAggregatedDiscoveryServiceServer(f.srv, f)
	go f.srv.Serve(lis)
	t.Cleanup(f.srv.Stop)
}

func (f *fakeADS) StreamAggregatedResources(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	out := make(chan *discovery.DiscoveryResponse, 16)
	md, _ := metadata.FromIncomingContext(st.Context())
	f.mu.Lock()
	f.out = out
	f.auth = md.Get("authorization")
	f.mu.Unlock()
	f.stream <- struct{}{}
	go func() {
		for {
			req, err := st.Recv()
			if err != nil {
				return
			}
			if ch, ok := f.reqs[req.GetTypeUrl()]; ok {
				ch <- req
			}
		}
	}()
	for {
		select {
		case r := <-out:
			if err := st.Send(r); err != nil {
				return err
			}
		case <-st.Context().Done():
			return nil
		}
	}
}

// push sends a response of typ and returns its nonce.
func (f *fakeADS) push(t *testing.T, typ, version string, msgs ...proto.Message) string {
	t.Helper()
	var anys []*anypb.Any
	for _, m := range msgs {
		anys = append(anys, mustAny(t, m))
	}
	return f.pushAny(typ, version, anys...)
}

func (f *fakeADS) pushAny(typ, version string, anys ...*anypb.Any) string {
	f.mu.Lock()
	f.nonce++
	nonce := fmt.Sprintf("n%d", f.nonce)
	out := f.out
	f.mu.Unlock()
	out <- &discovery.DiscoveryResponse{TypeUrl: typ, VersionInfo: version, Nonce: nonce, Resources: anys}
	return nonce
}

// next returns the next request of typ.
func (f *fakeADS) next(t *testing.T, typ string) *discovery.DiscoveryRequest {
	t.Helper()
	select {
	case r := <-f.reqs[typ]:
		return r
	case <-time.After(wait):
		t.Fatalf("no %s request within %v", shortType(typ), wait)
		return nil
	}
}

// noneYet fails if a request of typ has arrived. Requests are recorded in
// the order the client sent them, so after a later request was seen this
// is proof that none of typ was sent before it, not a bet on timing.
func (f *fakeADS) noneYet(t *testing.T, typ string) {
	t.Helper()
	select {
	case r := <-f.reqs[typ]:
		t.Fatalf("unexpected %s request: %v", shortType(typ), r)
	default:
	}
}

func (f *fakeADS) waitStream(t *testing.T) {
	t.Helper()
	select {
	case <-f.stream:
	case <-time.After(wait):
		t.Fatal("client did not open a stream")
	}
}

// recorder is an Apply callback standing in for runtime.Compile: a set is
// incomplete while a listener names a missing route config, and rejected
// when reject says so.
type recorder struct {
	mu     sync.Mutex
	calls  []*runtime.Resources
	reject func(*runtime.Resources) error
	ch     chan *runtime.Resources
}

func newRecorder() *recorder { return &recorder{ch: make(chan *runtime.Resources, 64)} }

func (r *recorder) apply(res *runtime.Resources) error {
	r.mu.Lock()
	r.calls = append(r.calls, res)
	reject := r.reject
	r.mu.Unlock()
	defer func() { r.ch <- res }()
	if reject != nil {
		if err := reject(res); err != nil {
			return err
		}
	}
	names, err := rdsNamesOf(res.Listeners)
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, ok := res.Routes[n]; !ok {
			return fmt.Errorf("route config %q: %w", n, runtime.ErrIncomplete)
		}
	}
	return nil
}

func (r *recorder) next(t *testing.T) *runtime.Resources {
	t.Helper()
	select {
	case res := <-r.ch:
		return res
	case <-time.After(wait):
		t.Fatal("Apply not called")
		return nil
	}
}

// noneYet fails if Apply has been called. The client applies a response
// before it ACKs or NACKs it, so after that reply was seen this is proof
// that the response was not applied, not a bet on timing.
func (r *recorder) noneYet(t *testing.T) {
	t.Helper()
	select {
	case res := <-r.ch:
		t.Fatalf("unexpected Apply with %d listeners, %d clusters", len(res.Listeners), len(res.Clusters))
	default:
	}
}

func edsCluster(name string) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		ConnectTimeout:       durationpb.New(10 * time.Second),
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{
			EdsConfig: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}},
		},
	}
}

func cla(name string) *endpoint.ClusterLoadAssignment {
	return &endpoint.ClusterLoadAssignment{ClusterName: name}
}

func rdsListener(t *testing.T, name, routeName string) *listener.Listener {
	t.Helper()
	h, err := anypb.New(&hcm.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			RouteConfigName: routeName,
			ConfigSource:    &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &listener.Listener{
		Name: name,
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 15001},
		}}},
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listener.Filter_TypedConfig{TypedConfig: h},
		}}}},
	}
}

func routeConfig(name string) *route.RouteConfiguration {
	return &route.RouteConfiguration{Name: name}
}

const (
	clA = "outbound|80||a.default.svc.cluster.local"
	clB = "outbound|80||b.default.svc.cluster.local"
)

func testNode() *core.Node {
	m := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "a-1", Namespace: "default", WorkloadName: "a"}
	return m.Node()
}

// startClient runs a client against f until the test ends.
func startClient(t *testing.T, f *fakeADS, rec *recorder) *Client {
	t.Helper()
	return startClientWith(t, f, rec, nil)
}

// startClientWith is startClient with edit applied to the options.
func startClientWith(t *testing.T, f *fakeADS, rec *recorder, edit func(*Options)) *Client {
	t.Helper()
	o := Options{Server: f.addr, Node: testNode(), Apply: rec.apply, BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond}
	if edit != nil {
		edit(&o)
	}
	c := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

// converge drives a fresh client to a complete, applied config: cluster A
// with its endpoints, listener "out" with route config "outbound".
func converge(t *testing.T, f *fakeADS, rec *recorder) {
	t.Helper()
	f.waitStream(t)
	sds := f.next(t, typeSecret)
	if sds.GetNode().GetId() != testNode().GetId() || len(sds.GetResourceNames()) != 0 {
		t.Fatalf("first request = %v, want SDS wildcard with node %s", sds, testNode().GetId())
	}
	if cds := f.next(t, typeCluster); cds.GetNode() != nil {
		t.Fatalf("CDS subscribe = %v, want no node", cds)
	}
	if lds := f.next(t, typeListener); lds.GetNode() != nil || len(lds.GetResourceNames()) != 0 {
		t.Fatalf("LDS subscribe = %v, want wildcard without node", lds)
	}

	nonce := f.push(t, typeCluster, "c1", edsCluster(clA))
	ack := f.next(t, typeCluster)
	if ack.GetVersionInfo() != "c1" || ack.GetResponseNonce() != nonce || ack.GetErrorDetail() != nil {
		t.Fatalf("CDS ACK = %v, want version c1 nonce %s", ack, nonce)
	}
	eds := f.next(t, typeEndpoint)
	if !slices.Equal(eds.GetResourceNames(), []string{clA}) {
		t.Fatalf("EDS subscription = %v, want [%s]", eds.GetResourceNames(), clA)
	}
	f.push(t, typeEndpoint, "e1", cla(clA))
	if ack := f.next(t, typeEndpoint); ack.GetVersionInfo() != "e1" {
		t.Fatalf("EDS ACK = %v", ack)
	}
	rec.noneYet(t) // no listeners yet: nothing to apply

	f.push(t, typeListener, "l1", rdsListener(t, "out", "outbound"))
	if ack := f.next(t, typeListener); ack.GetVersionInfo() != "l1" || ack.GetErrorDetail() != nil {
		t.Fatalf("LDS ACK (incomplete set) = %v", ack)
	}
	if res := rec.next(t); len(res.Listeners) != 1 || len(res.Routes) != 0 {
		t.Fatalf("Apply before RDS got %d listeners, %d routes", len(res.Listeners), len(res.Routes))
	}
	rds := f.next(t, typeRoute)
	if !slices.Equal(rds.GetResourceNames(), []string{"outbound"}) {
		t.Fatalf("RDS subscription = %v, want [outbound]", rds.GetResourceNames())
	}
	f.push(t, typeRoute, "r1", routeConfig("outbound"))
	if ack := f.next(t, typeRoute); ack.GetVersionInfo() != "r1" || ack.GetErrorDetail() != nil {
		t.Fatalf("RDS ACK = %v", ack)
	}
	if res := rec.next(t); len(res.Routes) != 1 || len(res.Endpoints) != 1 || len(res.Clusters) != 1 {
		t.Fatalf("Apply after RDS = %+v", res)
	}
}

// TestAckAndIncomplete covers the ACK path, the EDS/RDS subscriptions
// derived from CDS/LDS, and LDS before RDS being ACKed and applied again.
func TestAckAndIncomplete(t *testing.T) {
	f := newFakeADS(t, "127.0.0.1:0")
	rec := newRecorder()
	c := startClient(t, f, rec)
	converge(t, f, rec)

	if !c.Connected() {
		t.Error("Connected() = false on a live stream")
	}
	acked := c.Acked()
	for typ, want := range map[string]string{typeCluster: "c1", typeEndpoint: "e1", typeListener: "l1", typeRoute: "r1"} {
		if got := acked[typ]; got.Version != want || len(got.Resources) != 1 {
			t.Errorf("Acked()[%s] = %s with %d resources, want %s with 1", shortType(typ), got.Version, len(got.Resources), want)
		}
	}
}

func TestSubscriptionsFollowClustersAndListeners(t *testing.T) {
	f := newFakeADS(t, "127.0.0.1:0")
	rec := newRecorder()
	startClient(t, f, rec)
	converge(t, f, rec)

	f.push(t, typeCluster, "c2", edsCluster(clA), edsCluster(clB))
	f.next(t, typeCluster)
	if eds := f.next(t, typeEndpoint); !slices.Equal(eds.GetResourceNames(), []string{clA, clB}) || eds.GetVersionInfo() != "e1" {
		t.Fatalf("EDS resubscribe = %v, want [%s %s] at e1", eds.GetResourceNames(), clA, clB)
	}
	rec.next(t)

	// An EDS response updates only the names it carries.
	f.push(t, typeEndpoint, "e2", cla(clB))
	f.next(t, typeEndpoint)
	if res := rec.next(t); len(res.Endpoints) != 2 {
		t.Fatalf("after partial EDS, %d endpoints, want 2", len(res.Endpoints))
	}

	// Dropping cluster A withdraws its endpoints.
	f.push(t, typeCluster, "c3", edsCluster(clB))
	f.next(t, typeCluster)
	if eds := f.next(t, typeEndpoint); !slices.Equal(eds.GetResourceNames(), []string{clB}) {
		t.Fatalf("EDS resubscribe = %v, want [%s]", eds.GetResourceNames(), clB)
	}
	if res := rec.next(t); len(res.Endpoints) != 1 || res.Endpoints[clB] == nil {
		t.Fatalf("after dropping %s, endpoints = %v", clA, res.Endpoints)
	}

	// A listener switching route config moves the RDS subscription.
	f.push(t, typeListener, "l2", rdsListener(t, "out", "http.80"))
	f.next(t, typeListener)
	if rds := f.next(t, typeRoute); !slices.Equal(rds.GetResourceNames(), []string{"http.80"}) {
		t.Fatalf("RDS resubscribe = %v, want [http.80]", rds.GetResourceNames())
	}
	if res := rec.next(t); len(res.Routes) != 0 {
		t.Fatalf("stale route configs kept: %v", res.Routes)
	}
}

func TestNack(t *testing.T) {
	f := newFakeADS(t, "127.0.0.1:0")
	rec := newRecorder()
	c := startClient(t, f, rec)
	converge(t, f, rec)

	rec.mu.Lock()
	rec.reject = func(r *runtime.Resources) error {
		if _, bad := r.Clusters[clB]; bad {
			return errors.New("cluster b: lb_policy MAGLEV is not supported")
		}
		return nil
	}
	rec.mu.Unlock()

	nonce := f.push(t, typeCluster, "c2", edsCluster(clA), edsCluster(clB))
	nack := f.next(t, typeCluster)
	if nack.GetErrorDetail() == nil || nack.GetErrorDetail().GetCode() != 3 {
		t.Fatalf("NACK error_detail = %v, want code 3", nack.GetErrorDetail())
	}
	if nack.GetVersionInfo() != "c1" || nack.GetResponseNonce() != nonce {
		t.Fatalf("NACK version %q nonce %q, want c1 %s", nack.GetVersionInfo(), nack.GetResponseNonce(), nonce)
	}
	if bad := rec.next(t); bad.Clusters[clB] == nil {
		t.Fatal("Apply was not given the rejected set")
	}
	if got := c.Acked()[typeCluster]; got.Version != "c1" || len(got.Resources) != 1 {
		t.Fatalf("Acked CDS = %s with %d, want c1 with 1", got.Version, len(got.Resources))
	}

	// The next update builds on the ACKed state, not the rejected one.
	f.push(t, typeRoute, "r2", routeConfig("outbound"), routeConfig("ignored"))
	f.next(t, typeRoute)
	f.noneYet(t, typeEndpoint) // sent before this ACK, if at all: a rejected cluster subscribes nothing
	f.push(t, typeListener, "l2", rdsListener(t, "out", "outbound"), rdsListener(t, "out2", "outbound"))
	if ack := f.next(t, typeListener); ack.GetErrorDetail() != nil {
		t.Fatalf("LDS NACKed: %v", ack.GetErrorDetail())
	}
	if res := rec.next(t); res.Clusters[clB] != nil || len(res.Listeners) != 2 {
		t.Fatalf("Apply after NACK = %d clusters (B present: %v), %d listeners", len(res.Clusters), res.Clusters[clB] != nil, len(res.Listeners))
	}
}

func TestNackMalformed(t *testing.T) {
	f := newFakeADS(t, "127.0.0.1:0")
	rec := newRecorder()
	c := startClient(t, f, rec)
	converge(t, f, rec)

	cases := map[string][]*anypb.Any{
		"wrong type":  {mustAny(t, routeConfig("x"))},
		"bad bytes":   {{TypeUrl: typeCluster, Value: []byte{0xff, 0xff}}},
		"no name":     {mustAny(t, &cluster.Cluster{ConnectTimeout: durationpb.New(time.Second)})},
		"duplicate":   {mustAny(t, edsCluster(clA)), mustAny(t, edsCluster(clA))},
		"invalid pgv": {mustAny(t, &cluster.Cluster{Name: "neg", ConnectTimeout: durationpb.New(-time.Second)})},
	}
	for name, anys := range cases {
		t.Run(name, func(t *testing.T) {
			f.pushAny(typeCluster, "bad", anys...)
			nack := f.next(t, typeCluster)
			if nack.GetErrorDetail() == nil || nack.GetVersionInfo() != "c1" {
				t.Fatalf("want NACK at c1, got %v", nack)
			}
			t.Logf("NACK message: %s", nack.GetErrorDetail().GetMessage())
		})
	}
	f.pushAny("type.googleapis.com/envoy.service.runtime.v3.Runtime", "s1")
	// Responses are handled in order: once the resend after it is ACKed,
	// the unknown type was NACKed without an Apply.
	f.push(t, typeCluster, "c1", edsCluster(clA))
	if ack := f.next(t, typeCluster); ack.GetErrorDetail() != nil {
		t.Fatalf("ACK of the resend = %v", ack)
	}
	rec.noneYet(t)
	if got := c.Acked()[typeCluster].Version; got != "c1" {
		t.Fatalf("Acked CDS version = %s, want c1", got)
	}
}

func TestReconnectFailsStatic(t *testing.T) {
	f := newFakeADS(t, "127.0.0.1:0")
	rec := newRecorder()
	ended := &countingHandler{msg: "xds stream ended; keeping the current config"}
	c := startClientWith(t, f, rec, func(o *Options) { o.Log = slog.New(ended) })
	converge(t, f, rec)

	f.srv.Stop()
	deadline := time.Now().Add(wait)
	for c.Connected() || ended.n.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("after the server stopped: connected %v, %d streams ended", c.Connected(), ended.n.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	rec.noneYet(t) // several failed reconnects, config untouched

	f.start(t, f.addr)
	f.waitStream(t)
	want := map[string]struct {
		version string
		names   []string
	}{
		typeSecret:   {"", nil},
		typeCluster:  {"c1", nil},
		typeEndpoint: {"e1", []string{clA}},
		typeListener: {"l1", nil},
		typeRoute:    {"r1", []string{"outbound"}},
	}
	for _, typ := range typeOrder {
		r := f.next(t, typ)
		if r.GetVersionInfo() != want[typ].version || !slices.Equal(r.GetResourceNames(), want[typ].names) || r.GetResponseNonce() != "" {
			t.Errorf("%s resubscribe = version %q names %v nonce %q, want %q %v", shortType(typ),
				r.GetVersionInfo(), r.GetResourceNames(), r.GetResponseNonce(), want[typ].version, want[typ].names)
		}
		if (typ == typeSecret) != (r.GetNode() != nil) {
			t.Errorf("%s resubscribe: node sent = %v, want only on the first request", shortType(typ), r.GetNode() != nil)
		}
	}

	// The restarted server resends what the client has: ACK, no re-apply.
	f.push(t, typeCluster, "c1", edsCluster(clA))
	if ack := f.next(t, typeCluster); ack.GetErrorDetail() != nil || ack.GetVersionInfo() != "c1" {
		t.Fatalf("ACK of resend = %v", ack)
	}
	rec.noneYet(t)

	// And a real change after the reconnect is applied.
	f.push(t, typeRoute, "r2", &route.RouteConfiguration{Name: "outbound", VirtualHosts: []*route.VirtualHost{{Name: "a", Domains: []string{"a"}}}})
	f.next(t, typeRoute)
	if res := rec.next(t); len(res.Routes["outbound"].GetVirtualHosts()) != 1 {
		t.Fatal("change after reconnect not applied")
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestJitterBounds(t *testing.T) {
	for range 1000 {
		d := jitter(100 * time.Millisecond)
		if d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("jitter(100ms) = %v, want within [50ms, 100ms]", d)
		}
	}
}

func TestRunRejectsIncompleteOptions(t *testing.T) {
	if err := New(Options{Server: "127.0.0.1:1"}).Run(context.Background()); err == nil {
		t.Fatal("Run without node and Apply: want error")
	}
}

// countingHandler is a slog.Handler counting the records with message msg.
type countingHandler struct {
	msg string
	n   atomic.Int64
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
