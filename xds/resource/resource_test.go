package resource

import (
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

func res(t *testing.T, name, value string) *Resource {
	t.Helper()
	r, err := New(name, wrapperspb.String(value))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func names(rs []*Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}

func TestSetOrderAndVersion(t *testing.T) {
	a, b, c := res(t, "a", "1"), res(t, "b", "1"), res(t, "c", "1")
	s := NewSet([]*Resource{c, res(t, "a", "old"), b, a})
	if got := s.Names(); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Fatalf("names %v", got)
	}
	if s.Get("a").Version != a.Version {
		t.Error("a duplicate name did not take the later resource")
	}
	if s.Version() != NewSet([]*Resource{a, b, c}).Version() {
		t.Error("same contents, different versions")
	}
	if s.Version() == NewSet([]*Resource{a, b, res(t, "c", "2")}).Version() {
		t.Error("changed resource kept the set version")
	}
	if s.Get("zz") != nil || !s.Has("b") || s.Len() != 3 {
		t.Error("lookups wrong")
	}
}

func TestLayer(t *testing.T) {
	base := NewSet([]*Resource{res(t, "b", "1"), res(t, "d", "1"), res(t, "f", "1")})
	own := []*Resource{res(t, "a", "own"), res(t, "d", "own"), res(t, "g", "own")}
	l := Layer(base, own)
	if got := l.Names(); !reflect.DeepEqual(got, []string{"a", "b", "d", "f", "g"}) {
		t.Fatalf("layered names %v", got)
	}
	if l.Get("d").Version != own[1].Version {
		t.Error("own resource does not hide the base's")
	}
	if l.Len() != 5 {
		t.Errorf("layered Len %d", l.Len())
	}
	if Layer(NewSet(base.Items()), own).Version() != l.Version() {
		t.Error("the same layer over an equal base differs in version")
	}
	if Layer(base, []*Resource{res(t, "a", "own"), res(t, "d", "other")}).Version() == l.Version() {
		t.Error("a different layer kept the version")
	}
	l2 := Layer(l, []*Resource{res(t, "h", "x")})
	if got := l2.Names(); !reflect.DeepEqual(got, []string{"a", "b", "d", "f", "g", "h"}) || l2.base != base {
		t.Fatalf("layer over a layer: %v (base flattened: %v)", got, l2.base == base)
	}
	stopped := 0
	l.Range(func(*Resource) bool { stopped++; return stopped < 2 })
	if stopped != 2 {
		t.Errorf("Range did not stop: %d calls", stopped)
	}
}

func TestCompare(t *testing.T) {
	a1, b1, c1, b2, d1 := res(t, "a", "1"), res(t, "b", "1"), res(t, "c", "1"), res(t, "b", "2"), res(t, "d", "1")
	old := NewSet([]*Resource{a1, b1, c1})
	new := NewSet([]*Resource{a1, b2, d1})
	d := Compare(old, new)
	if got := names(d.Changed); !reflect.DeepEqual(got, []string{"b", "d"}) {
		t.Errorf("changed %v", got)
	}
	if !reflect.DeepEqual(d.Removed, []string{"c"}) {
		t.Errorf("removed %v", d.Removed)
	}
	if Compare(old, old).Empty() != true || !Compare(nil, nil).Empty() {
		t.Error("a set differs from itself")
	}
	if got := names(Compare(nil, new).Changed); !reflect.DeepEqual(got, []string{"a", "b", "d"}) {
		t.Errorf("from nothing: %v", got)
	}
	// Layered sets: the base diff plus the own layers.
	lo := Layer(old, []*Resource{res(t, "x", "1"), res(t, "c", "own")})
	ln := Layer(new, []*Resource{res(t, "x", "2")})
	d = Compare(lo, ln)
	if got := names(d.Changed); !reflect.DeepEqual(got, []string{"b", "d", "x"}) {
		t.Errorf("layered changed %v", got)
	}
	if !reflect.DeepEqual(d.Removed, []string{"c"}) {
		t.Errorf("layered removed %v", d.Removed)
	}
	// Stubs (names and versions a proxy reports) compare by version.
	stubs := NewSet([]*Resource{Stub("a", a1.Version), Stub("b", "stale")})
	d = Compare(stubs, NewSet([]*Resource{a1, b1}))
	if got := names(d.Changed); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("stubs: changed %v", got)
	}
}

func TestNamesAndFilter(t *testing.T) {
	n1 := Intern([]string{"b", "a", "a"})
	n2 := Intern([]string{"a", "b"})
	if n1 != n2 || n1.Len() != 2 || !n1.Has("a") || n1.Has("c") {
		t.Fatalf("interning: %v %v", n1.List(), n2.List())
	}
	s := NewSet([]*Resource{res(t, "a", "1"), res(t, "b", "1"), res(t, "c", "1")})
	f := Filter(s, n1)
	if got := f.Names(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("filtered %v", got)
	}
	if Filter(s, Intern([]string{"a", "b", "c", "d"})) != s {
		t.Error("a subscription naming every resource did not keep the set")
	}
	if got := FirstMissing(s, n1); got != "c" {
		t.Errorf("first missing %q", got)
	}
	if got := FirstMissing(f, n1); got != "" {
		t.Errorf("nothing missing, got %q", got)
	}
}

func BenchmarkCompareShared(b *testing.B) {
	var old, new []*Resource
	for i := 0; i < 9000; i++ {
		r, _ := New(fmt.Sprintf("outbound|80||svc-%d", i), wrapperspb.String("x"))
		old = append(old, r)
		if i == 17 {
			r, _ = New(r.Name, wrapperspb.String("y"))
		}
		new = append(new, r)
	}
	os, ns := NewSet(old), NewSet(new)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d := Compare(Layer(os, []*Resource{old[0]}), Layer(ns, []*Resource{old[0]})); len(d.Changed) != 1 {
			b.Fatal(d)
		}
	}
}

func TestCanonical(t *testing.T) {
	a := NewSet([]*Resource{res(t, "a", "1"), res(t, "b", "1")})
	b := NewSet([]*Resource{res(t, "b", "1"), res(t, "a", "1")})
	if Canonical(a) != a || Canonical(b) != a {
		t.Error("equal sets not made one")
	}
	c := NewSet([]*Resource{res(t, "a", "2")})
	if Canonical(c) != c {
		t.Error("a different set taken for another")
	}
	l := Layer(a, []*Resource{res(t, "z", "1")})
	if Canonical(l) != l {
		t.Error("a layered set replaced")
	}
}
