// Package maglev implements Envoy's MAGLEV load balancer: a lookup table of
// a prime size (65537 by default) filled from every host's own permutation
// of the slots, so that a request's hash picks a host with one modulo and
// one array read, and a host change moves few keys.
package maglev

import (
	"math/rand/v2"
	"net/http"

	"github.com/weft-mesh/weft/proxy/lb"
)

// Table sizes.
const (
	DefaultTableSize = 65537
	MaxTableSize     = 5000011
)

// Balancer is an immutable Maglev table; Pick is lock-free.
type Balancer struct {
	table []*lb.Endpoint
}

// New builds the table over eps with size slots (a prime; 0 picks
// DefaultTableSize); with no endpoints it returns lb.Empty.
//
// Weights use the weighted variant Envoy implements: hosts take turns
// claiming their next preferred free slot, a host's turn coming in
// proportion to its weight relative to the heaviest host.
func New(eps []*lb.Endpoint, size uint64) lb.Balancer {
	if len(eps) == 0 {
		return lb.Empty{}
	}
	if size == 0 {
		size = DefaultTableSize
	}
	type perm struct {
		offset, skip, next uint64
		weight, credit     float64
	}
	var maxW float64
	for _, e := range eps {
		maxW = max(maxW, float64(max(e.Weight, 1)))
	}
	ps := make([]perm, len(eps))
	for i, e := range eps {
		ps[i] = perm{
			offset: lb.HashString(e.Address) % size,
			skip:   lb.HashString(e.Address+"#skip")%(size-1) + 1,
			weight: float64(max(e.Weight, 1)) / maxW,
		}
	}
	table := make([]*lb.Endpoint, size)
	filled := uint64(0)
	for filled < size {
		for i := range ps {
			p := &ps[i]
			p.credit += p.weight
			if p.credit < 1 {
				continue
			}
			p.credit--
			slot := (p.offset + p.next*p.skip) % size
			for table[slot] != nil {
				p.next++
				slot = (p.offset + p.next*p.skip) % size
			}
			table[slot] = eps[i]
			p.next++
			if filled++; filled == size {
				break
			}
		}
	}
	return &Balancer{table: table}
}

// Pick implements lb.Balancer: slot h.Value mod the table size. Without a
// hash (h.OK false) it picks a random slot, a weighted random choice.
func (b *Balancer) Pick(_ *http.Request, h lb.Hash) *lb.Endpoint {
	v := h.Value
	if !h.OK {
		v = rand.Uint64()
	}
	return b.table[v%uint64(len(b.table))]
}

// Prime reports whether n is a prime, for validating table_size.
func Prime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
