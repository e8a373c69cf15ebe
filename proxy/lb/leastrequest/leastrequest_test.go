package leastrequest

import (
	"testing"

	"github.com/weft-mesh/weft/proxy/lb"
)

func TestAvoidsBusyEndpoint(t *testing.T) {
	eps := []*lb.Endpoint{{Address: "busy", Weight: 1}, {Address: "idle", Weight: 1}}
	for range 10 {
		eps[0].Begin()
	}
	b := New(eps)
	for range 100 {
		if got := b.Pick(nil, lb.Hash{}).Address; got != "idle" {
			t.Fatalf("picked %q, want idle", got)
		}
	}
	for range 10 {
		eps[0].End()
	}
	seen := map[string]bool{}
	for range 200 {
		seen[b.Pick(nil, lb.Hash{}).Address] = true
	}
	if len(seen) != 2 {
		t.Errorf("with equal load picked only %v", seen)
	}
}

func TestWeightedLoad(t *testing.T) {
	// 4 active on a weight-4 endpoint is less loaded than 2 on weight 1.
	eps := []*lb.Endpoint{{Address: "big", Weight: 4}, {Address: "small", Weight: 1}}
	for range 4 {
		eps[0].Begin()
	}
	eps[1].Begin()
	eps[1].Begin()
	b := New(eps)
	small := 0
	for range 1000 {
		if b.Pick(nil, lb.Hash{}).Address == "small" {
			small++ // only when both draws hit it: p = 0.2² = 4%
		}
	}
	if small > 150 {
		t.Errorf("small picked %d of 1000, want about 40", small)
	}
	if New(nil).Pick(nil, lb.Hash{}) != nil || New(eps[:1]).Pick(nil, lb.Hash{}) != eps[0] {
		t.Error("degenerate balancers")
	}
}
