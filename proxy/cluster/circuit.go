package cluster

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Envoy's circuit-breaker defaults, used for every threshold the cluster does
// not set.
const (
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	DefaultMaxRetries         = 3
)

// Thresholds are a cluster's circuit-breaker limits, from
// circuit_breakers.thresholds (the DEFAULT-priority entry).
type Thresholds struct {
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	MaxRetries         uint32
}

// requestLimit is the number of concurrent HTTP/1.1 requests admitted:
// each needs a connection of its own, so at most max_connections are being
// served and max_pending_requests wait for one; max_requests caps the total.
func (t Thresholds) requestLimit() int64 {
	return min(int64(t.MaxRequests), int64(t.MaxConnections)+int64(t.MaxPendingRequests))
}

func thresholds(cb *clusterv3.CircuitBreakers) (Thresholds, error) {
	t := Thresholds{DefaultMaxConnections, DefaultMaxPendingRequests, DefaultMaxRequests, DefaultMaxRetries}
	if cb == nil {
		return t, nil
	}
	if err := contract.CheckFields(cb, "thresholds"); err != nil {
		return t, err
	}
	seen := false
	for i, th := range cb.GetThresholds() {
		if err := contract.CheckFields(th, "priority", "max_connections", "max_pending_requests",
			"max_requests", "max_retries", "track_remaining"); err != nil {
			return t, fmt.Errorf("thresholds[%d].%w", i, err)
		}
		// Requests are all DEFAULT priority: HIGH thresholds never apply.
		if th.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		if seen {
			return t, fmt.Errorf("thresholds[%d].priority: DEFAULT given twice", i)
		}
		seen = true
		set := func(dst *uint32, v interface{ GetValue() uint32 }, present bool) {
			if present {
				*dst = v.GetValue()
			}
		}
		set(&t.MaxConnections, th.GetMaxConnections(), th.MaxConnections != nil)
		set(&t.MaxPendingRequests, th.GetMaxPendingRequests(), th.MaxPendingRequests != nil)
		set(&t.MaxRequests, th.GetMaxRequests(), th.MaxRequests != nil)
		set(&t.MaxRetries, th.GetMaxRetries(), th.MaxRetries != nil)
	}
	return t, nil
}

// AdmitRequest reserves room for one request (one attempt) against the
// circuit breaker: at most max_requests, and at most max_connections +
// max_pending_requests since an HTTP/1.1 request holds a connection. It
// returns false, without waiting, when the cluster is full: the caller
// answers 503 with response flag UO. Every true must be paired with
// ReleaseRequest. Counters are shared with the same-named cluster of other
// configs, so a configuration swap does not reset them.
func (c *Cluster) AdmitRequest() bool {
	if c.shared.requests.Add(1) > c.Limits.requestLimit() {
		c.shared.requests.Add(-1)
		return false
	}
	return true
}

// ReleaseRequest ends a request admitted by AdmitRequest.
func (c *Cluster) ReleaseRequest() { c.shared.requests.Add(-1) }

// AdmitRetry reserves room for one retry: at most max_retries (default 3)
// retries are outstanding at once across the cluster. Every true must be
// paired with ReleaseRetry once the retry attempt ends.
func (c *Cluster) AdmitRetry() bool {
	if c.shared.retries.Add(1) > int64(c.Limits.MaxRetries) {
		c.shared.retries.Add(-1)
		return false
	}
	return true
}

// ReleaseRetry ends a retry admitted by AdmitRetry.
func (c *Cluster) ReleaseRetry() { c.shared.retries.Add(-1) }

// AdmitConnection reserves one upstream connection for a TCP proxy session:
// at most max_connections at once. Every true must be paired with
// ReleaseConnection.
func (c *Cluster) AdmitConnection() bool {
	if c.shared.conns.Add(1) > int64(c.Limits.MaxConnections) {
		c.shared.conns.Add(-1)
		return false
	}
	return true
}

// ReleaseConnection ends a connection admitted by AdmitConnection.
func (c *Cluster) ReleaseConnection() { c.shared.conns.Add(-1) }

// Active returns the requests, retries and TCP connections in flight on
// clusters of this name.
func (c *Cluster) Active() (requests, retries, conns int64) {
	return c.shared.requests.Load(), c.shared.retries.Load(), c.shared.conns.Load()
}
