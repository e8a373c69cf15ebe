package resource

import (
	"crypto/sha256"
	"slices"

	"github.com/weft-mesh/weft/internal/bounded"
)

// Names is an interned, immutable set of resource names: a proxy's
// subscription to endpoint sets or route tables. Proxies of one scope ask
// for the same names, so they share one Names, and questions about a
// (Set, Names) pair are answered once.
type Names struct {
	list []string // sorted, unique
	m    map[string]struct{}
}

var interned weakTable[[32]byte, Names]

// Intern returns the Names for names (any order, duplicates allowed).
func Intern(names []string) *Names {
	list := slices.Clone(names)
	slices.Sort(list)
	list = slices.Compact(list)
	h := sha256.New()
	for _, n := range list {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	var key [32]byte
	h.Sum(key[:0])
	// The entry goes when the last subscription holding the Names does.
	return interned.get(key, func() *Names {
		n := &Names{list: list, m: make(map[string]struct{}, len(list))}
		for _, s := range list {
			n.m[s] = struct{}{}
		}
		return n
	})
}

// Len returns how many names there are.
func (n *Names) Len() int { return len(n.list) }

// List returns the names, sorted. Callers must not modify it.
func (n *Names) List() []string { return n.list }

// Has reports whether name is in n.
func (n *Names) Has(name string) bool {
	_, ok := n.m[name]
	return ok
}

type setNames struct {
	s *Set
	n *Names
}

var (
	filtered = bounded.New[setNames, *Set](512)
	missing  = bounded.New[setNames, string](512)
)

// Filter returns the resources of s named in n, as a set of its own
// (s itself when n names them all).
func Filter(s *Set, n *Names) *Set {
	return filtered.Get(setNames{s, n}, func() *Set {
		var keep []*Resource
		all := true
		s.Range(func(r *Resource) bool {
			if n.Has(r.Name) {
				keep = append(keep, r)
			} else {
				all = false
			}
			return true
		})
		if all {
			return s
		}
		return NewSet(keep)
	})
}

// FirstMissing returns the first name (in order) of a resource in s that n
// does not name, or "" when n names them all.
func FirstMissing(s *Set, n *Names) string {
	return missing.Get(setNames{s, n}, func() string {
		out := ""
		s.Range(func(r *Resource) bool {
			if !n.Has(r.Name) {
				out = r.Name
				return false
			}
			return true
		})
		return out
	})
}
