package observe

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weft-mesh/weft/proxy/runtime"
)

func sockAddr(t testing.TB, hostport string) *corev3.Address {
	t.Helper()
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: h, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// oneHop returns resources for one HTTP listener "l" (direction dir) that
// routes everything to cluster, whose one endpoint is upstream with the
// given istio metadata (nil for none).
func oneHop(t testing.TB, dir corev3.TrafficDirection, cluster, upstream string, md map[string]any) *runtime.Resources {
	t.Helper()
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Name:   "default",
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
		}},
	}}}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix:     "l",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lbe := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(t, upstream)}}}
	if md != nil {
		s, err := structpb.NewStruct(md)
		if err != nil {
			t.Fatal(err)
		}
		lbe.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": s}}
	}
	return &runtime.Resources{
		Listeners: map[string]*listenerv3.Listener{"l": {
			Name: "l", Address: sockAddr(t, "127.0.0.1:0"), TrafficDirection: dir,
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
				Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
			}}}},
		}},
		Clusters: map[string]*clusterv3.Cluster{cluster: {
			Name: cluster, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			}},
			ConnectTimeout: durationpb.New(time.Second),
		}},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{cluster: {
			ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{lbe}}},
		}},
	}
}

// serve starts a runtime with tap for r and returns listener l's base URL.
func serve(t testing.TB, r *runtime.Resources, tap runtime.Tap) string {
	t.Helper()
	p := runtime.New(runtime.Options{Tap: tap})
	cfg, err := p.Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return "http://" + p.ListenerAddr("l").String()
}

func hostOf(u string) string { return u[len("http://"):] }
