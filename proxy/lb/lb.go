// Package lb defines the load-balancer contract of the weft proxy: an
// Endpoint, the Balancer that picks one per request, and the policy names a
// cluster's lb_policy maps to. Implementations live in sub-packages, one per
// policy (roundrobin, random, leastrequest, ringhash, maglev, originaldst); all are lock-free on the hot path
// and immutable once built, except for atomic counters.
package lb

import (
	"net/http"
	"sync/atomic"
)

// Endpoint is one upstream host of a cluster. It is shared by the balancer and
// the forwarder for the lifetime of one compiled configuration.
type Endpoint struct {
	// Address is the dialable "host:port".
	Address string
	// Locality is "region/zone/subzone" as sent in the ClusterLoadAssignment;
	// informational.
	Locality string
	// Weight is the effective load-balancing weight (at least 1), already
	// combining the endpoint's and its locality's weights.
	Weight uint32
	// Meta is the workload identity the control plane attached to the
	// endpoint (filter_metadata["istio"]), nil when none; immutable.
	Meta *Metadata
	// Tag is a slot for telemetry to cache per-endpoint state (such as
	// interned metric labels) for the endpoint's lifetime; the data path
	// neither reads nor writes it.
	Tag atomic.Value

	active atomic.Int64
}

// Metadata is an endpoint's workload identity, as sent by the control plane
// in the endpoint's metadata.filter_metadata["istio"]. It is immutable.
type Metadata struct {
	Workload       string // workload name, e.g. "reviews-v2" (see cluster.endpointMeta)
	Namespace      string
	ServiceAccount string
	App            string // the "app" label (Istio's canonical service)
	Version        string // the "version" label
}

// Active returns the number of requests currently in flight to e.
func (e *Endpoint) Active() int64 { return e.active.Load() }

// Begin marks the start of a request to e. Every Begin must be paired with End.
func (e *Endpoint) Begin() { e.active.Add(1) }

// End marks the end of a request to e.
func (e *Endpoint) End() { e.active.Add(-1) }

// Hash is a request's hash key, computed by the route's hash_policy. Only the
// consistent-hashing balancers (ring_hash, maglev) use it; OK is false when
// the route has no hash policy or none of its policies produced a value.
type Hash struct {
	Value uint64
	OK    bool
}

// Balancer picks the endpoint for one request. Pick returns nil when there is
// no healthy endpoint. r may be nil (TCP connections, tests). Implementations
// must be safe for concurrent use and must not block.
type Balancer interface {
	Pick(r *http.Request, h Hash) *Endpoint
}

// Factory builds a Balancer over a fixed set of healthy endpoints.
type Factory func(eps []*Endpoint) Balancer

// Policy names a load-balancing policy, spelled as in Envoy's Cluster.LbPolicy.
type Policy string

// Supported policies.
const (
	RoundRobin   Policy = "ROUND_ROBIN"
	Random       Policy = "RANDOM"
	LeastRequest Policy = "LEAST_REQUEST"
	RingHash     Policy = "RING_HASH"
	Maglev       Policy = "MAGLEV"
	// ClusterProvided is ORIGINAL_DST's policy: the upstream is the request's
	// own destination (PASSTHROUGH).
	ClusterProvided Policy = "CLUSTER_PROVIDED"
)

// Empty is a Balancer with no endpoints: it always picks nil.
type Empty struct{}

// Pick implements Balancer.
func (Empty) Pick(*http.Request, Hash) *Endpoint { return nil }

// Uniform reports whether all endpoints have the same weight, in which case
// balancers can skip weight arithmetic.
func Uniform(eps []*Endpoint) bool {
	for _, e := range eps[1:] {
		if e.Weight != eps[0].Weight {
			return false
		}
	}
	return true
}
