// Package roundrobin implements weighted round-robin load balancing without
// locks: a schedule of endpoint indices is computed once, interleaved with the
// smooth weighted round-robin algorithm, and each request advances an atomic
// counter through it.
package roundrobin

import (
	"net/http"
	"sync/atomic"

	"github.com/weft-mesh/weft/proxy/lb"
)

// MaxSchedule caps the length of the precomputed schedule. Weights whose
// reduced sum exceeds it are scaled down proportionally (each endpoint keeps at
// least one slot).
const MaxSchedule = 4096

// Balancer is a weighted round-robin lb.Balancer.
type Balancer struct {
	eps   []*lb.Endpoint
	sched []uint32 // indices into eps; nil when weights are uniform
	next  atomic.Uint64
}

// New returns a round-robin balancer over eps; with no endpoints it returns
// lb.Empty.
func New(eps []*lb.Endpoint) lb.Balancer {
	if len(eps) == 0 {
		return lb.Empty{}
	}
	b := &Balancer{eps: eps}
	if !lb.Uniform(eps) {
		b.sched = Schedule(eps)
	}
	return b
}

// Pick implements lb.Balancer.
func (b *Balancer) Pick(*http.Request, lb.Hash) *lb.Endpoint {
	n := b.next.Add(1) - 1
	if b.sched == nil {
		return b.eps[n%uint64(len(b.eps))]
	}
	return b.eps[b.sched[n%uint64(len(b.sched))]]
}

// Schedule returns one full round of endpoint indices in smooth weighted
// round-robin order: each endpoint i appears weight(i)/g times, g being the
// greatest common divisor of the weights.
func Schedule(eps []*lb.Endpoint) []uint32 {
	ws := make([]uint64, len(eps))
	var g, sum uint64
	for i, e := range eps {
		ws[i] = uint64(max(e.Weight, 1))
		g = gcd(g, ws[i])
	}
	for i := range ws {
		ws[i] /= g
		sum += ws[i]
	}
	if sum > MaxSchedule {
		scaled := uint64(0)
		for i := range ws {
			ws[i] = max(1, ws[i]*MaxSchedule/sum)
			scaled += ws[i]
		}
		sum = scaled
	}
	sched := make([]uint32, 0, sum)
	cur := make([]int64, len(ws))
	for range sum {
		best := 0
		for i := range ws {
			cur[i] += int64(ws[i])
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= int64(sum)
		sched = append(sched, uint32(best))
	}
	return sched
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
