package listener

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func tcpListener(t *testing.T, m proto.Message) *listenerv3.Listener {
	tc, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name: "0.0.0.0_9000",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9000}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: TCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc}}}}},
	}
}

func TestParseTCP(t *testing.T) {
	s, err := Parse(tcpListener(t, &tcpv3.TcpProxy{StatPrefix: "tcp",
		ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "outbound|9000||db"}}))
	if err != nil {
		t.Fatal(err)
	}
	if s.TCP == nil || s.TCP.Clusters[0].Name != "outbound|9000||db" || s.RouteConfigName != "" || s.RouteConfig != nil || s.Address != "127.0.0.1:9000" {
		t.Errorf("spec = %+v", s)
	}
	_, err = Parse(tcpListener(t, &tcpv3.TcpProxy{StatPrefix: "tcp"}))
	if err == nil || !strings.Contains(err.Error(), `listener "0.0.0.0_9000": filter_chains[0].filters[0].typed_config.cluster_specifier`) {
		t.Errorf("err = %v", err)
	}
	l := tcpListener(t, &tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}})
	l.FilterChains[0].Filters[0].ConfigType = nil
	if _, err := Parse(l); err == nil || !strings.Contains(err.Error(), "filter_chains[0].filters[0].typed_config: required") {
		t.Errorf("err = %v", err)
	}
}
