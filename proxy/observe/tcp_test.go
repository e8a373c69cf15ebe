package observe

import (
	"io"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/stats"
	"github.com/weft-mesh/weft/xds/node"
)

func TestTCPMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	const cl = "outbound|5432||db.default.svc.cluster.local"
	r := oneHop(t, corev3.TrafficDirection_OUTBOUND, cl, ln.Addr().String(), map[string]any{"workload": "db-v1", "namespace": "default"})
	tc, err := anypb.New(&tcpv3.TcpProxy{StatPrefix: "l", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cl}})
	if err != nil {
		t.Fatal(err)
	}
	r.Listeners["l"].FilterChains = []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc},
	}}}}
	reg := stats.NewRegistry(0)
	tap := New(Options{Meta: &node.Meta{Type: node.Router, Name: "gw", Namespace: "istio-system", WorkloadName: "gw"}, Stats: reg})
	base := serve(t, r, tap)
	c, err := net.Dial("tcp", hostOf(base))
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := reg.Delta()
		if len(d.TCP) == 1 && d.TCP[0].Closed == 1 {
			s := d.TCP[0]
			if s.Opened != 1 || s.SentBytes != 5 || s.ReceivedBytes != 5 || s.Labels["request_protocol"] != "tcp" ||
				s.Labels["destination_workload"] != "db-v1" || s.Labels["destination_service"] != "db.default.svc.cluster.local" {
				t.Errorf("tcp stat %+v", s)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no closed connection counted: %+v", d.TCP)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
