// Package leastrequest implements least-request load balancing with the power
// of two choices: two endpoints are drawn at random (weighted) and the one with
// fewer active requests relative to its weight wins.
package leastrequest

import (
	"math/rand/v2"
	"net/http"

	"github.com/weft-mesh/weft/proxy/lb"
)

// Balancer is a power-of-two-choices lb.Balancer.
type Balancer struct {
	eps      []*lb.Endpoint
	weighted *lb.Weighted // nil when weights are uniform
}

// New returns a least-request balancer over eps; with no endpoints it returns
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
	n := len(b.eps)
	if n == 1 {
		return b.eps[0]
	}
	var x, y *lb.Endpoint
	if b.weighted != nil {
		x, y = b.weighted.Pick(), b.weighted.Pick()
	} else {
		i := rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		x, y = b.eps[i], b.eps[j]
	}
	// Compare active/weight without division: ax*wy vs ay*wx.
	ax, ay := x.Active(), y.Active()
	if ax*int64(max(y.Weight, 1)) <= ay*int64(max(x.Weight, 1)) {
		return x
	}
	return y
}
