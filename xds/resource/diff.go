package resource

import (
	"sort"

	"github.com/weft-mesh/weft/internal/bounded"
)

// Diff is what turns one set into another.
type Diff struct {
	Changed []*Resource // in the new set and absent from the old or of another version, by name
	Removed []string    // in the old set only, sorted
}

// Empty reports whether nothing changed.
func (d *Diff) Empty() bool { return len(d.Changed) == 0 && len(d.Removed) == 0 }

// Compare returns what changed from old to new (either may be nil, the
// empty set). Every proxy of a scope moves between the same shared sets,
// so the comparison of two flat sets is computed once and remembered for a
// while; a layered set costs only its own layer on top.
func Compare(old, new *Set) *Diff {
	if old == nil {
		old = Empty
	}
	if new == nil {
		new = Empty
	}
	if old == new {
		return &Diff{}
	}
	bo, oo := old.split()
	bn, on := new.split()
	d := diffs.get(bo, bn)
	if len(oo) == 0 && len(on) == 0 {
		return d
	}
	touched := map[string]bool{}
	for _, r := range oo {
		touched[r.Name] = true
	}
	for _, r := range on {
		touched[r.Name] = true
	}
	out := &Diff{}
	for _, r := range d.Changed {
		if !touched[r.Name] {
			out.Changed = append(out.Changed, r)
		}
	}
	for _, n := range d.Removed {
		if !touched[n] {
			out.Removed = append(out.Removed, n)
		}
	}
	for n := range touched {
		ro, rn := old.Get(n), new.Get(n)
		switch {
		case rn != nil && (ro == nil || ro.Version != rn.Version):
			out.Changed = append(out.Changed, rn)
		case rn == nil && ro != nil:
			out.Removed = append(out.Removed, n)
		}
	}
	sort.Slice(out.Changed, func(i, j int) bool { return out.Changed[i].Name < out.Changed[j].Name })
	sort.Strings(out.Removed)
	return out
}

// compareFlat walks two flat sets in name order.
func compareFlat(old, new *Set) *Diff {
	d := &Diff{}
	a, b := old.items, new.items
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0].Name < b[0].Name:
			d.Removed = append(d.Removed, a[0].Name)
			a = a[1:]
		case len(a) == 0 || b[0].Name < a[0].Name:
			d.Changed = append(d.Changed, b[0])
			b = b[1:]
		default:
			if a[0] != b[0] && a[0].Version != b[0].Version {
				d.Changed = append(d.Changed, b[0])
			}
			a, b = a[1:], b[1:]
		}
	}
	return d
}

type setPair struct{ a, b *Set }

// diffs remembers the comparisons of recent pairs of flat sets. Sets are
// immutable, so a result never goes stale; the bound only limits memory.
type diffCache struct{ c *bounded.Map[setPair, *Diff] }

func (d diffCache) get(old, new *Set) *Diff {
	return d.c.Get(setPair{old, new}, func() *Diff { return compareFlat(old, new) })
}

var diffs = diffCache{bounded.New[setPair, *Diff](256)}
