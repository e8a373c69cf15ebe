package cluster

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/weft-mesh/weft/proxy/lb/maglev"
	"github.com/weft-mesh/weft/proxy/lb/ringhash"
)

func ringHashConfig(rc *clusterv3.Cluster_RingHashLbConfig) (ringhash.Config, error) {
	cfg := ringhash.Config{MinRingSize: ringhash.DefaultMinRingSize, MaxRingSize: ringhash.DefaultMaxRingSize}
	if rc == nil {
		return cfg, nil
	}
	if err := contract.CheckFields(rc, "minimum_ring_size", "maximum_ring_size", "hash_function"); err != nil {
		return cfg, err
	}
	if rc.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
		return cfg, fmt.Errorf("hash_function: unsupported %s", rc.GetHashFunction())
	}
	if v := rc.GetMinimumRingSize(); v != nil {
		cfg.MinRingSize = v.GetValue()
	}
	if v := rc.GetMaximumRingSize(); v != nil {
		cfg.MaxRingSize = v.GetValue()
	}
	if cfg.MinRingSize == 0 || cfg.MinRingSize > cfg.MaxRingSize || cfg.MaxRingSize > ringhash.DefaultMaxRingSize {
		return cfg, fmt.Errorf("minimum_ring_size: must be in [1, maximum_ring_size], maximum_ring_size at most %d", ringhash.DefaultMaxRingSize)
	}
	return cfg, nil
}

func maglevTableSize(mc *clusterv3.Cluster_MaglevLbConfig) (uint64, error) {
	if mc == nil {
		return maglev.DefaultTableSize, nil
	}
	if err := contract.CheckFields(mc, "table_size"); err != nil {
		return 0, err
	}
	v := mc.GetTableSize()
	if v == nil {
		return maglev.DefaultTableSize, nil
	}
	if !maglev.Prime(v.GetValue()) || v.GetValue() > maglev.MaxTableSize {
		return 0, fmt.Errorf("table_size: %d is not a prime at most %d", v.GetValue(), maglev.MaxTableSize)
	}
	return v.GetValue(), nil
}
