package translate

import (
	"math"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

func simpleLB(s networking.LoadBalancerSettings_SimpleLB) *networking.LoadBalancerSettings {
	return &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: s}}
}

func hashLB(ch *networking.LoadBalancerSettings_ConsistentHashLB) *networking.LoadBalancerSettings {
	return &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{ConsistentHash: ch}}
}

func headerHash(name string) *networking.LoadBalancerSettings_ConsistentHashLB {
	return &networking.LoadBalancerSettings_ConsistentHashLB{
		HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: name}}
}

func catalogDR(tp *networking.TrafficPolicy, subsets ...*networking.Subset) *config.Object {
	return obj(config.KindDestinationRule, "catalog", &networking.DestinationRule{Host: "catalog", TrafficPolicy: tp, Subsets: subsets})
}

func v1v2(v1, v2 *networking.TrafficPolicy) []*networking.Subset {
	return []*networking.Subset{
		{Name: "v1", Labels: map[string]string{"version": "v1"}, TrafficPolicy: v1},
		{Name: "v2", Labels: map[string]string{"version": "v2"}, TrafficPolicy: v2},
	}
}

// shop is a service with an HTTP and a TCP port.
func shop() *config.Object {
	return obj(config.KindServiceEntry, "shop", &networking.ServiceEntry{
		Hosts: []string{"shop.coolapp.svc.cluster.local"},
		Ports: []*networking.ServicePort{
			{Number: 8080, Name: "http", Protocol: "HTTP"},
			{Number: 9090, Name: "tcp", Protocol: "TCP"},
		},
		Resolution: networking.ServiceEntry_STATIC,
		Endpoints:  []*networking.WorkloadEntry{we("127.0.0.5", "v1", "", 1), we("127.0.0.6", "v2", "", 1)},
	})
}

func TestLoadBalancer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lb     *networking.LoadBalancerSettings
		policy cluster.Cluster_LbPolicy
		ring   uint64 // minimum_ring_size, 0: no ring_hash_lb_config
	}{
		{"default", nil, cluster.Cluster_ROUND_ROBIN, 0},
		{"round robin", simpleLB(networking.LoadBalancerSettings_ROUND_ROBIN), cluster.Cluster_ROUND_ROBIN, 0},
		{"least request", simpleLB(networking.LoadBalancerSettings_LEAST_REQUEST), cluster.Cluster_LEAST_REQUEST, 0},
		{"least conn is least request", simpleLB(networking.LoadBalancerSettings_LEAST_CONN), cluster.Cluster_LEAST_REQUEST, 0},
		{"random", simpleLB(networking.LoadBalancerSettings_RANDOM), cluster.Cluster_RANDOM, 0},
		{"consistent hash defaults to a 1024 ring", hashLB(headerHash("x-user")), cluster.Cluster_RING_HASH, 1024},
		{"legacy minimumRingSize", hashLB(&networking.LoadBalancerSettings_ConsistentHashLB{
			HashKey:         &networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp{UseSourceIp: true},
			MinimumRingSize: 2048}), cluster.Cluster_RING_HASH, 2048},
		{"ringHash", hashLB(&networking.LoadBalancerSettings_ConsistentHashLB{
			HashKey:       &networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName{HttpQueryParameterName: "u"},
			HashAlgorithm: &networking.LoadBalancerSettings_ConsistentHashLB_RingHash_{RingHash: &networking.LoadBalancerSettings_ConsistentHashLB_RingHash{MinimumRingSize: 64}}}),
			cluster.Cluster_RING_HASH, 64},
		{"maglev", hashLB(&networking.LoadBalancerSettings_ConsistentHashLB{
			HashKey:       &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: "x-user"},
			HashAlgorithm: &networking.LoadBalancerSettings_ConsistentHashLB_Maglev{Maglev: &networking.LoadBalancerSettings_ConsistentHashLB_MagLev{}}}),
			cluster.Cluster_MAGLEV, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := generate(t, coolapp(catalogDR(&networking.TrafficPolicy{LoadBalancer: tc.lb})), sidecarMeta())
			c := r.Clusters[catalogCluster]
			if c.GetLbPolicy() != tc.policy || c.GetType() != cluster.Cluster_EDS {
				t.Errorf("cluster %v, want lb %v", c, tc.policy)
			}
			if got := c.GetRingHashLbConfig().GetMinimumRingSize().GetValue(); got != tc.ring {
				t.Errorf("minimum_ring_size %d, want %d", got, tc.ring)
			}
		})
	}
	t.Run("passthrough", func(t *testing.T) {
		r := generate(t, coolapp(catalogDR(&networking.TrafficPolicy{LoadBalancer: simpleLB(networking.LoadBalancerSettings_PASSTHROUGH)})), sidecarMeta())
		c := r.Clusters[catalogCluster]
		if c.GetType() != cluster.Cluster_ORIGINAL_DST || c.GetLbPolicy() != cluster.Cluster_CLUSTER_PROVIDED || c.GetEdsClusterConfig() != nil {
			t.Errorf("cluster %v", c)
		}
		if _, ok := r.Endpoints[catalogCluster]; ok {
			t.Error("ORIGINAL_DST cluster got a ClusterLoadAssignment")
		}
	})
}

func TestHashPolicy(t *testing.T) {
	cookie := hashLB(&networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie{
		HttpCookie: &networking.LoadBalancerSettings_ConsistentHashLB_HTTPCookie{Name: "session", Path: "/", Ttl: durationpb.New(time.Hour)}}})
	for _, tc := range []struct {
		name string
		lb   *networking.LoadBalancerSettings
		want *route.RouteAction_HashPolicy
	}{
		{"header", hashLB(headerHash("x-user")), &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Header_{
			Header: &route.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}},
		{"cookie", cookie, &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Cookie_{
			Cookie: &route.RouteAction_HashPolicy_Cookie{Name: "session", Path: "/", Ttl: durationpb.New(time.Hour)}}}},
		{"source ip", hashLB(&networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp{UseSourceIp: true}}),
			&route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_ConnectionProperties_{
				ConnectionProperties: &route.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}},
		{"query parameter", hashLB(&networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName{HttpQueryParameterName: "user"}}),
			&route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_QueryParameter_{
				QueryParameter: &route.RouteAction_HashPolicy_QueryParameter{Name: "user"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := catalogRoute(t, &networking.HTTPRoute{Route: toCatalog()}, catalogDR(&networking.TrafficPolicy{LoadBalancer: tc.lb}))
			hp := rt.GetRoute().GetHashPolicy()
			if len(hp) != 1 {
				t.Fatalf("hash_policy %v", hp)
			}
			assertProto(t, "hash_policy", hp[0], tc.want)
			// Retries must stay on the hashed host.
			if rp := rt.GetRoute().GetRetryPolicy(); rp == nil || len(rp.GetRetryHostPredicate()) != 0 {
				t.Errorf("retry policy with hashing: %v", rp)
			}
		})
	}

	t.Run("weighted route with one hashing subset", func(t *testing.T) {
		dr := catalogDR(nil, v1v2(nil, &networking.TrafficPolicy{LoadBalancer: hashLB(headerHash("x-user"))})...)
		rt := catalogRoute(t, &networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{
			dest("catalog", "v1", 0, 50), dest("catalog", "v2", 0, 50)}}, dr)
		hp := rt.GetRoute().GetHashPolicy()
		if len(hp) != 1 || hp[0].GetHeader().GetHeaderName() != "x-user" {
			t.Errorf("hash_policy %v", hp)
		}
	})
	t.Run("same policy on every target listed once", func(t *testing.T) {
		dr := catalogDR(&networking.TrafficPolicy{LoadBalancer: hashLB(headerHash("x-user"))}, v1v2(nil, nil)...)
		rt := catalogRoute(t, &networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{
			dest("catalog", "v1", 0, 50), dest("catalog", "v2", 0, 50)}}, dr)
		if hp := rt.GetRoute().GetHashPolicy(); len(hp) != 1 {
			t.Errorf("hash_policy %v", hp)
		}
	})
	t.Run("no hashing, no hash_policy", func(t *testing.T) {
		rt := catalogRoute(t, &networking.HTTPRoute{Route: toCatalog()}, catalogDR(&networking.TrafficPolicy{LoadBalancer: simpleLB(networking.LoadBalancerSettings_RANDOM)}))
		if hp := rt.GetRoute().GetHashPolicy(); hp != nil {
			t.Errorf("hash_policy %v", hp)
		}
	})
	t.Run("default route of a hashing service", func(t *testing.T) {
		r := generate(t, coolapp(catalogDR(&networking.TrafficPolicy{LoadBalancer: hashLB(headerHash("x-user"))})), sidecarMeta())
		rt := vhost(t, r.Routes["outbound"], catalogHost+":8080").GetRoutes()[0]
		if hp := rt.GetRoute().GetHashPolicy(); len(hp) != 1 {
			t.Errorf("hash_policy %v", hp)
		}
	})
}

func TestSubsetAndPortLevelPolicy(t *testing.T) {
	pool := func(n int32) *networking.ConnectionPoolSettings {
		return &networking.ConnectionPoolSettings{Tcp: &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: n}}
	}
	top := &networking.TrafficPolicy{
		LoadBalancer:     simpleLB(networking.LoadBalancerSettings_RANDOM),
		ConnectionPool:   pool(10),
		OutlierDetection: &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(7)},
		PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{{
			Port:         &networking.PortSelector{Number: 9090},
			LoadBalancer: simpleLB(networking.LoadBalancerSettings_LEAST_REQUEST),
		}},
	}
	subsets := []*networking.Subset{
		{Name: "v1", Labels: map[string]string{"version": "v1"}},
		// Only the load balancer is overridden; pool and outlier detection come from the top level.
		{Name: "v2", Labels: map[string]string{"version": "v2"}, TrafficPolicy: &networking.TrafficPolicy{
			LoadBalancer: hashLB(headerHash("x-user")),
			PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{{
				Port:           &networking.PortSelector{Number: 9090},
				ConnectionPool: pool(3),
			}},
		}},
	}
	dr := obj(config.KindDestinationRule, "shop", &networking.DestinationRule{Host: "shop", TrafficPolicy: top, Subsets: subsets})
	r := generate(t, coolapp(shop(), dr), sidecarMeta())
	const host = "shop.coolapp.svc.cluster.local"
	for _, tc := range []struct {
		port    uint32
		subset  string
		lb      cluster.Cluster_LbPolicy
		maxConn uint32 // 0: Istio's defaults, every threshold unlimited
		outlier uint32 // consecutive_5xx, 0: no outlier detection
	}{
		{8080, "", cluster.Cluster_RANDOM, 10, 7},
		{8080, "v1", cluster.Cluster_RANDOM, 10, 7},
		{8080, "v2", cluster.Cluster_RING_HASH, 10, 7},
		// Port-level settings replace the whole top-level policy: no pool, no outlier detection.
		{9090, "", cluster.Cluster_LEAST_REQUEST, 0, 0},
		{9090, "v1", cluster.Cluster_LEAST_REQUEST, 0, 0},
		// The subset's own port-level entry replaces every field, including the load balancer.
		{9090, "v2", cluster.Cluster_ROUND_ROBIN, 3, 0},
	} {
		name := ClusterName(tc.port, tc.subset, host)
		c := r.Clusters[name]
		if c == nil {
			t.Fatalf("no cluster %s", name)
		}
		if c.GetLbPolicy() != tc.lb {
			t.Errorf("%s: lb %v, want %v", name, c.GetLbPolicy(), tc.lb)
		}
		want := tc.maxConn
		if want == 0 {
			want = math.MaxUint32
		}
		if got := c.GetCircuitBreakers().GetThresholds(); len(got) != 1 || got[0].GetMaxConnections().GetValue() != want {
			t.Errorf("%s: circuit breakers %v, want max_connections %d", name, got, tc.maxConn)
		}
		if got := c.GetOutlierDetection(); tc.outlier == 0 && got != nil || tc.outlier != 0 && got.GetConsecutive_5Xx().GetValue() != tc.outlier {
			t.Errorf("%s: outlier detection %v, want consecutive_5xx %d", name, got, tc.outlier)
		}
	}
}

func TestConnectionPool(t *testing.T) {
	tp := &networking.TrafficPolicy{ConnectionPool: &networking.ConnectionPoolSettings{
		Tcp: &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: 100, ConnectTimeout: durationpb.New(250 * time.Millisecond)},
		Http: &networking.ConnectionPoolSettings_HTTPSettings{
			Http1MaxPendingRequests: 5, Http2MaxRequests: 50, MaxRequestsPerConnection: 1, MaxRetries: 3,
			IdleTimeout: durationpb.New(30 * time.Second),
		},
	}}
	c := generate(t, coolapp(catalogDR(tp)), sidecarMeta()).Clusters[catalogCluster]
	assertProto(t, "circuit_breakers", c.GetCircuitBreakers(), &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{
		MaxConnections: wrapperspb.UInt32(100), MaxPendingRequests: wrapperspb.UInt32(5),
		MaxRequests: wrapperspb.UInt32(50), MaxRetries: wrapperspb.UInt32(3), TrackRemaining: true,
	}}})
	if c.GetConnectTimeout().AsDuration() != 250*time.Millisecond {
		t.Errorf("connect_timeout %v", c.GetConnectTimeout())
	}
	opts := &upstreamhttp.HttpProtocolOptions{}
	if err := c.GetTypedExtensionProtocolOptions()[HTTPProtocolOptionsKey].UnmarshalTo(opts); err != nil {
		t.Fatal(err)
	}
	assertProto(t, "http protocol options", opts, &upstreamhttp.HttpProtocolOptions{
		CommonHttpProtocolOptions: &core.HttpProtocolOptions{IdleTimeout: durationpb.New(30 * time.Second), MaxRequestsPerConnection: wrapperspb.UInt32(1)},
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &core.Http1ProtocolOptions{}}}},
	})

	// One limit set: the others are unlimited, not Envoy's 1024; no protocol options.
	c = generate(t, coolapp(catalogDR(&networking.TrafficPolicy{ConnectionPool: &networking.ConnectionPoolSettings{
		Http: &networking.ConnectionPoolSettings_HTTPSettings{Http1MaxPendingRequests: 1}}})), sidecarMeta()).Clusters[catalogCluster]
	th := c.GetCircuitBreakers().GetThresholds()[0]
	if th.GetMaxPendingRequests().GetValue() != 1 || th.GetMaxConnections().GetValue() != math.MaxUint32 ||
		th.GetMaxRequests().GetValue() != math.MaxUint32 || th.GetMaxRetries().GetValue() != math.MaxUint32 {
		t.Errorf("thresholds %v", th)
	}
	if c.GetTypedExtensionProtocolOptions() != nil || c.GetConnectTimeout().AsDuration() != ConnectTimeout {
		t.Errorf("cluster %v", c)
	}
}

// TestDefaultCircuitBreakers: without a connectionPool every cluster,
// outbound and a sidecar's inbound one, gets Istio's thresholds, all at
// the maximum, not Envoy's 3 concurrent retries per cluster that fail
// requests with UO while an instance goes away under load.
func TestDefaultCircuitBreakers(t *testing.T) {
	want := &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{
		MaxConnections: wrapperspb.UInt32(4294967295), MaxPendingRequests: wrapperspb.UInt32(4294967295),
		MaxRequests: wrapperspb.UInt32(4294967295), MaxRetries: wrapperspb.UInt32(4294967295), TrackRemaining: true,
	}}}
	for name, r := range map[string]*Resources{
		"no DestinationRule": generate(t, coolapp(), sidecarMeta()),
		"a DestinationRule without connectionPool": generate(t, coolapp(catalogDR(&networking.TrafficPolicy{
			LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_RANDOM}}})), sidecarMeta()),
	} {
		if len(r.Clusters) < 2 {
			t.Fatalf("%s: clusters %v", name, r.Clusters)
		}
		for cn, c := range r.Clusters {
			assertProto(t, name+": "+cn+" circuit_breakers", c.GetCircuitBreakers(), want)
		}
	}
}

func TestOutlierDetection(t *testing.T) {
	secs := func(n int) *durationpb.Duration { return durationpb.New(time.Duration(n) * time.Second) }
	for _, tc := range []struct {
		name string
		in   *networking.OutlierDetection
		want *cluster.OutlierDetection
	}{
		{"only consecutive5xxErrors: Istio defaults for the rest", &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(3)},
			&cluster.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3), EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
				Interval: secs(10), BaseEjectionTime: secs(30), MaxEjectionPercent: wrapperspb.UInt32(10)}},
		{"everything", &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(2), ConsecutiveGatewayErrors: wrapperspb.UInt32(1),
			Interval: secs(1), BaseEjectionTime: secs(5), MaxEjectionPercent: 50, MinHealthPercent: 20},
			&cluster.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(2), EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
				ConsecutiveGatewayFailure: wrapperspb.UInt32(1), EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
				Interval: secs(1), BaseEjectionTime: secs(5), MaxEjectionPercent: wrapperspb.UInt32(50)}},
		{"legacy consecutiveErrors", &networking.OutlierDetection{ConsecutiveErrors: 4, Interval: secs(2)},
			&cluster.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(4), EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
				Interval: secs(2), BaseEjectionTime: secs(30), MaxEjectionPercent: wrapperspb.UInt32(10)}},
		{"consecutive5xxErrors wins over legacy", &networking.OutlierDetection{ConsecutiveErrors: 4, Consecutive_5XxErrors: wrapperspb.UInt32(9)},
			&cluster.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(9), EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
				Interval: secs(10), BaseEjectionTime: secs(30), MaxEjectionPercent: wrapperspb.UInt32(10)}},
		{"5xx disabled, gateway errors only", &networking.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(0), ConsecutiveGatewayErrors: wrapperspb.UInt32(3)},
			&cluster.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(0), EnforcingConsecutive_5Xx: wrapperspb.UInt32(0),
				ConsecutiveGatewayFailure: wrapperspb.UInt32(3), EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
				Interval: secs(10), BaseEjectionTime: secs(30), MaxEjectionPercent: wrapperspb.UInt32(10)}},
		{"interval only: Envoy's default threshold written out", &networking.OutlierDetection{Interval: secs(1)},
			&cluster.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(5), EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
				Interval: secs(1), BaseEjectionTime: secs(30), MaxEjectionPercent: wrapperspb.UInt32(10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := generate(t, coolapp(catalogDR(&networking.TrafficPolicy{OutlierDetection: tc.in})), sidecarMeta()).Clusters[catalogCluster]
			assertProto(t, "outlier_detection", c.GetOutlierDetection(), tc.want)
		})
	}
}
