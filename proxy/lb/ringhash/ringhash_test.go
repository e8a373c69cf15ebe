package ringhash

import (
	"fmt"
	"math"
	"testing"

	"github.com/weft-mesh/weft/proxy/lb"
)

func hosts(n int, w uint32) []*lb.Endpoint {
	var out []*lb.Endpoint
	for i := range n {
		out = append(out, &lb.Endpoint{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w})
	}
	return out
}

func key(i int) lb.Hash { return lb.Hash{Value: lb.HashString(fmt.Sprint("user-", i)), OK: true} }

func TestSameKeySameHost(t *testing.T) {
	b := New(hosts(5, 1), Config{})
	again := New(hosts(5, 1), Config{}) // rebuilt, e.g. by a config swap
	for i := range 1000 {
		first := b.Pick(nil, key(i))
		if b.Pick(nil, key(i)) != first || again.Pick(nil, key(i)).Address != first.Address {
			t.Fatalf("key %d moved", i)
		}
	}
	if n := b.(*Balancer).Size(); n < DefaultMinRingSize {
		t.Errorf("ring size %d below the minimum", n)
	}
}

func TestAddingHostMovesAboutOneNth(t *testing.T) {
	const keys, n = 20000, 5
	before := New(hosts(n, 1), Config{})
	after := New(hosts(n+1, 1), Config{})
	moved := 0
	for i := range keys {
		a, b := before.Pick(nil, key(i)), after.Pick(nil, key(i))
		if a.Address != b.Address {
			moved++
			if b.Address != "10.0.0.6:80" {
				t.Fatalf("key %d moved from %s to %s, not to the new host", i, a.Address, b.Address)
			}
		}
	}
	// Ideal share 1/(n+1) ≈ 16.7%; allow ring imbalance.
	if share := float64(moved) / keys; share < 0.10 || share > 0.25 {
		t.Errorf("%.1f%% of keys moved, want about %.1f%%", share*100, 100.0/(n+1))
	}
}

func TestWeightHonoured(t *testing.T) {
	eps := hosts(2, 1)
	eps[0].Weight = 3
	b := New(eps, Config{})
	const keys = 20000
	counts := map[string]int{}
	for i := range keys {
		counts[b.Pick(nil, key(i)).Address]++
	}
	if share := float64(counts[eps[0].Address]) / keys; math.Abs(share-0.75) > 0.06 {
		t.Errorf("weight-3 host got %.3f of keys, want 0.75", share)
	}
	// Without a hash: weighted random.
	counts = map[string]int{}
	for range keys {
		counts[b.Pick(nil, lb.Hash{}).Address]++
	}
	if share := float64(counts[eps[0].Address]) / keys; math.Abs(share-0.75) > 0.06 {
		t.Errorf("random fallback: weight-3 host got %.3f, want 0.75", share)
	}
}

func TestRingSizeAndEmpty(t *testing.T) {
	if New(nil, Config{}).Pick(nil, key(1)) != nil {
		t.Error("empty ring picked a host")
	}
	b := New(hosts(3, 1), Config{MinRingSize: 8, MaxRingSize: 16}).(*Balancer)
	if b.Size() < 8 || b.Size() > 16 {
		t.Errorf("size %d outside [8, 16]", b.Size())
	}
	// Wrap-around: a hash past the last point goes to the first.
	if got := b.Pick(nil, lb.Hash{Value: math.MaxUint64, OK: true}); got != b.owners[0] && b.hashes[len(b.hashes)-1] != math.MaxUint64 {
		t.Errorf("wrap-around picked %v", got)
	}
}

func BenchmarkPick(b *testing.B) {
	bal := New(hosts(10, 1), Config{})
	h := key(7)
	for b.Loop() {
		bal.Pick(nil, h)
	}
}
