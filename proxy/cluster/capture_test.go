package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weft-mesh/weft/proxy/capture"
	"github.com/weft-mesh/weft/proxy/lb"
)

func bindTo(ip string, port uint32) *corev3.BindConfig {
	return &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}
}

// upstream_bind_config: HTTP and TCP connections to the cluster come from
// its source address (127.0.0.6, as a captured sidecar reaches its app).
func TestUpstreamBindConfig(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, host)
	}))
	defer srv.Close()
	pc := static(t, "inbound|80||", strings.TrimPrefix(srv.URL, "http://"))
	pc.UpstreamBindConfig = bindTo("127.0.0.6", 0)
	c := mustCompile(t, NewState(StateOptions{}), pc)
	if c.HTTP.SourceAddress != "127.0.0.6" {
		t.Fatalf("settings %+v", c.HTTP)
	}
	ep := c.Pick(nil, lb.Hash{})
	// Plaintext gRPC gets the cluster's own h2c transport too, not the
	// proxy's shared one, which would connect from any address.
	if c.TransportFor(ep, true) == nil {
		t.Error("h2: no transport of the cluster's own")
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := c.TransportFor(ep, false).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "127.0.0.6" {
		t.Errorf("the upstream saw the request from %q", b)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	from := make(chan string, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			from <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	tc := mustCompile(t, NewState(StateOptions{}), func() *clusterv3.Cluster {
		p := static(t, "tcp", ln.Addr().String())
		p.UpstreamBindConfig = bindTo("127.0.0.6", 0)
		return p
	}())
	conn, err := tc.Dial(context.Background(), tc.Pick(nil, lb.Hash{}))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if got := <-from; got != "127.0.0.6" {
		t.Errorf("TCP connection from %s", got)
	}

	for _, bad := range []struct {
		b    *corev3.BindConfig
		want string
	}{
		{bindTo("not-an-ip", 0), `upstream_bind_config.source_address.address: "not-an-ip" is not an IP address`},
		{bindTo("127.0.0.6", 80), "upstream_bind_config.source_address.port_value: must be 0"},
		{&corev3.BindConfig{}, "upstream_bind_config.source_address: required"},
		{&corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: "127.0.0.6"}, Freebind: nil, SocketOptions: []*corev3.SocketOption{{}}}, "upstream_bind_config.socket_options: unsupported field"},
	} {
		p := static(t, "x", "127.0.0.1:1")
		p.UpstreamBindConfig = bad.b
		if _, err := Compile(p, nil); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want %q", bad.b, err, bad.want)
		}
	}
}

// An ORIGINAL_DST cluster sends a redirected connection, and the requests
// on one, to its original destination; a connection that was not
// redirected has none.
func TestOriginalDstOfCapturedConnections(t *testing.T) {
	pc := &clusterv3.Cluster{Name: "PassthroughCluster",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED}
	c := mustCompile(t, NewState(StateOptions{}), pc)
	dst := netip.MustParseAddrPort("10.96.0.7:3306")
	redirected := capture.NewConn(&net.TCPConn{}, dst)
	if ep := c.PickConn(redirected); ep == nil || ep.Address != "10.96.0.7:3306" {
		t.Errorf("redirected connection: picked %v", ep)
	}
	if ep := c.PickConn(&net.TCPConn{}); ep != nil {
		t.Errorf("connection not redirected: picked %v", ep)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "example.com"
	r = r.WithContext(capture.WithConn(r.Context(), capture.NewConn(&net.TCPConn{}, dst)))
	if ep := c.Pick(r, lb.Hash{}); ep == nil || ep.Address != "10.96.0.7:3306" {
		t.Errorf("request on a redirected connection: picked %v", ep)
	}
	st := mustCompile(t, NewState(StateOptions{}), static(t, "s", "127.0.0.1:7"))
	if ep := st.PickConn(redirected); ep == nil || ep.Address != "127.0.0.1:7" {
		t.Errorf("a STATIC cluster picks its own endpoints: %v", ep)
	}
}
