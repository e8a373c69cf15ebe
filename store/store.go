// Package store keeps configuration objects: revisioned, applied atomically,
// and (for the local backend) persisted across restarts. Validation happens
// before a write reaches the store; the store only guarantees that a batch
// lands whole or not at all.
package store

import (
	"context"
	"errors"
	"sort"

	"github.com/weft-mesh/weft/config"
)

// ErrNotFound is returned when a key names no stored object.
var ErrNotFound = errors.New("not found")

// ErrReadOnly is returned (wrapped, saying why) for a write to an object
// the store derives from another source, such as the ServiceEntry a
// Kubernetes Service becomes: change the source instead.
var ErrReadOnly = errors.New("read-only")

// Action says what a write did to one object.
type Action string

// Write outcomes, worded as kubectl prints them.
const (
	Created   Action = "created"
	Updated   Action = "configured"
	Unchanged Action = "unchanged"
	Deleted   Action = "deleted"
)

// Result reports the outcome of a write for one object.
type Result struct {
	Key    config.Key
	Action Action
}

// Store is the configuration store. Implementations are safe for concurrent use.
type Store interface {
	// Apply creates or replaces every object in one transaction and returns
	// what happened to each. It sets ResourceVersion, Generation (bumped
	// only when the spec, labels or annotations change) and
	// CreationTimestamp on the stored copies.
	Apply(ctx context.Context, objs []*config.Object) ([]Result, error)
	// Delete removes the objects in one transaction; a missing key fails
	// the whole call with ErrNotFound (wrapped, naming the key).
	Delete(ctx context.Context, keys []config.Key) ([]Result, error)
	// Get returns one object or ErrNotFound.
	Get(ctx context.Context, key config.Key) (*config.Object, error)
	// List returns the objects of kind (all kinds if "") in namespace (all if
	// ""), sorted by kind, namespace and name, with the store revision they
	// were read at.
	List(ctx context.Context, kind config.Kind, namespace string) ([]*config.Object, int64, error)
	// Changed returns a channel that is closed at the next successful write.
	Changed() <-chan struct{}
	// Close releases the store.
	Close() error
}

// SortObjects sorts objects the way List returns them: by kind, in the
// order of config.Kinds, then namespace, then name.
func SortObjects(objs []*config.Object) {
	sort.Slice(objs, func(i, j int) bool {
		a, b := objs[i].Key(), objs[j].Key()
		if a.Kind != b.Kind {
			return kindRank(a.Kind) < kindRank(b.Kind)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

func kindRank(k config.Kind) int {
	for i, info := range config.Kinds {
		if info.Kind == k {
			return i
		}
	}
	return len(config.Kinds)
}
