package bounded

import "testing"

func TestMapBoundsAndRemembers(t *testing.T) {
	m := New[int, int](2)
	calls := 0
	sq := func(k int) func() int { return func() int { calls++; return k * k } }
	if m.Get(3, sq(3)) != 9 || m.Get(3, sq(3)) != 9 || calls != 1 {
		t.Fatalf("not remembered: %d computations", calls)
	}
	m.Get(4, sq(4))
	m.Get(5, sq(5)) // drops 3, the oldest
	if m.Get(4, sq(4)) != 16 || calls != 3 {
		t.Errorf("4 recomputed: %d computations", calls)
	}
	if m.Get(3, sq(3)) != 9 || calls != 4 {
		t.Errorf("3 not dropped: %d computations", calls)
	}
	if len(m.m) > 2 {
		t.Errorf("%d entries held, max 2", len(m.m))
	}
}

func TestMapBoundsCost(t *testing.T) {
	m := NewCost[string, []int](10, func(v []int) int { return len(v) })
	m.Get("a", func() []int { return make([]int, 6) })
	m.Get("b", func() []int { return make([]int, 4) })
	m.Get("c", func() []int { return make([]int, 3) }) // 13 > 10: a goes
	if _, ok := m.m["a"]; ok || m.total != 7 {
		t.Errorf("after c: a held %v, total %d", ok, m.total)
	}
	m.Get("huge", func() []int { return make([]int, 50) }) // alone over the bound: held alone
	if len(m.m) != 1 || m.total != 50 {
		t.Errorf("after huge: %d entries, total %d", len(m.m), m.total)
	}
}
