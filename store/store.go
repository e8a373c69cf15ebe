// Package store keeps configuration objects: revisioned, applied atomically,
// and (for the local backend) persisted across restarts. Validation happens
// before a write reaches the store; the store only guarantees that a batch
// lands whole or not at all.
package store

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"

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

// StatusWriter is implemented by stores that keep a status apart from an
// object's configuration, as Kubernetes' status subresource does: Apply
// never changes a stored status, and UpdateStatus changes nothing else.
// Controllers (the canary analysis) record what they observed this way.
type StatusWriter interface {
	// UpdateStatus replaces the status of the stored object key (nil
	// clears it). Spec, labels, annotations and generation stay as they
	// are; the resource version moves on. ErrNotFound (wrapped) when key
	// is gone.
	UpdateStatus(ctx context.Context, key config.Key, status proto.Message) error
}

// UpdateStatus writes status through st, which must be a StatusWriter.
func UpdateStatus(ctx context.Context, st Store, key config.Key, status proto.Message) error {
	sw, ok := st.(StatusWriter)
	if !ok {
		return fmt.Errorf("update status of %s: the store (%T) keeps no status", key, st)
	}
	return sw.UpdateStatus(ctx, key, status)
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
