package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/resource"
	"github.com/weft-mesh/weft/xds/translate"
)

// fakeGen runs the real translator over a snapshot the test swaps.
type fakeGen struct {
	snap   atomic.Pointer[model.Snapshot]
	broken atomic.Bool
	calls  atomic.Int64
	tr     *translate.Translator
	once   sync.Once
}

func (g *fakeGen) Generate(p *node.Meta, prev *translate.Output) (*translate.Output, error) {
	g.calls.Add(1)
	g.once.Do(func() { g.tr = translate.NewTranslator(translate.Options{}) })
	out := g.tr.Generate(g.snap.Load(), p, prev)
	if g.broken.Load() {
		b := *out
		b.Routes = resource.Empty // the listener now names a missing route table
		return &b, nil
	}
	return out, nil
}

func (g *fakeGen) set(services ...string) {
	var objs []*config.Object
	for _, s := range services {
		objs = append(objs, &config.Object{Kind: config.KindServiceEntry, Meta: config.Meta{Name: s, Namespace: "coolapp"},
			Spec: &networking.ServiceEntry{
				Hosts:     []string{s + ".coolapp.svc.cluster.local"},
				Ports:     []*networking.ServicePort{{Number: 8080, Name: "http", Protocol: "HTTP"}},
				Endpoints: []*networking.WorkloadEntry{{Address: "127.0.0.1", Ports: map[string]uint32{"http": 9000}}},
			}})
	}
	objs = append(objs, &config.Object{Kind: config.KindGateway, Meta: config.Meta{Name: "gw", Namespace: "coolapp"},
		Spec: &networking.Gateway{Selector: map[string]string{"istio": "ingressgateway"},
			Servers: []*networking.Server{{Port: &networking.Port{Number: 80, Protocol: "HTTP"}, Hosts: []string{"*"}}}}})
	g.snap.Store(model.Build(1, objs))
}

func start(t *testing.T, gen Generator) (*Server, string) {
	t.Helper()
	s, addr, _ := startWith(t, gen, Options{})
	return s, addr
}

// startWith serves a Server with o (its Log replaced) on 127.0.0.1 and
// returns it with its address and its log.
func startWith(t *testing.T, gen Generator, o Options) (*Server, string, *syncBuffer) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	o.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := New(gen, o)
	g := grpc.NewServer(ServerOptions()...)
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return s, lis.Addr().String(), logs
}

// webSubscribed starts a server whose generator serves services and
// connects sidecar "web" to it, subscribed to every type.
func webSubscribed(t *testing.T, services ...string) (*fakeGen, *Server, *client) {
	t.Helper()
	gen := &fakeGen{}
	gen.set(services...)
	s, addr := start(t, gen)
	c := dial(t, addr, sidecar("web"))
	c.subscribeAll()
	return gen, s, c
}

func sidecar(name string) *node.Meta {
	return &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: name, Namespace: "coolapp", WorkloadName: name,
		Outbound: "127.0.0.1:15001", Inbound: "127.0.0.1:15006", App: "127.0.0.1:9000"}
}

// client is a minimal ADS client: the test decides what to ACK or NACK.
type client struct {
	t      *testing.T
	conn   *grpc.ClientConn
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps  chan *discovery.DiscoveryResponse
	errc   chan error
	node   *core.Node
	mu     sync.Mutex
	sentOK bool
}

func dial(t *testing.T, addr string, meta *node.Meta) *client {
	t.Helper()
	return dialToken(t, addr, meta, "")
}

// dialToken is dial presenting token as the join token, if not empty.
func dialToken(t *testing.T, addr string, meta *node.Meta, token string) *client {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := context.Background()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: conn, stream: stream, resps: make(chan *discovery.DiscoveryResponse, 100), errc: make(chan error, 1)}
	if meta != nil {
		c.node = meta.Node()
	}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				c.errc <- err
				return
			}
			c.resps <- r
		}
	}()
	return c
}

func (c *client) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	c.mu.Lock()
	if !c.sentOK {
		req.Node, c.sentOK = c.node, true
	}
	c.mu.Unlock()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) subscribeAll() {
	for _, typ := range pushOrder {
		c.send(&discovery.DiscoveryRequest{TypeUrl: typ})
	}
}

func (c *client) ack(r *discovery.DiscoveryResponse) {
	c.send(&discovery.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce})
}

func (c *client) nack(r *discovery.DiscoveryResponse, prevVersion string) {
	c.send(&discovery.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: prevVersion, ResponseNonce: r.Nonce,
		ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "route: unsupported field"}})
}

// next waits for one response, or returns nil after d.
func (c *client) next(d time.Duration) *discovery.DiscoveryResponse {
	select {
	case r := <-c.resps:
		return r
	case <-time.After(d):
		return nil
	}
}

// responseWait bounds the wait for a response the server owes: a
// generous limit for a stuck server, not a measure of its speed.
const responseWait = 10 * time.Second

// expect ACKs and returns the next n responses.
func (c *client) expect(n int) []*discovery.DiscoveryResponse {
	c.t.Helper()
	var out []*discovery.DiscoveryResponse
	for len(out) < n {
		r := c.next(responseWait)
		if r == nil {
			c.t.Fatalf("got %v, then nothing; want %d responses", types(out), n)
		}
		out = append(out, r)
		c.ack(r)
	}
	return out
}

// settle proves what the server sent since the test last read: it
// resubscribes to SDS, which the server must answer, and returns (ACKed)
// every other response that arrived before that answer. The stream is
// ordered, so whatever the server sent earlier comes first: an empty
// result means it sent nothing, without waiting to see.
func (c *client) settle() []*discovery.DiscoveryResponse {
	c.t.Helper()
	others, _ := c.settleSDS()
	return others
}

// settleSDS is settle, also returning the first SDS response after the
// resubscription (the answer, unless the server sent SDS before it).
func (c *client) settleSDS() ([]*discovery.DiscoveryResponse, *discovery.DiscoveryResponse) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{TypeUrl: SecretType})
	var out []*discovery.DiscoveryResponse
	for {
		r := c.next(responseWait)
		if r == nil {
			c.t.Fatalf("no answer to an SDS resubscription (after %v)", types(out))
		}
		c.ack(r)
		if r.TypeUrl == SecretType {
			return out, r
		}
		out = append(out, r)
	}
}

// regenerated waits until the generator has run since calls (as counted
// before a push): anything that push sends is on the stream after that.
func regenerated(t *testing.T, gen *fakeGen, calls int64) {
	t.Helper()
	waitFor(t, "a regeneration", func() bool { return gen.calls.Load() > calls })
}

func types(rs []*discovery.DiscoveryResponse) []string {
	var out []string
	for _, r := range rs {
		out = append(out, shortType(r.TypeUrl))
	}
	return out
}

func eq(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(responseWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInitialOrderAndAcks(t *testing.T) {
	_, s, c := webSubscribed(t, "catalog", "gateway")
	got := c.expect(5)
	if !eq(types(got), []string{"SDS", "CDS", "EDS", "LDS", "RDS"}) {
		t.Fatalf("order %v", types(got))
	}
	if n := len(got[0].Resources); n != 0 {
		t.Errorf("SDS without an issuer has %d secrets", n)
	}
	if n := len(got[1].Resources); n != 3 { // two services + inbound
		t.Errorf("CDS has %d clusters", n)
	}
	waitFor(t, "all ACKs recorded", func() bool {
		conns := s.Connections()
		return len(conns) == 1 && len(conns[0].Acked) == 5
	})
	info := s.Connections()[0]
	if info.ID != sidecar("web").ID() || info.Acked[translate.RouteType] != got[4].VersionInfo {
		t.Errorf("conn info %+v", info)
	}
	v, res, ok := s.Acked(info.ID, translate.ClusterType)
	if !ok || v != got[1].VersionInfo || len(res) != 3 {
		t.Errorf("Acked CDS = %q, %d resources, %v", v, len(res), ok)
	}
	if _, ok := res[0].(*cluster.Cluster); !ok {
		t.Errorf("Acked resource type %T", res[0])
	}
}

func TestPushArrivesAndUnchangedIsNotResent(t *testing.T) {
	gen, s, c := webSubscribed(t, "catalog")
	c.expect(5)

	calls := gen.calls.Load()
	s.Push("no change")
	regenerated(t, gen, calls)
	if got := c.settle(); len(got) != 0 {
		t.Fatalf("unchanged model produced %v", types(got))
	}

	gen.set("catalog", "reviews")
	begin := time.Now()
	s.Push("reviews added")
	got := c.expect(3)
	t.Logf("three responses after %v", time.Since(begin))
	if !eq(types(got), []string{"CDS", "EDS", "RDS"}) {
		t.Errorf("push order %v", types(got))
	}
	if more := c.settle(); len(more) != 0 {
		t.Errorf("then %v (LDS is unchanged: not resent)", types(more))
	}
}

// TestPushCoalesces: a burst of pushes one millisecond apart for 200 ms
// (on the bubble's clock) becomes one regeneration per DefaultDebounceMax, not
// one per push, and nothing is left pending.
func TestPushCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(&fakeGen{}, Options{})
		c := &conn{pushCh: make(chan struct{}, 1)}
		s.conns[1] = c
		var flushes atomic.Int64
		done := make(chan struct{})
		counted := make(chan struct{})
		go func() {
			defer close(counted)
			for {
				select {
				case <-c.pushCh:
					flushes.Add(1)
				case <-done:
					return
				}
			}
		}()
		for range 200 {
			s.Push("burst")
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		close(done)
		<-counted
		if n := flushes.Load(); n < 2 || n > 3 {
			t.Errorf("%d regenerations for a 200-push burst over 200 ms, want one per %v", n, DefaultDebounceMax)
		}
		if !s.pendingSince.IsZero() {
			t.Error("a push is still pending")
		}
	})
}

func TestNackNotResent(t *testing.T) {
	gen, s, c := webSubscribed(t, "catalog")
	initial := c.expect(5)
	oldRDS := initial[4].VersionInfo

	gen.set("catalog", "reviews")
	s.Push("reviews added")
	var nacked string
	for nacked == "" {
		r := c.next(responseWait)
		if r == nil {
			t.Fatal("no RDS push")
		}
		if r.TypeUrl == translate.RouteType {
			nacked = r.VersionInfo
			c.nack(r, oldRDS)
		} else {
			c.ack(r)
		}
	}
	waitFor(t, "NACK recorded", func() bool { return s.Connections()[0].LastNack != "" })
	if got := c.settle(); len(got) != 0 {
		t.Errorf("after NACK got %v", types(got))
	}
	info := s.Connections()[0]
	if info.Acked[translate.RouteType] != oldRDS {
		t.Errorf("ACKed RDS %q, want the pre-NACK %q", info.Acked[translate.RouteType], oldRDS)
	}
	t.Logf("LastNack: %s", info.LastNack)

	// The same model pushed again stays quiet; a new change goes out.
	calls := gen.calls.Load()
	s.Push("again")
	regenerated(t, gen, calls)
	if got := c.settle(); len(got) != 0 {
		t.Errorf("NACKed version resent: %v", types(got))
	}
	gen.set("catalog", "reviews", "ratings")
	s.Push("ratings added")
	got := c.expect(3)
	if !eq(types(got), []string{"CDS", "EDS", "RDS"}) || got[2].VersionInfo == nacked {
		t.Errorf("after a new change got %v", types(got))
	}
}

func TestRemovalSendsRoutesBeforeClusters(t *testing.T) {
	gen, s, c := webSubscribed(t, "catalog", "reviews")
	c.expect(5)

	gen.set("catalog")
	s.Push("reviews removed")
	got := c.expect(3)
	if !eq(types(got), []string{"RDS", "CDS", "EDS"}) {
		t.Fatalf("removal order %v, want RDS then CDS, EDS", types(got))
	}
	if more := c.settle(); len(more) != 0 {
		t.Errorf("then %v", types(more))
	}
	for _, a := range got[1].Resources {
		cl := &cluster.Cluster{}
		if err := a.UnmarshalTo(cl); err != nil {
			t.Fatal(err)
		}
		if cl.Name == translate.ClusterName(8080, "", "reviews.coolapp.svc.cluster.local") {
			t.Error("removed cluster still sent")
		}
	}
}

func TestInvalidResourcesSkipped(t *testing.T) {
	gen, s, c := webSubscribed(t, "catalog")
	c.expect(5)
	gen.broken.Store(true)
	gen.set("catalog", "reviews")
	calls := gen.calls.Load()
	s.Push("broken")
	regenerated(t, gen, calls)
	if got := c.settle(); len(got) != 0 {
		t.Errorf("invalid resources were pushed: %v", types(got))
	}
	gen.broken.Store(false)
	s.Push("fixed")
	if got := c.expect(3); !eq(types(got), []string{"CDS", "EDS", "RDS"}) || len(got[2].Resources) == 0 {
		t.Errorf("fixed model pushed as %v", types(got))
	}
}

func TestTwoConnections(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	s, addr := start(t, gen)
	side := dial(t, addr, sidecar("web"))
	router := dial(t, addr, &node.Meta{Type: node.Router, IP: "127.0.0.1", Name: "gw-1", Namespace: "coolapp",
		Labels: map[string]string{"istio": "ingressgateway"}})
	side.subscribeAll()
	router.subscribeAll()
	sr := side.expect(5)
	rr := router.expect(5)
	if len(sr) != 5 || len(rr) != 5 {
		t.Fatalf("sidecar got %v, router got %v", types(sr), types(rr))
	}
	if sr[3].VersionInfo == rr[3].VersionInfo || len(sr[3].Resources) != 2 || len(rr[3].Resources) != 1 {
		t.Errorf("listeners: sidecar %d@%s, router %d@%s", len(sr[3].Resources), sr[3].VersionInfo, len(rr[3].Resources), rr[3].VersionInfo)
	}
	if n := len(s.Connections()); n != 2 {
		t.Errorf("%d connections", n)
	}
}

func TestDisconnect(t *testing.T) {
	_, s, c := webSubscribed(t, "catalog")
	c.expect(5)
	id := sidecar("web").ID()
	if len(s.Connections()) != 1 {
		t.Fatal("not connected")
	}
	closed := time.Now()
	c.conn.Close()
	waitFor(t, "connection removed", func() bool { return len(s.Connections()) == 0 })
	if seen := s.LastSeen(id); seen.Before(closed) || seen.After(time.Now()) {
		t.Errorf("LastSeen %v, want the disconnect (after %v)", seen, closed)
	}
	if _, _, ok := s.Acked(id, translate.ClusterType); ok {
		t.Error("Acked answers for a disconnected proxy")
	}
}

func TestInvalidNode(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	_, addr := start(t, gen)
	c := dial(t, addr, nil)
	c.node = &core.Node{Id: "bogus"}
	c.send(&discovery.DiscoveryRequest{TypeUrl: translate.ClusterType})
	select {
	case err := <-c.errc:
		if grpcstatus.Code(err) != codes.InvalidArgument {
			t.Errorf("stream ended with %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("stream not closed")
	}
}

// syncBuffer collects server logs; they are printed only when a test fails,
// since the server may still log after the test has returned.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
