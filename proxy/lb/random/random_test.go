package random

import (
	"math"
	"testing"

	"github.com/weft-mesh/weft/proxy/lb"
)

func TestWeightedDistribution(t *testing.T) {
	b := New([]*lb.Endpoint{{Address: "a", Weight: 3}, {Address: "b", Weight: 1}})
	const n = 4000
	counts := map[string]int{}
	for range n {
		counts[b.Pick(nil, lb.Hash{}).Address]++
	}
	sigma := math.Sqrt(n * 0.75 * 0.25)
	if d := math.Abs(float64(counts["a"]) - n*0.75); d > 5*sigma {
		t.Errorf("counts = %v, want a ≈ %v", counts, n*0.75)
	}
}

func TestUniformAndEmpty(t *testing.T) {
	if New(nil).Pick(nil, lb.Hash{}) != nil {
		t.Error("empty balancer picked an endpoint")
	}
	b := New([]*lb.Endpoint{{Address: "a", Weight: 1}, {Address: "b", Weight: 1}})
	seen := map[string]bool{}
	for range 200 {
		seen[b.Pick(nil, lb.Hash{}).Address] = true
	}
	if len(seen) != 2 {
		t.Errorf("picked %v", seen)
	}
}
