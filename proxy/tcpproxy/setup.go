package tcpproxy

import (
	"fmt"
	"math/rand/v2"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/contract"
)

// FilterName is the network filter this package implements.
const FilterName = "envoy.filters.network.tcp_proxy"

// Spec is a validated tcp_proxy filter configuration.
type Spec struct {
	// StatPrefix is the filter's stat_prefix.
	StatPrefix string
	// Clusters are the destinations with their weights; a single cluster
	// has weight 1.
	Clusters []WeightedCluster

	total uint64
}

// WeightedCluster is one destination of a tcp_proxy.
type WeightedCluster struct {
	Name   string
	Weight uint32
}

// Parse validates a tcp_proxy typed_config against the xDS contract
// (stat_prefix, cluster or weighted_clusters). Errors name the field
// relative to the typed_config.
func Parse(a *anypb.Any) (*Spec, error) {
	if a == nil {
		return nil, fmt.Errorf("typed_config: required")
	}
	tp := &tcpv3.TcpProxy{}
	if err := a.UnmarshalTo(tp); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	s, err := FromProto(tp)
	if err != nil {
		return nil, fmt.Errorf("typed_config.%w", err)
	}
	return s, nil
}

// FromProto validates tp and returns its Spec.
func FromProto(tp *tcpv3.TcpProxy) (*Spec, error) {
	if err := contract.CheckFields(tp, "stat_prefix", "cluster", "weighted_clusters"); err != nil {
		return nil, err
	}
	if tp.GetStatPrefix() == "" {
		return nil, fmt.Errorf("stat_prefix: empty")
	}
	s := &Spec{StatPrefix: tp.GetStatPrefix()}
	switch cs := tp.GetClusterSpecifier().(type) {
	case *tcpv3.TcpProxy_Cluster:
		if cs.Cluster == "" {
			return nil, fmt.Errorf("cluster: empty")
		}
		s.Clusters = []WeightedCluster{{Name: cs.Cluster, Weight: 1}}
	case *tcpv3.TcpProxy_WeightedClusters:
		if err := contract.CheckFields(cs.WeightedClusters, "clusters"); err != nil {
			return nil, fmt.Errorf("weighted_clusters.%w", err)
		}
		if len(cs.WeightedClusters.GetClusters()) == 0 {
			return nil, fmt.Errorf("weighted_clusters.clusters: empty")
		}
		for i, cw := range cs.WeightedClusters.GetClusters() {
			if err := contract.CheckFields(cw, "name", "weight"); err != nil {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d].%w", i, err)
			}
			if cw.GetName() == "" {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d].name: empty", i)
			}
			if cw.GetWeight() == 0 {
				continue // Envoy skips zero-weight clusters
			}
			s.Clusters = append(s.Clusters, WeightedCluster{Name: cw.GetName(), Weight: cw.GetWeight()})
		}
		if len(s.Clusters) == 0 {
			return nil, fmt.Errorf("weighted_clusters.clusters: all weights are 0")
		}
	default:
		return nil, fmt.Errorf("cluster_specifier: one of cluster, weighted_clusters required")
	}
	for _, c := range s.Clusters {
		s.total += uint64(c.Weight)
	}
	return s, nil
}

// PickCluster returns the name of the cluster for a new connection, drawn
// by weight.
func (s *Spec) PickCluster() string {
	if len(s.Clusters) == 1 {
		return s.Clusters[0].Name
	}
	x := rand.Uint64N(s.total)
	for _, c := range s.Clusters {
		if x < uint64(c.Weight) {
			return c.Name
		}
		x -= uint64(c.Weight)
	}
	return s.Clusters[len(s.Clusters)-1].Name
}
