package translate

import (
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

func tcpGateway(port uint32) *config.Object {
	return obj(config.KindGateway, "tcp-gateway", &networking.Gateway{
		Selector: map[string]string{"istio": "ingressgateway"},
		Servers:  []*networking.Server{{Port: &networking.Port{Number: port, Name: "tcp", Protocol: "TCP"}, Hosts: []string{"*"}}},
	})
}

func tcpVS(name string, routes ...*networking.TCPRoute) *config.Object {
	return obj(config.KindVirtualService, name, &networking.VirtualService{
		Hosts: []string{"*"}, Gateways: []string{"tcp-gateway"}, Tcp: routes,
	})
}

func tcpDest(host, subset string, port uint32, weight int32) *networking.RouteDestination {
	d := &networking.RouteDestination{Destination: &networking.Destination{Host: host, Subset: subset}, Weight: weight}
	if port != 0 {
		d.Destination.Port = &networking.PortSelector{Number: port}
	}
	return d
}

func tcpProxyOf(t *testing.T, r *Resources, listenerName string) *tcpv3.TcpProxy {
	t.Helper()
	l := r.Listeners[listenerName]
	if l == nil {
		t.Fatalf("no listener %q; have %v", listenerName, sortedKeys(r.Listeners))
	}
	f := l.GetFilterChains()[0].GetFilters()[0]
	if f.GetName() != "envoy.filters.network.tcp_proxy" {
		t.Fatalf("filter %s", f.GetName())
	}
	tp := &tcpv3.TcpProxy{}
	if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestGatewayTCPWeighted(t *testing.T) {
	dr := obj(config.KindDestinationRule, "shop", &networking.DestinationRule{Host: "shop", Subsets: v1v2(nil, nil)})
	objs := coolapp(shop(), dr, tcpGateway(9000),
		// Port 9001 does not match; the second route (no match) applies.
		tcpVS("shop-tcp",
			&networking.TCPRoute{Match: []*networking.L4MatchAttributes{{Port: 9001}}, Route: []*networking.RouteDestination{tcpDest("gateway", "", 0, 0)}},
			&networking.TCPRoute{Route: []*networking.RouteDestination{
				tcpDest("shop", "v1", 9090, 80), tcpDest("shop", "v2", 9090, 20), tcpDest("shop", "", 9090, 0)}},
		))
	r := generate(t, objs, routerMeta())
	l := r.Listeners["0.0.0.0_9000"]
	if sa := l.GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 9000 {
		t.Errorf("listener address %v", sa)
	}
	if l.GetTrafficDirection() != core.TrafficDirection_OUTBOUND {
		t.Errorf("direction %v", l.GetTrafficDirection())
	}
	assertProto(t, "tcp_proxy", tcpProxyOf(t, r, "0.0.0.0_9000"), &tcpv3.TcpProxy{
		StatPrefix: "shop-tcp.coolapp",
		ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{
			Clusters: []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{
				{Name: "outbound|9090|v1|shop.coolapp.svc.cluster.local", Weight: 80},
				{Name: "outbound|9090|v2|shop.coolapp.svc.cluster.local", Weight: 20},
			},
		}},
	})
	// The HTTP listener on port 80 is still there.
	if _, ok := r.Listeners["0.0.0.0_80"]; !ok {
		t.Error("HTTP gateway listener missing")
	}
}

func TestGatewayTCPSingleAndMatching(t *testing.T) {
	for _, tc := range []struct {
		name    string
		vss     []*config.Object
		cluster string // "": no listener
	}{
		{"single destination", []*config.Object{tcpVS("a", &networking.TCPRoute{
			Match: []*networking.L4MatchAttributes{{Port: 9000}}, Route: []*networking.RouteDestination{tcpDest("shop", "", 9090, 0)}})},
			"outbound|9090||shop.coolapp.svc.cluster.local"},
		{"first VirtualService by name wins", []*config.Object{
			tcpVS("b", &networking.TCPRoute{Route: []*networking.RouteDestination{tcpDest("gateway", "", 0, 0)}}),
			tcpVS("a", &networking.TCPRoute{Route: []*networking.RouteDestination{tcpDest("shop", "", 9090, 0)}})},
			"outbound|9090||shop.coolapp.svc.cluster.local"},
		{"port mismatch skips to the next VirtualService", []*config.Object{
			tcpVS("a", &networking.TCPRoute{Match: []*networking.L4MatchAttributes{{Port: 1234}}, Route: []*networking.RouteDestination{tcpDest("shop", "", 9090, 0)}}),
			tcpVS("b", &networking.TCPRoute{Route: []*networking.RouteDestination{tcpDest("gateway", "", 0, 0)}})},
			"outbound|8080||gateway.coolapp.svc.cluster.local"},
		{"no tcp route: no listener", []*config.Object{
			tcpVS("a", &networking.TCPRoute{Match: []*networking.L4MatchAttributes{{Port: 1234}}, Route: []*networking.RouteDestination{tcpDest("shop", "", 9090, 0)}})}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := generate(t, coolapp(append([]*config.Object{shop(), tcpGateway(9000)}, tc.vss...)...), routerMeta())
			if tc.cluster == "" {
				if _, ok := r.Listeners["0.0.0.0_9000"]; ok {
					t.Fatalf("unexpected listener")
				}
				return
			}
			assertProto(t, "tcp_proxy", tcpProxyOf(t, r, "0.0.0.0_9000"), &tcpv3.TcpProxy{
				StatPrefix: tc.cluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: tc.cluster}})
		})
	}
}

func TestSidecarInboundTCP(t *testing.T) {
	p := sidecarMeta()
	p.InboundProtocol = "TCP"
	r := generate(t, coolapp(), p)
	assertProto(t, "tcp_proxy", tcpProxyOf(t, r, InboundListener), &tcpv3.TcpProxy{
		StatPrefix: "inbound|9000||", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "inbound|9000||"}})
	l := r.Listeners[InboundListener]
	if sa := l.GetAddress().GetSocketAddress(); sa.GetPortValue() != 15006 || l.GetTrafficDirection() != core.TrafficDirection_INBOUND {
		t.Errorf("listener %v", l)
	}
	if c := r.Clusters["inbound|9000||"]; c == nil || c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() != 9000 {
		t.Errorf("inbound cluster %v", c)
	}
	// The outbound side stays HTTP.
	if _, ok := r.Routes[OutboundRoute]; !ok {
		t.Error("outbound route config missing")
	}
}

func TestValidateNestedTypedConfigs(t *testing.T) {
	// An abort status config validation would refuse reaches Envoy's
	// constraint on FaultAbort.http_status only inside an Any.
	objs := coolapp(vs("catalog", nil, []string{"catalog"}, &networking.HTTPRoute{
		Fault: &networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
			ErrorType: &networking.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: 99}}},
		Route: toCatalog(),
	}))
	err := Generate(model.Build(1, objs), sidecarMeta()).Validate()
	if err == nil || !strings.Contains(err.Error(), "HttpStatus") || !strings.Contains(err.Error(), "typed_per_filter_config") {
		t.Errorf("Validate: %v", err)
	}
	// The nested filter configs of a valid TCP listener pass.
	p := sidecarMeta()
	p.InboundProtocol = "tcp"
	if err := Generate(model.Build(1, coolapp()), p).Validate(); err != nil {
		t.Error(err)
	}
}
