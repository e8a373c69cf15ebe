package runtime

import (
	"context"
	"net"
	"net/http"
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
	"google.golang.org/protobuf/types/known/wrapperspb"
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

// rdsListener returns a listener at addr serving RDS route config rc.
func rdsListener(t testing.TB, name, addr, rc string) *listenerv3.Listener {
	return hcmListener(t, name, addr, &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: rc,
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router"}},
	})
}

func hcmListener(t testing.TB, name, addr string, hcm *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	t.Helper()
	tc, err := anypb.New(hcm)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: sockAddr(t, addr),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc},
		}}}},
	}
}

// routeTo returns a catch-all route to cluster with an optional timeout.
func routeTo(cluster string, timeout time.Duration) *routev3.Route {
	a := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}
	if timeout > 0 {
		a.Timeout = durationpb.New(timeout)
	}
	return &routev3.Route{
		Name:   "to-" + cluster,
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: a},
	}
}

func routeConfig(name string, routes ...*routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"}, Routes: routes,
	}}}
}

func edsCluster(name string, policy clusterv3.Cluster_LbPolicy) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}},
		ConnectTimeout: durationpb.New(10 * time.Second),
		LbPolicy:       policy,
	}
}

func cla(t testing.TB, name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	if len(addrs) == 0 {
		return &endpointv3.ClusterLoadAssignment{ClusterName: name}
	}
	var lbes []*endpointv3.LbEndpoint
	for _, a := range addrs {
		lbes = append(lbes, &endpointv3.LbEndpoint{
			HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(t, a)}},
			LoadBalancingWeight: wrapperspb.UInt32(1),
		})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		Locality:            &corev3.Locality{Region: "local"},
		LoadBalancingWeight: wrapperspb.UInt32(uint32(len(addrs))),
		LbEndpoints:         lbes,
	}}}
}

// simple returns resources for one listener "l" at addr routing everything to
// cluster "c" whose endpoints are upstreams.
func simple(t testing.TB, addr string, timeout time.Duration, upstreams ...string) *Resources {
	return &Resources{
		Listeners: map[string]*listenerv3.Listener{"l": rdsListener(t, "l", addr, "rc")},
		Routes:    map[string]*routev3.RouteConfiguration{"rc": routeConfig("rc", routeTo("c", timeout))},
		Clusters:  map[string]*clusterv3.Cluster{"c": edsCluster("c", clusterv3.Cluster_ROUND_ROBIN)},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"c": cla(t, "c", upstreams...)},
	}
}

// start compiles r, serves it on a new Proxy and returns the proxy and the
// base URL of listener "l".
func start(t testing.TB, r *Resources, opts Options) (*Proxy, string) {
	t.Helper()
	cfg, err := Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	p := New(opts)
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return p, "http://" + p.ListenerAddr("l").String()
}

func hostOf(t testing.TB, rawURL string) string {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req.URL.Host
}

// results collects OnRequest results.
type results chan *Result

func (rs results) hook(r *Result) { c := *r; rs <- &c }

func (rs results) next(t testing.TB) *Result {
	t.Helper()
	select {
	case r := <-rs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no result reported")
		return nil
	}
}
