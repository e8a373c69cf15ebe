package listener

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/filter/rbac"
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

func networkRBAC(t *testing.T, a rbacv3.RBAC_Action) *listenerv3.Filter {
	t.Helper()
	tc, err := anypb.New(&netrbacv3.RBAC{StatPrefix: "tcp.", Rules: &rbacv3.RBAC{Action: a, Policies: map[string]*rbacv3.Policy{
		"p": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9000}}},
			Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: NetworkRBAC, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc}}
}

func TestParseTCPWithRBAC(t *testing.T) {
	l := tcpListener(t, &tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}})
	proxyFilter := l.FilterChains[0].Filters[0]
	l.FilterChains[0].Filters = []*listenerv3.Filter{networkRBAC(t, rbacv3.RBAC_DENY), networkRBAC(t, rbacv3.RBAC_ALLOW), proxyFilter}
	s, err := Parse(l)
	if err != nil {
		t.Fatal(err)
	}
	if s.TCP == nil || len(s.ConnFilters) != 2 {
		t.Fatalf("spec %+v", s)
	}
	if _, ok := s.ConnFilters[1].(*rbac.Network); !ok {
		t.Errorf("conn filter %T", s.ConnFilters[1])
	}

	l.FilterChains[0].Filters = []*listenerv3.Filter{networkRBAC(t, rbacv3.RBAC_ALLOW), networkRBAC(t, rbacv3.RBAC_DENY), proxyFilter}
	if _, err := Parse(l); err == nil || !strings.Contains(err.Error(), "filter_chains[0].filters[1]: envoy.filters.network.rbac with action DENY out of order") {
		t.Errorf("ALLOW before DENY: %v", err)
	}
	http := networkRBAC(t, rbacv3.RBAC_DENY)
	bad, _ := anypb.New(&netrbacv3.RBAC{StatPrefix: "tcp.", Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"p": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_UrlPath{}}},
			Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
		},
	}}})
	http.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: bad}
	l.FilterChains[0].Filters = []*listenerv3.Filter{http, proxyFilter}
	if _, err := Parse(l); err == nil || !strings.Contains(err.Error(), `filter_chains[0].filters[0].typed_config.rules.policies["p"].permissions[0].url_path: an HTTP attribute`) {
		t.Errorf("HTTP rule on TCP: %v", err)
	}
	l.FilterChains[0].Filters = []*listenerv3.Filter{{Name: "envoy.filters.network.ext_authz"}, proxyFilter}
	if _, err := Parse(l); err == nil || !strings.Contains(err.Error(), "filter_chains[0].filters[0]") {
		t.Errorf("unknown network filter: %v", err)
	}
}
