package maglev

import (
	"fmt"
	"math"
	"testing"

	"github.com/weft-mesh/weft/proxy/lb"
)

func hosts(n int) []*lb.Endpoint {
	var out []*lb.Endpoint
	for i := range n {
		out = append(out, &lb.Endpoint{Address: fmt.Sprintf("10.0.1.%d:80", i+1), Weight: 1})
	}
	return out
}

func key(i int) lb.Hash { return lb.Hash{Value: lb.HashString(fmt.Sprint("k", i)), OK: true} }

func TestConsistent(t *testing.T) {
	b := New(hosts(4), 0)
	if n := len(b.(*Balancer).table); n != DefaultTableSize {
		t.Fatalf("table size %d", n)
	}
	counts := map[string]int{}
	for _, e := range b.(*Balancer).table {
		counts[e.Address]++
	}
	for a, n := range counts {
		if math.Abs(float64(n)-DefaultTableSize/4.0) > DefaultTableSize/4.0*0.02 {
			t.Errorf("%s owns %d slots, want about %d", a, n, DefaultTableSize/4)
		}
	}
	again := New(hosts(4), 0)
	more := New(hosts(5), 0)
	moved := 0
	const keys = 20000
	for i := range keys {
		p := b.Pick(nil, key(i))
		if again.Pick(nil, key(i)).Address != p.Address {
			t.Fatalf("key %d differs between identical tables", i)
		}
		if more.Pick(nil, key(i)).Address != p.Address {
			moved++
		}
	}
	if share := float64(moved) / keys; share > 0.30 {
		t.Errorf("%.1f%% of keys moved adding a 5th host, want about 20%%", share*100)
	}
}

func TestWeights(t *testing.T) {
	eps := hosts(2)
	eps[1].Weight = 3
	b := New(eps, 65537).(*Balancer)
	n := 0
	for _, e := range b.table {
		if e == eps[1] {
			n++
		}
	}
	if share := float64(n) / float64(len(b.table)); math.Abs(share-0.75) > 0.01 {
		t.Errorf("weight-3 host owns %.3f of the table, want 0.75", share)
	}
	seen := map[string]bool{}
	for range 200 {
		seen[b.Pick(nil, lb.Hash{}).Address] = true
	}
	if len(seen) != 2 || New(nil, 0).Pick(nil, key(1)) != nil {
		t.Errorf("random fallback picked %v", seen)
	}
}

func TestPrime(t *testing.T) {
	for n, want := range map[uint64]bool{0: false, 1: false, 2: true, 7: true, 9: false, 65537: true, 65536: false} {
		if Prime(n) != want {
			t.Errorf("Prime(%d) = %v", n, !want)
		}
	}
}
