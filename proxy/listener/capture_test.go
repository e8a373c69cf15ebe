package listener

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

func tcpProxyFilter(t *testing.T, cluster string) *listenerv3.Filter {
	tc, err := anypb.New(&tcpv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: tcpproxy.FilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc}}
}

// capturedInbound is virtualInbound as the translator writes it for a
// captured sidecar: per-port chains (mTLS ones for 9080, HTTP; plaintext
// for 3306, TCP), a passthrough chain, the original_dst listener filter.
func capturedInbound(t *testing.T) *listenerv3.Listener {
	l := inbound(t, "PERMISSIVE") // tls + raw_buffer chains of one HCM
	for _, fc := range l.FilterChains {
		fc.FilterChainMatch.DestinationPort = wrapperspb.UInt32(9080)
	}
	db := &listenerv3.FilterChain{Name: "db", Filters: []*listenerv3.Filter{tcpProxyFilter(t, "inbound|3306||")},
		FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(3306)}}
	pass := &listenerv3.FilterChain{Name: "passthrough", Filters: []*listenerv3.Filter{tcpProxyFilter(t, "InboundPassthroughClusterIpv4")}}
	l.FilterChains = append(l.FilterChains, db, pass)
	od, err := anypb.New(&originaldstv3.OriginalDst{})
	if err != nil {
		t.Fatal(err)
	}
	l.ListenerFilters = append(l.ListenerFilters, &listenerv3.ListenerFilter{Name: OriginalDstFilter, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: od}})
	return l
}

func TestParseDestinationPortGroups(t *testing.T) {
	s, err := Parse(capturedInbound(t))
	if err != nil {
		t.Fatal(err)
	}
	if !s.OriginalDst || s.UseOriginalDst || !s.BindToPort || !s.Captured() {
		t.Errorf("listener settings %+v", s)
	}
	if s.TCP == nil || s.TCP.Clusters[0].Name != "InboundPassthroughClusterIpv4" || len(s.Chains) != 1 || s.Field != "filter_chains[3]" {
		t.Errorf("own chains %+v, tcp %+v", s.Chains, s.TCP)
	}
	http, db := s.ByDestinationPort[9080], s.ByDestinationPort[3306]
	if http == nil || http.RouteConfigName != "inbound" || len(http.Chains) != 2 || http.DestinationPort != 9080 || !http.TLSInspector {
		t.Errorf("port 9080 group %+v", http)
	}
	if db == nil || db.TCP == nil || db.TCP.Clusters[0].Name != "inbound|3306||" || db.Field != "filter_chains[2]" {
		t.Errorf("port 3306 group %+v", db)
	}
	if refs := http.Secrets(); len(refs) != 2 || !strings.HasPrefix(refs[0].Field, "filter_chains[0].transport_socket.") {
		t.Errorf("secrets of the 9080 group %+v", refs)
	}
	if len(s.Secrets()) != 0 {
		t.Errorf("the listener's own (plaintext) chain needs secrets: %+v", s.Secrets())
	}

	out := captureOutbound(t)
	o, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if !o.UseOriginalDst || o.OriginalDst || o.ByDestinationPort[15001] == nil {
		t.Errorf("virtualOutbound %+v", o)
	}
	out.BindToPort = wrapperspb.Bool(false)
	if o, err := Parse(out); err != nil || o.BindToPort {
		t.Errorf("bind_to_port false: %+v %v", o, err)
	}

	edit := func(f func(*listenerv3.Listener)) *listenerv3.Listener {
		l := capturedInbound(t)
		f(l)
		return l
	}
	for _, tc := range []struct {
		name string
		l    *listenerv3.Listener
		want string
	}{
		{"same port and protocol twice", edit(func(l *listenerv3.Listener) {
			l.FilterChains[1].FilterChainMatch.TransportProtocol = "tls"
		}), "filter_chains[1].filter_chain_match: same match as filter_chains[0]"},
		{"one port, two sets of filters", edit(func(l *listenerv3.Listener) {
			l.FilterChains[2].FilterChainMatch.DestinationPort = wrapperspb.UInt32(9080)
		}), "filter_chains[2].filters: must equal filter_chains[0].filters (one set of filters per destination port)"},
		{"port zero", edit(func(l *listenerv3.Listener) {
			l.FilterChains[2].FilterChainMatch.DestinationPort = wrapperspb.UInt32(0)
		}), "filter_chains[2].filter_chain_match.destination_port: 0 out of range"},
		{"port out of range", edit(func(l *listenerv3.Listener) {
			l.FilterChains[2].FilterChainMatch.DestinationPort = wrapperspb.UInt32(70000)
		}), "destination_port: 70000 out of range"},
		{"original_dst twice", edit(func(l *listenerv3.Listener) {
			l.ListenerFilters = append(l.ListenerFilters, l.ListenerFilters[1])
		}), `listener_filters[2].name: duplicate "envoy.filters.listener.original_dst"`},
		{"original_dst config of another type", edit(func(l *listenerv3.Listener) {
			l.ListenerFilters[1].ConfigType = l.ListenerFilters[0].ConfigType
		}), "listener_filters[1].typed_config"},
		{"a group's filters broken", edit(func(l *listenerv3.Listener) {
			l.FilterChains[2].Filters[0].ConfigType = nil
		}), "filter_chains[2].filters[0].typed_config: required"},
	} {
		if _, err := Parse(tc.l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// captureOutbound is virtualOutbound: use_original_dst, a blackhole chain
// for its own port, a passthrough chain.
func captureOutbound(t *testing.T) *listenerv3.Listener {
	l := testListener(t, &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "x"}}})
	l.Name = "virtualOutbound"
	l.UseOriginalDst = wrapperspb.Bool(true)
	l.FilterChains = []*listenerv3.FilterChain{
		{Name: "blackhole", Filters: []*listenerv3.Filter{tcpProxyFilter(t, "BlackHoleCluster")},
			FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(15001)}},
		{Name: "passthrough", Filters: []*listenerv3.Filter{tcpProxyFilter(t, "PassthroughCluster")}},
	}
	return l
}
