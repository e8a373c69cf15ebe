package translate

import (
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// defaultMinimumRingSize is Envoy's own default, which Istio writes out
// explicitly when a consistentHash names no algorithm.
const defaultMinimumRingSize = 1024

// mergePolicy returns the traffic policy that applies to one port of a
// cluster, the way Istio merges DestinationRule policies:
//
//   - a portLevelSettings entry for the port replaces the whole policy it
//     sits in (its omitted fields fall back to defaults, not to the
//     enclosing policy: Istio documents port-level settings as not
//     inheriting);
//   - the subset's policy is then laid over the rule's field by field
//     (loadBalancer, connectionPool, outlierDetection, tls), except that when
//     the subset has an entry for the port, every field comes from that
//     entry, set or not.
//
// The result is nil when nothing applies.
func mergePolicy(top, subset *networking.TrafficPolicy, port uint32) *networking.TrafficPolicy {
	top, _ = portPolicy(top, port)
	if subset == nil {
		return top
	}
	sub, portLevel := portPolicy(subset, port)
	if top == nil {
		return sub
	}
	merged := &networking.TrafficPolicy{
		LoadBalancer:     top.GetLoadBalancer(),
		ConnectionPool:   top.GetConnectionPool(),
		OutlierDetection: top.GetOutlierDetection(),
		Tls:              top.GetTls(),
	}
	if sub.GetTls() != nil || portLevel {
		merged.Tls = sub.GetTls()
	}
	if sub.GetLoadBalancer() != nil || portLevel {
		merged.LoadBalancer = sub.GetLoadBalancer()
	}
	if sub.GetConnectionPool() != nil || portLevel {
		merged.ConnectionPool = sub.GetConnectionPool()
	}
	if sub.GetOutlierDetection() != nil || portLevel {
		merged.OutlierDetection = sub.GetOutlierDetection()
	}
	return merged
}

// portPolicy returns tp's portLevelSettings entry for port as a policy of
// its own (and true), or tp itself without its port-level settings.
func portPolicy(tp *networking.TrafficPolicy, port uint32) (*networking.TrafficPolicy, bool) {
	if tp == nil {
		return nil, false
	}
	for _, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() == port {
			return &networking.TrafficPolicy{
				LoadBalancer:     pl.GetLoadBalancer(),
				ConnectionPool:   pl.GetConnectionPool(),
				OutlierDetection: pl.GetOutlierDetection(),
				Tls:              pl.GetTls(),
			}, true
		}
	}
	return &networking.TrafficPolicy{
		LoadBalancer:     tp.GetLoadBalancer(),
		ConnectionPool:   tp.GetConnectionPool(),
		OutlierDetection: tp.GetOutlierDetection(),
		Tls:              tp.GetTls(),
	}, false
}

// applyLoadBalancer sets the cluster's lb_policy (and, for PASSTHROUGH,
// its discovery type) from loadBalancer settings.
func applyLoadBalancer(c *cluster.Cluster, lb *networking.LoadBalancerSettings) {
	if ch := lb.GetConsistentHash(); ch != nil {
		applyConsistentHash(c, ch)
		return
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_LEAST_REQUEST, networking.LoadBalancerSettings_LEAST_CONN:
		// Istio has treated LEAST_CONN as an alias of LEAST_REQUEST since it was deprecated.
		c.LbPolicy = cluster.Cluster_LEAST_REQUEST
	case networking.LoadBalancerSettings_RANDOM:
		c.LbPolicy = cluster.Cluster_RANDOM
	case networking.LoadBalancerSettings_PASSTHROUGH:
		// The proxy connects to the address the caller asked for, so there
		// are no endpoints to discover.
		c.ClusterDiscoveryType = &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST}
		c.LbPolicy = cluster.Cluster_CLUSTER_PROVIDED
		c.EdsClusterConfig = nil
	default:
		c.LbPolicy = cluster.Cluster_ROUND_ROBIN
	}
}

// applyConsistentHash picks MAGLEV or RING_HASH. A ringHash without a size
// leaves Envoy's default; the legacy top-level minimumRingSize (or none at
// all) writes the size out, as Istio does. Maglev's tableSize is not part
// of the xDS contract and is left to the proxy.
func applyConsistentHash(c *cluster.Cluster, ch *networking.LoadBalancerSettings_ConsistentHashLB) {
	switch {
	case ch.GetMaglev() != nil:
		c.LbPolicy = cluster.Cluster_MAGLEV
	case ch.GetRingHash() != nil:
		c.LbPolicy = cluster.Cluster_RING_HASH
		if n := ch.GetRingHash().GetMinimumRingSize(); n != 0 {
			c.LbConfig = ringHashConfig(n)
		}
	default:
		c.LbPolicy = cluster.Cluster_RING_HASH
		n := ch.GetMinimumRingSize() //nolint:staticcheck // the legacy field is still accepted
		if n == 0 {
			n = defaultMinimumRingSize
		}
		c.LbConfig = ringHashConfig(n)
	}
}

func ringHashConfig(minSize uint64) *cluster.Cluster_RingHashLbConfig_ {
	return &cluster.Cluster_RingHashLbConfig_{RingHashLbConfig: &cluster.Cluster_RingHashLbConfig{
		MinimumRingSize: wrapperspb.UInt64(minSize),
	}}
}

// hashPolicy is the route-side half of consistent hashing: what to hash.
func hashPolicy(ch *networking.LoadBalancerSettings_ConsistentHashLB) *route.RouteAction_HashPolicy {
	switch key := ch.GetHashKey().(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		return &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Header_{
			Header: &route.RouteAction_HashPolicy_Header{HeaderName: key.HttpHeaderName},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		ck := &route.RouteAction_HashPolicy_Cookie{Name: key.HttpCookie.GetName(), Path: key.HttpCookie.GetPath()}
		if ttl := key.HttpCookie.GetTtl(); ttl != nil {
			ck.Ttl = durationpb.New(ttl.AsDuration())
		}
		return &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_Cookie_{Cookie: ck}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		if !key.UseSourceIp {
			return nil // useSourceIp: false selects no key; validation should have refused it
		}
		return &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &route.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		return &route.RouteAction_HashPolicy{PolicySpecifier: &route.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &route.RouteAction_HashPolicy_QueryParameter{Name: key.HttpQueryParameterName},
		}}
	}
	return nil
}
