package roundrobin

import (
	"sync"
	"testing"

	"github.com/weft-mesh/weft/proxy/lb"
)

func eps(weights ...uint32) []*lb.Endpoint {
	var out []*lb.Endpoint
	for i, w := range weights {
		out = append(out, &lb.Endpoint{Address: string(rune('a' + i)), Weight: w})
	}
	return out
}

func TestEvenOverThree(t *testing.T) {
	b := New(eps(1, 1, 1))
	counts := map[string]int{}
	for range 300 {
		counts[b.Pick(nil, lb.Hash{}).Address]++
	}
	for _, a := range []string{"a", "b", "c"} {
		if counts[a] != 100 {
			t.Fatalf("counts = %v, want 100 each", counts)
		}
	}
}

func TestWeighted(t *testing.T) {
	b := New(eps(5, 1, 2))
	counts := map[string]int{}
	prev, runs := "", 0
	for range 800 {
		a := b.Pick(nil, lb.Hash{}).Address
		counts[a]++
		if a == prev {
			runs++
		}
		prev = a
	}
	if counts["a"] != 500 || counts["b"] != 100 || counts["c"] != 200 {
		t.Errorf("counts = %v, want 500/100/200", counts)
	}
	if runs > 300 {
		t.Errorf("%d repeats: schedule is not interleaved", runs)
	}
}

func TestScheduleCapped(t *testing.T) {
	s := Schedule(eps(100000, 1, 99999))
	if len(s) > MaxSchedule+3 {
		t.Errorf("schedule length %d", len(s))
	}
	seen := map[uint32]bool{}
	for _, i := range s {
		seen[i] = true
	}
	if len(seen) != 3 {
		t.Errorf("endpoints in schedule: %v", seen)
	}
}

func TestEmptyAndConcurrent(t *testing.T) {
	if New(nil).Pick(nil, lb.Hash{}) != nil {
		t.Error("empty balancer picked an endpoint")
	}
	b := New(eps(1, 1))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				if b.Pick(nil, lb.Hash{}) == nil {
					t.Error("nil pick")
				}
			}
		})
	}
	wg.Wait()
}
