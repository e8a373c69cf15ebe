package runtime

import (
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestCompileErrorsNameResourceAndField(t *testing.T) {
	const addr = "127.0.0.1:15001"
	tests := []struct {
		name   string
		mutate func(r *Resources)
		want   []string
	}{
		{"two filter chains", func(r *Resources) {
			l := r.Listeners["l"]
			l.FilterChains = append(l.FilterChains, l.FilterChains[0])
		}, []string{`listener "l"`, "filter_chains"}},
		{"unsupported listener field", func(r *Resources) {
			r.Listeners["l"].PerConnectionBufferLimitBytes = wrapperspb.UInt32(1)
		}, []string{`listener "l"`, "per_connection_buffer_limit_bytes"}},
		{"unsupported http filter", func(r *Resources) {
			r.Listeners["l"] = hcmListener(t, "l", addr, &hcmv3.HttpConnectionManager{
				RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "rc"}},
				HttpFilters:    []*hcmv3.HttpFilter{{Name: "envoy.filters.http.lua"}},
			})
		}, []string{`listener "l"`, "http_filters[0].name"}},
		{"pipe address", func(r *Resources) {
			r.Listeners["l"].Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/x"}}}
		}, []string{`listener "l"`, "address.pipe"}},
		{"bad regex", func(r *Resources) {
			r.Routes["rc"].VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{
				SafeRegex: &matcherv3.RegexMatcher{Regex: "(["},
			}
		}, []string{`route config "rc"`, "virtual_hosts[0] (all).routes[0].match.safe_regex.regex"}},
		{"redirect action", func(r *Resources) {
			r.Routes["rc"].VirtualHosts[0].Routes[0].Action = &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{ResponseCode: 99}}
		}, []string{`route config "rc"`, "routes[0].redirect.response_code"}},
		{"duplicate domain", func(r *Resources) {
			vh := r.Routes["rc"].VirtualHosts[0]
			r.Routes["rc"].VirtualHosts = append(r.Routes["rc"].VirtualHosts, &routev3.VirtualHost{Name: "dup", Domains: vh.Domains})
		}, []string{`route config "rc"`, "virtual_hosts[1] (dup).domains[0]", "duplicate"}},
		{"unsupported lb policy", func(r *Resources) {
			r.Clusters["c"].LbPolicy = clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG
		}, []string{`cluster "c"`, "lb_policy"}},
		{"static without assignment", func(r *Resources) {
			r.Clusters["c"].ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			r.Clusters["c"].EdsClusterConfig = nil
		}, []string{`cluster "c"`, "load_assignment"}},
		{"outlier detection", func(r *Resources) {
			r.Clusters["c"].OutlierDetection = &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(100)}
		}, []string{`cluster "c"`, "outlier_detection.enforcing_success_rate"}},
		{"bad endpoint port", func(r *Resources) {
			r.Endpoints["c"].Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().PortSpecifier =
				&corev3.SocketAddress_PortValue{PortValue: 70000}
		}, []string{`cluster "c"`, `endpoints "c"`, "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value"}},
		{"zero endpoint weight", func(r *Resources) {
			r.Endpoints["c"].Endpoints[0].LbEndpoints[0].LoadBalancingWeight = wrapperspb.UInt32(0)
		}, []string{`cluster "c"`, "lb_endpoints[0].load_balancing_weight"}},
		{"name mismatch", func(r *Resources) {
			r.Clusters["c"].Name = "other"
		}, []string{`cluster "other"`, "name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := simple(t, addr, 0, "127.0.0.1:9")
			tt.mutate(r)
			_, err := Compile(r)
			if err == nil {
				t.Fatal("Compile succeeded, want error")
			}
			if errors.Is(err, ErrIncomplete) {
				t.Errorf("error %v matches ErrIncomplete", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCompileIncomplete(t *testing.T) {
	r := simple(t, "127.0.0.1:15001", 0, "127.0.0.1:9")
	delete(r.Routes, "rc")
	_, err := Compile(r)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
	var ie *IncompleteError
	if !errors.As(err, &ie) || ie.Name != "rc" || ie.Kind != "RouteConfiguration" {
		t.Errorf("IncompleteError = %+v", ie)
	}
	if !strings.Contains(err.Error(), "rds.route_config_name") {
		t.Errorf("error %q does not name the field", err)
	}
}

func TestCompileTolerates(t *testing.T) {
	r := simple(t, "127.0.0.1:15001", 0)
	// A route to a cluster that does not exist is served as NC, not rejected;
	// an EDS cluster whose assignment has not arrived has no endpoints.
	r.Routes["rc"].VirtualHosts[0].Routes[0] = routeTo("outbound|80|v9|missing", 0)
	r.Clusters["late"] = edsCluster("late", clusterv3.Cluster_LEAST_REQUEST)
	cfg, err := Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Cluster("late"); c == nil || len(c.Endpoints) != 0 {
		t.Errorf("cluster late = %+v, want no endpoints", c)
	}
	if cfg.Listener("l") == nil || cfg.RouteTable("rc") == nil || len(cfg.Clusters()) != 2 || len(cfg.Listeners()) != 1 {
		t.Error("config accessors disagree with resources")
	}
}

func TestCompileInlineStatic(t *testing.T) {
	// The sidecar's virtualInbound: inline route config, STATIC cluster.
	l := hcmListener(t, "virtualInbound", "127.0.0.1:15006", &hcmv3.HttpConnectionManager{
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routeConfig("inbound|8080||", routeTo("inbound|8080||", 0))},
	})
	c := &clusterv3.Cluster{
		Name:                 "inbound|8080||",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment:       cla(t, "inbound|8080||", "127.0.0.1:8080"),
	}
	cfg, err := Compile(&Resources{
		Listeners: map[string]*listenerv3.Listener{l.Name: l},
		Clusters:  map[string]*clusterv3.Cluster{c.Name: c},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Cluster(c.Name).Endpoints; len(got) != 1 || got[0].Address != "127.0.0.1:8080" {
		t.Errorf("endpoints = %v", got)
	}
	if cfg.Listener("virtualInbound").Routes.Name != "inbound|8080||" {
		t.Error("inline route config not compiled")
	}
}
