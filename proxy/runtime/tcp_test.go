package runtime

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/internal/testnet"
	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

func tcpProxyListener(t testing.TB, name, addr, cluster string) *listenerv3.Listener {
	t.Helper()
	tc, err := anypb.New(&tcpv3.TcpProxy{StatPrefix: name, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{Name: name, Address: sockAddr(t, addr),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: tcpproxy.FilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc}}}}}}
}

func tcpEcho(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c); c.(*net.TCPConn).CloseWrite() }()
		}
	}()
	return ln.Addr().String()
}

func echoOnce(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: %q %v", buf, err)
	}
}

func TestTCPListenerBindSwapAndDrain(t *testing.T) {
	up := tcpEcho(t)
	r := &Resources{
		Listeners: map[string]*listenerv3.Listener{"tcp": tcpProxyListener(t, "tcp", "127.0.0.1:0", "db")},
		Clusters:  map[string]*clusterv3.Cluster{"db": edsCluster("db", clusterv3.Cluster_ROUND_ROBIN)},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"db": cla(t, "db", up)},
	}
	conns := make(chan *tcpproxy.Result, 10)
	p := New(Options{OnConnection: func(r *tcpproxy.Result) { c := *r; conns <- &c }})
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	cfg, err := p.Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	addr := p.ListenerAddr("tcp").String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, "one")

	// A swap keeping the listener keeps its socket and the open connection.
	cfg2, err := p.Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg2); err != nil {
		t.Fatal(err)
	}
	if p.ListenerAddr("tcp").String() != addr {
		t.Fatal("listener rebound on an unchanged swap")
	}
	echoOnce(t, c, "two")

	// Removal: no new connections, the open one goes on until it ends.
	r3 := &Resources{Clusters: r.Clusters, Endpoints: r.Endpoints}
	cfg3, err := p.Compile(r3)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg3); err != nil {
		t.Fatal(err)
	}
	if p.ListenerAddr("tcp") != nil {
		t.Error("removed listener still listed")
	}
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Error("removed listener still accepting")
	}
	echoOnce(t, c, "three")
	c.(*net.TCPConn).CloseWrite()
	io.ReadAll(c)
	select {
	case res := <-conns:
		if res.Cluster != "db" || res.Upstream != up || res.BytesReceived != 11 || res.BytesSent != 11 || res.Flags != "" {
			t.Errorf("result %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no connection result")
	}
}

func TestTCPConnectFailureClosesClient(t *testing.T) {
	r := &Resources{
		Listeners: map[string]*listenerv3.Listener{"tcp": tcpProxyListener(t, "tcp", "127.0.0.1:0", "db")},
		Clusters:  map[string]*clusterv3.Cluster{"db": edsCluster("db", clusterv3.Cluster_ROUND_ROBIN)},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"db": cla(t, "db", testnet.Refusing(t))},
	}
	conns := make(chan *tcpproxy.Result, 1)
	p := New(Options{OnConnection: func(r *tcpproxy.Result) { c := *r; conns <- &c }})
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	cfg, err := p.Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.ListenerAddr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read %v, want EOF", err)
	}
	if res := <-conns; res.Flags != tcpproxy.FlagConnectFailure {
		t.Errorf("flags %q", res.Flags)
	}
}

// Outlier ejections, breaker counters and transports survive Proxy.Compile
// and Update.
func TestClusterStateSurvivesSwaps(t *testing.T) {
	dc := edsCluster("c", clusterv3.Cluster_ROUND_ROBIN)
	dc.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(2),
		BaseEjectionTime: durationpb.New(time.Hour), MaxEjectionPercent: wrapperspb.UInt32(50)}
	r := &Resources{
		Clusters:  map[string]*clusterv3.Cluster{"c": dc},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"c": cla(t, "c", "127.0.0.1:1", "127.0.0.1:2")},
	}
	p := New(Options{})
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	cfg, err := p.Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	c1 := cfg.Cluster("c")
	c1.Observe(c1.Endpoints[0], 500, false)
	c1.Observe(c1.Endpoints[0], 503, false)
	if !c1.AdmitRequest() {
		t.Fatal("request refused")
	}
	cfg2, err := p.Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg2); err != nil {
		t.Fatal(err)
	}
	c2 := cfg2.Cluster("c")
	if !c2.Ejected("127.0.0.1:1") {
		t.Error("ejection lost in the swap")
	}
	for range 100 {
		if c2.Pick(nil, lb.Hash{}).Address == "127.0.0.1:1" {
			t.Fatal("ejected host picked after the swap")
		}
	}
	if n, _, _ := c2.Active(); n != 1 {
		t.Errorf("in-flight requests after the swap: %d", n)
	}
	c1.ReleaseRequest()
	if c1.Transport() != c2.Transport() {
		t.Error("transport not shared across the swap")
	}
	// The package-level Compile starts from scratch.
	fresh, err := Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Cluster("c").Ejected("127.0.0.1:1") {
		t.Error("Compile shares state")
	}
}
