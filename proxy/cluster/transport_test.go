package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/internal/testnet"
	"github.com/weft-mesh/weft/proxy/lb"
)

// connServer counts the connections it accepts and those closed.
type connServer struct {
	*httptest.Server
	opened, closed atomic.Int32
}

func newConnServer(t *testing.T) *connServer {
	s := &connServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, c *Cluster) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.Pick(nil, lb.Hash{}).Address+"/", nil)
	resp, err := c.Transport().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	resp.Body.Close()
}

func withOptions(t *testing.T, addr string, co *corev3.HttpProtocolOptions) *Cluster {
	pc := static(t, "c", addr)
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: co,
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}},
	})
	return mustCompile(t, NewState(StateOptions{}), pc)
}

func TestMaxRequestsPerConnection(t *testing.T) {
	for _, n := range []uint32{1, 2, 3} {
		srv := newConnServer(t)
		c := withOptions(t, srv.Listener.Addr().String(), &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(n)})
		if c.HTTP.MaxRequestsPerConnection != n || c.HTTP.Protocol != ProtocolHTTP1 {
			t.Fatalf("settings %+v", c.HTTP)
		}
		for range 6 {
			get(t, c)
		}
		if got := srv.opened.Load(); got != int32(6/n) {
			t.Errorf("max_requests_per_connection %d: %d connections for 6 requests, want %d", n, got, 6/n)
		}
	}
	// Unlimited: one connection.
	srv := newConnServer(t)
	c := mustCompile(t, NewState(StateOptions{}), static(t, "c", srv.Listener.Addr().String()))
	for range 6 {
		get(t, c)
	}
	if got := srv.opened.Load(); got != 1 {
		t.Errorf("keep-alive: %d connections", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	srv := newConnServer(t)
	c := withOptions(t, srv.Listener.Addr().String(), &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(100 * time.Millisecond)})
	if c.HTTP.IdleTimeout != 100*time.Millisecond {
		t.Fatalf("settings %+v", c.HTTP)
	}
	get(t, c)
	eventually(t, "the idle connection to close", func() bool { return srv.closed.Load() == 1 })
}

// TestConnectTimeoutApplied: dials to an address that never answers (a
// listener whose accept queue is full drops every SYN) end with a timeout
// from the cluster's connect_timeout, for HTTP requests and for the TCP
// proxy's connections alike. Without a connect timeout they would hang
// until the watchdog context ends, which fails the test.
func TestConnectTimeoutApplied(t *testing.T) {
	hole := testnet.Blackhole(t)
	pc := static(t, "c", hole)
	pc.ConnectTimeout = durationpb.New(250 * time.Millisecond)
	c := mustCompile(t, NewState(StateOptions{}), pc)
	if c.HTTP.ConnectTimeout != 250*time.Millisecond {
		t.Fatalf("settings %+v", c.HTTP)
	}
	// The watchdog bounds a broken build only; a pass needs the dialer's
	// own timeout, not this context's.
	watchdog, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	timedOut := func(what string, err error) {
		t.Helper()
		var ne net.Error
		if watchdog.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s to a black hole: %v (watchdog: %v), want the connect timeout", what, err, watchdog.Err())
		}
	}
	start := time.Now()
	_, err := c.Transport().RoundTrip(mustReq(t, "http://"+hole+"/").WithContext(watchdog))
	timedOut("HTTP request", err)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("gave up after %v, before the connect timeout: the address is no black hole", d)
	}
	conn, err := c.Dial(watchdog, c.Endpoints[0])
	if conn != nil {
		conn.Close()
	}
	timedOut("TCP dial", err)
}

func mustReq(t *testing.T, u string) *http.Request {
	r, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTransportsSharedAcrossSwaps(t *testing.T) {
	srv := newConnServer(t)
	s := NewState(StateOptions{RetireDelay: 50 * time.Millisecond})
	pc := static(t, "c", srv.Listener.Addr().String())
	c1 := mustCompile(t, s, pc)
	get(t, c1)
	c2 := mustCompile(t, s, pc)
	s.Retain([]*Cluster{c2})
	if c1.Transport() != c2.Transport() {
		t.Fatal("unchanged settings got a new transport")
	}
	get(t, c2)
	if n := srv.opened.Load(); n != 1 {
		t.Errorf("%d connections across a swap, want the pooled one reused", n)
	}
	// Another cluster with the same settings shares it too.
	other := static(t, "d", srv.Listener.Addr().String())
	if mustCompile(t, s, other).Transport() != c2.Transport() {
		t.Error("same settings, different transport")
	}
	// Changed settings: a new transport; the old one's idle connection closes.
	pc.ConnectTimeout = durationpb.New(2 * time.Second)
	c3 := mustCompile(t, s, pc)
	if c3.Transport() == c2.Transport() {
		t.Fatal("changed settings kept the transport")
	}
	s.Retain([]*Cluster{c3})
	eventually(t, "the retired transport's idle connection to close", func() bool { return srv.closed.Load() == 1 })
}

func TestProtocolOptionsErrors(t *testing.T) {
	pc := static(t, "c", "127.0.0.1:1")
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(10)}})
	if _, err := Compile(pc, nil); err == nil || !strings.Contains(err.Error(), "common_http_protocol_options.max_headers_count: unsupported") {
		t.Errorf("err = %v", err)
	}
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}}})
	c, err := Compile(pc, nil)
	if err != nil || c.HTTP.Protocol != ProtocolDownstream {
		t.Errorf("use_downstream_protocol_config: %v %+v", err, c)
	}
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})
	if c, err = Compile(pc, nil); err != nil || c.HTTP.Protocol != ProtocolHTTP2 {
		t.Errorf("explicit http2: %v %+v", err, c)
	}
	pc.TypedExtensionProtocolOptions["other"] = pc.TypedExtensionProtocolOptions[HTTPProtocolOptionsKey]
	if _, err := Compile(pc, nil); err == nil || !strings.Contains(err.Error(), `typed_extension_protocol_options["other"]: unsupported`) {
		t.Errorf("err = %v", err)
	}
}

// h2c upstream for explicit http2.
func TestExplicitHTTP2(t *testing.T) {
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true)
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		io.WriteString(w, "ok")
	}))
	srv.Config.Protocols = protos
	srv.Start()
	defer srv.Close()
	pc := static(t, "c", srv.Listener.Addr().String())
	pc.TypedExtensionProtocolOptions = protocolOptions(t, &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})
	c := mustCompile(t, NewState(StateOptions{}), pc)
	get(t, c)
	if proto.Load() != "HTTP/2.0" {
		t.Errorf("upstream saw %v", proto.Load())
	}
}
