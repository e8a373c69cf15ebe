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
