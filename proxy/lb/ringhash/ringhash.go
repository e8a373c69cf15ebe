// Package ringhash implements Envoy's RING_HASH load balancer: a Ketama-style
// consistent-hash ring. Every host owns a number of points on a 64-bit ring
// proportional to its weight; a request's hash picks the first point at or
// after it. Adding or removing one of N hosts moves about 1/N of the keys.
package ringhash

import (
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"

	"github.com/weft-mesh/weft/proxy/lb"
)

// Ring size bounds, Envoy's defaults.
const (
	DefaultMinRingSize = 1024
	DefaultMaxRingSize = 8 * 1024 * 1024
)

// Config is a ring_hash_lb_config.
type Config struct {
	// MinRingSize is the least number of points on the ring (more give a
	// finer weight resolution).
	MinRingSize uint64
	// MaxRingSize caps the number of points.
	MaxRingSize uint64
}

// Balancer is an immutable hash ring; Pick is a binary search, lock-free.
type Balancer struct {
	hashes []uint64 // sorted
	owners []*lb.Endpoint
}

// New builds the ring over eps; with no endpoints it returns lb.Empty.
//
// A host of the lowest weight gets P points, P being the smallest power of
// two that brings the ring to MinRingSize points; a host of weight w gets
// about P*w/min_weight points, its point i hashed from "address_i". Rounding
// P to a power of two keeps it, and so every host's points, unchanged when
// a host is added or removed (unless the count crosses a power of two with
// few hosts), which is what moves only about 1/N of the keys. The ring is
// scaled down to MaxRingSize if the weights ask for more.
func New(eps []*lb.Endpoint, cfg Config) lb.Balancer {
	if len(eps) == 0 {
		return lb.Empty{}
	}
	if cfg.MinRingSize == 0 {
		cfg.MinRingSize = DefaultMinRingSize
	}
	if cfg.MaxRingSize == 0 {
		cfg.MaxRingSize = DefaultMaxRingSize
	}
	minW, units := float64(math.MaxUint32), 0.0
	for _, e := range eps {
		minW = min(minW, float64(max(e.Weight, 1)))
	}
	for _, e := range eps {
		units += float64(max(e.Weight, 1)) / minW // total weight in lowest-weight hosts
	}
	per := 1.0
	for per*units < float64(cfg.MinRingSize) {
		per *= 2
	}
	if total := per * units; total > float64(cfg.MaxRingSize) {
		per *= float64(cfg.MaxRingSize) / total
	}
	type point struct {
		h uint64
		e *lb.Endpoint
	}
	points := make([]point, 0, int(per*units)+len(eps))
	for _, e := range eps {
		n := max(1, int(math.Round(per*float64(max(e.Weight, 1))/minW)))
		buf := make([]byte, 0, len(e.Address)+8)
		for i := range n {
			buf = strconv.AppendInt(append(append(buf[:0], e.Address...), '_'), int64(i), 10)
			points = append(points, point{lb.HashString(string(buf)), e})
		}
	}
	slices.SortFunc(points, func(a, b point) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	b := &Balancer{hashes: make([]uint64, len(points)), owners: make([]*lb.Endpoint, len(points))}
	for i, p := range points {
		b.hashes[i], b.owners[i] = p.h, p.e
	}
	return b
}

// Size returns the number of points on the ring.
func (b *Balancer) Size() int { return len(b.hashes) }

// Pick implements lb.Balancer: the owner of the first point at or after
// h.Value, wrapping around. Without a hash (h.OK false) it picks a random
// point, which is a weighted random choice.
func (b *Balancer) Pick(_ *http.Request, h lb.Hash) *lb.Endpoint {
	v := h.Value
	if !h.OK {
		v = rand.Uint64()
	}
	i, _ := slices.BinarySearch(b.hashes, v)
	if i == len(b.hashes) {
		i = 0
	}
	return b.owners[i]
}
