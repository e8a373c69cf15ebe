// Package random implements weighted random load balancing. It keeps no
// shared mutable state: each pick draws from math/rand/v2's per-goroutine
// generator.
package random

import (
	"math/rand/v2"
	"net/http"

	"github.com/weft-mesh/weft/proxy/lb"
)

// Balancer is a random lb.Balancer.
type Balancer struct {
	eps      []*lb.Endpoint
	weighted *lb.Weighted // nil when weights are uniform
}

// New returns a random balancer over eps; with no endpoints it returns
// lb.Empty.
func New(eps []*lb.Endpoint) lb.Balancer {
	if len(eps) == 0 {
		return lb.Empty{}
	}
	b := &Balancer{eps: eps}
	if !lb.Uniform(eps) {
		b.weighted = lb.NewWeighted(eps)
	}
	return b
}

// Pick implements lb.Balancer.
func (b *Balancer) Pick(*http.Request, lb.Hash) *lb.Endpoint {
	if b.weighted != nil {
		return b.weighted.Pick()
	}
	return b.eps[rand.IntN(len(b.eps))]
}
