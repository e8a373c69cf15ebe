package resource

import (
	"runtime"
	"sync"
	"weak"
)

// weakTable maps keys to live values without keeping them alive: an
// entry goes when its value is collected.
type weakTable[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]weak.Pointer[V]
}

// get returns the live value for k, or make's, remembered for k.
func (t *weakTable[K, V]) get(k K, make func() *V) *V {
	t.mu.Lock()
	defer t.mu.Unlock()
	if wp, ok := t.m[k]; ok {
		if have := wp.Value(); have != nil {
			return have
		}
	}
	if t.m == nil {
		t.m = map[K]weak.Pointer[V]{}
	}
	v := make()
	wp := weak.Make(v)
	t.m[k] = wp
	runtime.AddCleanup(v, func(k K) {
		t.mu.Lock()
		if t.m[k] == wp {
			delete(t.m, k)
		}
		t.mu.Unlock()
	}, k)
	return v
}

// canon holds one live flat set per version.
var canon weakTable[string, Set]

// Canonical returns the live set with s's contents: s itself the first
// time, the same earlier set after that. Scopes that generate the same
// resources (most namespaces' clusters, for instance) then share one set,
// and with it every diff, filter and encoding made of it. Layered sets are
// returned as they are.
func Canonical(s *Set) *Set {
	if s.base != nil {
		return s
	}
	return canon.get(s.Version(), func() *Set { return s })
}
