// Package resource holds generated xDS resources in the form the ADS
// server sends them: each encoded once, with a version that is a hash of
// that encoding, gathered into immutable, name-sorted sets that many
// proxies share. A push to two thousand proxies then marshals each
// cluster, assignment and route table once, and comparing what a proxy
// holds with what it should hold is comparing versions, not messages.
package resource

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Resource is one named resource and its deterministic encoding. It is
// immutable once made.
type Resource struct {
	Name    string
	Version string // hex of the first 8 bytes of SHA-256 over Bytes
	Bytes   []byte // deterministic protobuf encoding of Message
	msg     proto.Message
	typ     protoreflect.MessageType // to decode Bytes when msg was dropped
}

var marshal = proto.MarshalOptions{Deterministic: true}

// New encodes m under name.
func New(name string, m proto.Message) (*Resource, error) {
	b, err := marshal.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", name, err)
	}
	return &Resource{Name: name, Version: hash(b), Bytes: b, msg: m, typ: m.ProtoReflect().Type()}, nil
}

// Compact returns the resource without its message, which Message decodes
// from the encoding when asked: a control plane holding thousands of
// shared resources keeps their bytes, not their object graphs.
func (r *Resource) Compact() *Resource {
	if r.msg == nil {
		return r
	}
	c := *r
	c.msg = nil
	return &c
}

// Stub is a resource known by name and version only: what a proxy says it
// holds when it reconnects (delta xDS initial_resource_versions).
func Stub(name, version string) *Resource { return &Resource{Name: name, Version: version} }

// Message returns the decoded resource (nil for a Stub): the one it was
// made from, or for a compact resource a fresh decoding. Callers must not
// modify it.
func (r *Resource) Message() proto.Message {
	if r.msg != nil || r.typ == nil {
		return r.msg
	}
	m := r.typ.New().Interface()
	if err := proto.Unmarshal(r.Bytes, m); err != nil {
		return nil // unreachable: the bytes are m's own marshalling
	}
	return m
}

func hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Set is an immutable collection of resources of one type, sorted by name,
// names unique. A Set may be layered: a shared base plus a few resources
// of one proxy's own (whose names win over the base's).
type Set struct {
	items []*Resource // sorted by name
	base  *Set        // nil for a flat set

	once    sync.Once
	version string
	n       int
}

// Empty is the set of nothing.
var Empty = NewSet(nil)

// NewSet returns a flat set of items; on duplicate names the last wins.
func NewSet(items []*Resource) *Set {
	out := append([]*Resource(nil), items...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	w := 0
	for i, r := range out {
		if w > 0 && out[w-1].Name == r.Name {
			out[w-1] = r
			continue
		}
		out[w] = out[i]
		w++
	}
	return &Set{items: out[:w]}
}

// Layer returns base with own laid over it: own's names replace the base's
// entries of the same name. base is shared, not copied, so a proxy's set
// costs the size of own. A set has at most one layer: layering a layered
// base lays both owns over the base's base.
func Layer(base *Set, own []*Resource) *Set {
	if len(own) == 0 && base != nil {
		return base
	}
	if base != nil && base.base != nil {
		own = append(append([]*Resource(nil), base.items...), own...)
		base = base.base
	}
	s := NewSet(own)
	if base != nil && base.Len() > 0 {
		s.base = base
	}
	return s
}

// split returns a set's flat base and its own layer (nil for a flat set).
func (s *Set) split() (base *Set, own []*Resource) {
	if s.base == nil {
		return s, nil
	}
	return s.base, s.items
}

// Layers returns a layered set's shared base and its own layer; a flat
// set is its own base, with no layer.
func (s *Set) Layers() (base *Set, own []*Resource) { return s.split() }

// Len returns how many resources the set holds.
func (s *Set) Len() int {
	s.summary()
	return s.n
}

// Version identifies the set's contents: two flat sets with the same names
// and resource versions have the same Version, and so do two layers with
// the same own resources over bases of the same Version. A layer costs
// the size of its own part to version, whatever its base's size.
func (s *Set) Version() string {
	s.summary()
	return s.version
}

func (s *Set) summary() {
	s.once.Do(func() {
		h := sha256.New()
		var lb [8]byte
		put := func(r *Resource) {
			binary.LittleEndian.PutUint64(lb[:], uint64(len(r.Name)))
			h.Write(lb[:])
			h.Write([]byte(r.Name))
			h.Write([]byte(r.Version))
		}
		if s.base == nil {
			for _, r := range s.items {
				put(r)
			}
			s.n = len(s.items)
		} else {
			h.Write([]byte("layer over "))
			h.Write([]byte(s.base.Version()))
			s.n = s.base.Len()
			for _, r := range s.items {
				put(r)
				if !s.base.Has(r.Name) {
					s.n++
				}
			}
		}
		s.version = hex.EncodeToString(h.Sum(nil)[:8])
	})
}

// Get returns the resource named name, or nil.
func (s *Set) Get(name string) *Resource {
	for l := s; l != nil; l = l.base {
		i := sort.Search(len(l.items), func(i int) bool { return l.items[i].Name >= name })
		if i < len(l.items) && l.items[i].Name == name {
			return l.items[i]
		}
	}
	return nil
}

// Has reports whether the set holds a resource named name.
func (s *Set) Has(name string) bool { return s.Get(name) != nil }

// Range calls f for every resource in name order until f returns false.
func (s *Set) Range(f func(*Resource) bool) {
	if s.base == nil {
		for _, r := range s.items {
			if !f(r) {
				return
			}
		}
		return
	}
	// Merge the layer with its base; a layer's name hides the base's.
	own := s.items
	stop := false
	s.base.Range(func(b *Resource) bool {
		for len(own) > 0 && own[0].Name < b.Name {
			if !f(own[0]) {
				stop = true
				return false
			}
			own = own[1:]
		}
		if len(own) > 0 && own[0].Name == b.Name {
			return true // hidden; emitted when own reaches it
		}
		if !f(b) {
			stop = true
			return false
		}
		return true
	})
	if stop {
		return
	}
	for _, r := range own {
		if !f(r) {
			return
		}
	}
}

// Items returns the resources in name order (a new slice).
func (s *Set) Items() []*Resource {
	out := make([]*Resource, 0, s.Len())
	s.Range(func(r *Resource) bool { out = append(out, r); return true })
	return out
}

// Names returns the resource names in order (a new slice).
func (s *Set) Names() []string {
	out := make([]string, 0, s.Len())
	s.Range(func(r *Resource) bool { out = append(out, r.Name); return true })
	return out
}
