package lb

import (
	"math/rand/v2"
	"sort"
)

// Weighted picks among endpoints with probability proportional to their
// weights using a random number and a binary search over cumulative weights.
// It is immutable and safe for concurrent use.
type Weighted struct {
	eps   []*Endpoint
	cum   []uint64 // cum[i] = sum of weights of eps[0..i]
	total uint64
}

// NewWeighted builds a Weighted picker over eps, which must be non-empty.
func NewWeighted(eps []*Endpoint) *Weighted {
	w := &Weighted{eps: eps, cum: make([]uint64, len(eps))}
	for i, e := range eps {
		w.total += uint64(max(e.Weight, 1))
		w.cum[i] = w.total
	}
	return w
}

// Pick returns a random endpoint, weighted.
func (w *Weighted) Pick() *Endpoint {
	return w.At(rand.Uint64N(w.total))
}

// At returns the endpoint owning point x in [0, total).
func (w *Weighted) At(x uint64) *Endpoint {
	i := sort.Search(len(w.cum), func(i int) bool { return w.cum[i] > x })
	return w.eps[i]
}
