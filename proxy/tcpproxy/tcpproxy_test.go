package tcpproxy

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/internal/testnet"
	"github.com/weft-mesh/weft/proxy/cluster"
)

// echo starts a TCP echo server that half-closes after echoing; it counts
// the connections it accepted.
func echo(t *testing.T) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n := new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String(), n
}

func staticCluster(t *testing.T, name, addr string, mutate func(*clusterv3.Cluster)) *cluster.Cluster {
	h, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	pc := &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout: durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: h, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}}}}}}}}}}
	if mutate != nil {
		mutate(pc)
	}
	c, err := cluster.Compile(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// proxy serves spec over clusters on a new listener; results arrive on the
// returned channel.
func proxy(t *testing.T, spec *Spec, clusters map[string]*cluster.Cluster) (*Server, chan *Result) {
	results := make(chan *Result, 2000)
	s, err := Listen("l", "127.0.0.1:0", func(c net.Conn) {
		results <- Serve(c, "l", spec, func(n string) *cluster.Cluster { return clusters[n] })
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, results
}

// roundTrip sends msg, half-closes and reads until EOF.
func roundTrip(t *testing.T, addr, msg string) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEchoHalfCloseAndResult(t *testing.T) {
	addr, _ := echo(t)
	s, results := proxy(t, &Spec{StatPrefix: "x", Clusters: []WeightedCluster{{"a", 1}}, total: 1},
		map[string]*cluster.Cluster{"a": staticCluster(t, "a", addr, nil)})
	msg := strings.Repeat("hello ", 10000)
	if got := roundTrip(t, s.Addr().String(), msg); got != msg {
		t.Fatalf("echoed %d bytes, want %d", len(got), len(msg))
	}
	r := <-results
	if r.Flags != "" || r.Cluster != "a" || r.Upstream != addr || r.BytesReceived != int64(len(msg)) ||
		r.BytesSent != int64(len(msg)) || r.Duration <= 0 || r.Listener != "l" {
		t.Errorf("result %+v", r)
	}
}

func TestWeightedClusters(t *testing.T) {
	a, na := echo(t)
	b, nb := echo(t)
	spec, err := FromProto(&tcpv3.TcpProxy{StatPrefix: "x", ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{
		WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{
			{Name: "a", Weight: 50}, {Name: "b", Weight: 50}, {Name: "zero", Weight: 0}}}}})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := proxy(t, spec, map[string]*cluster.Cluster{"a": staticCluster(t, "a", a, nil), "b": staticCluster(t, "b", b, nil)})
	const n = 1000
	for i := range n {
		if got := roundTrip(t, s.Addr().String(), "x"); got != "x" {
			t.Fatalf("connection %d echoed %q", i, got)
		}
	}
	sigma := math.Sqrt(n * 0.5 * 0.5)
	if d := math.Abs(float64(na.Load()) - n/2); d > 5*sigma || na.Load()+nb.Load() != n {
		t.Errorf("a=%d b=%d, want 500 each within 5 sigma", na.Load(), nb.Load())
	}
}

func TestFailures(t *testing.T) {
	closed := testnet.Refusing(t)
	outlier := func(pc *clusterv3.Cluster) {
		pc.OutlierDetection = &clusterv3.OutlierDetection{ConsecutiveGatewayFailure: wrapperspb.UInt32(1),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100), BaseEjectionTime: durationpb.New(time.Hour)}
	}
	bad := staticCluster(t, "bad", closed, outlier)
	addr, _ := echo(t)
	full := staticCluster(t, "full", addr, func(pc *clusterv3.Cluster) {
		pc.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxConnections: wrapperspb.UInt32(0)}}}
	})
	empty, err := cluster.Compile(&clusterv3.Cluster{Name: "empty", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clusters := map[string]*cluster.Cluster{"bad": bad, "full": full, "empty": empty}
	for name, flag := range map[string]string{"bad": FlagConnectFailure, "full": FlagOverflow, "empty": FlagNoHealthy, "missing": FlagNoCluster} {
		s, results := proxy(t, &Spec{StatPrefix: "x", Clusters: []WeightedCluster{{name, 1}}, total: 1}, clusters)
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("%s: client read %v, want EOF (connection closed)", name, err)
		}
		c.Close()
		if r := <-results; r.Flags != flag {
			t.Errorf("%s: flags %q, want %q", name, r.Flags, flag)
		}
	}
	if !bad.Ejected(closed) {
		t.Error("connect failure not reported to outlier detection")
	}
	if _, _, conns := full.Active(); conns != 0 {
		t.Errorf("%d connections still admitted", conns)
	}
}

func TestDrain(t *testing.T) {
	addr, _ := echo(t)
	s, _ := proxy(t, &Spec{StatPrefix: "x", Clusters: []WeightedCluster{{"a", 1}}, total: 1},
		map[string]*cluster.Cluster{"a": staticCluster(t, "a", addr, nil)})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "a")
	c.Read(make([]byte, 1)) // proxied and echoed: the connection is open
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a connection open", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		t.Error("still accepting while draining")
	}
	// The open connection still works, then finishes.
	io.WriteString(c, "b")
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'b' {
		t.Fatalf("draining connection: %q %v", buf, err)
	}
	c.(*net.TCPConn).CloseWrite()
	io.ReadAll(c)
	if err := <-done; err != nil {
		t.Errorf("Shutdown = %v", err)
	}

	// A drain timeout closes what is left.
	s2, _ := proxy(t, &Spec{StatPrefix: "x", Clusters: []WeightedCluster{{"a", 1}}, total: 1},
		map[string]*cluster.Cluster{"a": staticCluster(t, "a", addr, nil)})
	c2, _ := net.Dial("tcp", s2.Addr().String())
	defer c2.Close()
	io.WriteString(c2, "a")
	c2.Read(make([]byte, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s2.Shutdown(ctx); err == nil {
		t.Error("Shutdown with a stuck connection returned nil")
	}
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c2); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Errorf("after forced drain: %v", err)
	}
}

func TestParse(t *testing.T) {
	a, _ := anypb.New(&tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "outbound|9000||db"}})
	s, err := Parse(a)
	if err != nil || s.StatPrefix != "tcp" || len(s.Clusters) != 1 || s.PickCluster() != "outbound|9000||db" {
		t.Fatalf("spec %+v, err %v", s, err)
	}
	for want, tp := range map[string]*tcpv3.TcpProxy{
		"typed_config.idle_timeout: unsupported":                     {StatPrefix: "x", IdleTimeout: durationpb.New(time.Second), ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}},
		"typed_config.cluster_specifier: one of":                     {StatPrefix: "x"},
		"typed_config.stat_prefix: empty":                            {ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}},
		"typed_config.weighted_clusters.clusters: all weights are 0": {StatPrefix: "x", ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: "a"}}}}},
	} {
		a, _ := anypb.New(tp)
		if _, err := Parse(a); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}
