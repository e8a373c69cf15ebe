// Package bounded is a map that holds at most a fixed number of entries,
// dropping the oldest: a memo for results that never go stale (their keys
// are immutable values) but must not grow without end.
package bounded

import "sync"

// Map is a bounded memo, safe for concurrent use.
type Map[K comparable, V any] struct {
	mu    sync.Mutex
	max   int // total cost held at most
	cost  func(V) int
	total int
	m     map[K]V
	order []K
}

// New returns a Map holding at most max entries.
func New[K comparable, V any](max int) *Map[K, V] {
	return &Map[K, V]{max: max, cost: func(V) int { return 1 }, m: make(map[K]V, max)}
}

// NewCost returns a Map holding entries whose costs add up to at most
// max (and one entry, however costly).
func NewCost[K comparable, V any](max int, cost func(V) int) *Map[K, V] {
	return &Map[K, V]{max: max, cost: cost, m: map[K]V{}}
}

// Get returns the value for k, computing (outside the lock, so
// concurrent callers may compute it twice, harmlessly) and remembering it
// when absent. The first value remembered wins.
func (c *Map[K, V]) Get(k K, compute func() V) V {
	c.mu.Lock()
	if v, ok := c.m[k]; ok {
		c.mu.Unlock()
		return v
	}
	c.mu.Unlock()
	v := compute()
	c.mu.Lock()
	defer c.mu.Unlock()
	if have, ok := c.m[k]; ok {
		return have
	}
	cost := c.cost(v)
	for len(c.order) > 0 && c.total+cost > c.max {
		c.total -= c.cost(c.m[c.order[0]])
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[k] = v
	c.order = append(c.order, k)
	c.total += cost
	return v
}
