package cluster

import (
	"net/http/httptest"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/lb/maglev"
	"github.com/weft-mesh/weft/proxy/lb/ringhash"
)

func TestConsistentHashPolicies(t *testing.T) {
	pc := static(t, "c", addrs(4)...)
	pc.LbPolicy = clusterv3.Cluster_RING_HASH
	pc.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
		MinimumRingSize: wrapperspb.UInt64(4096)}}
	c := mustCompile(t, NewState(StateOptions{}), pc)
	rh, ok := c.Balancer.(*ringhash.Balancer)
	if !ok || c.Policy != lb.RingHash || rh.Size() < 4096 {
		t.Fatalf("ring hash cluster: %T %v", c.Balancer, c.Policy)
	}
	h := lb.Hash{Value: 12345, OK: true}
	first := c.Pick(nil, h)
	for range 100 {
		if c.Pick(nil, h) != first {
			t.Fatal("same hash, different host")
		}
	}

	pc.LbPolicy = clusterv3.Cluster_MAGLEV
	pc.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(251)}}
	c = mustCompile(t, NewState(StateOptions{}), pc)
	if _, ok := c.Balancer.(*maglev.Balancer); !ok || c.Policy != lb.Maglev {
		t.Fatalf("maglev cluster: %T", c.Balancer)
	}
	pc.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(250)}}
	if _, err := Compile(pc, nil); err == nil || !strings.Contains(err.Error(), "maglev_lb_config.table_size") {
		t.Errorf("err = %v", err)
	}
	pc.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	if _, err := Compile(pc, nil); err == nil || !strings.Contains(err.Error(), "maglev_lb_config: only with lb_policy MAGLEV") {
		t.Errorf("err = %v", err)
	}
	pc.LbPolicy = clusterv3.Cluster_RING_HASH
	pc.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
		HashFunction: clusterv3.Cluster_RingHashLbConfig_MURMUR_HASH_2}}
	if _, err := Compile(pc, nil); err == nil || !strings.Contains(err.Error(), "ring_hash_lb_config.hash_function") {
		t.Errorf("err = %v", err)
	}
}

func TestOriginalDst(t *testing.T) {
	pc := &clusterv3.Cluster{Name: "PassthroughCluster",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED}
	c := mustCompile(t, NewState(StateOptions{}), pc)
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "10.2.3.4:9090"
	if ep := c.Pick(r, lb.Hash{}); c.Type != "ORIGINAL_DST" || ep == nil || ep.Address != "10.2.3.4:9090" {
		t.Fatalf("picked %v", ep)
	}
	c.Observe(c.Pick(r, lb.Hash{}), 500, false) // not tracked; must not panic
	pc.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	if _, err := Compile(pc, nil); err == nil || !strings.Contains(err.Error(), "CLUSTER_PROVIDED") {
		t.Errorf("err = %v", err)
	}
	st := static(t, "s", "127.0.0.1:1")
	st.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	if _, err := Compile(st, nil); err == nil || !strings.Contains(err.Error(), "CLUSTER_PROVIDED") {
		t.Errorf("err = %v", err)
	}
}
