// Package bolt is the local, persistent store.Store: one bbolt file in the
// state directory, with every object also held in memory so reads never
// touch the disk.
//
// Layout: one bucket per kind, keyed "namespace/name", each value the object
// as config.Marshal(o, "json") writes it; a meta bucket holds the store
// revision, bumped once per write transaction that changes something.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

// lockTimeout bounds the wait for bbolt's file lock: another weft process
// holding it will not let go, so waiting forever would only hang the CLI.
const lockTimeout = 2 * time.Second

var (
	metaBucket  = []byte("_meta")
	revisionKey = []byte("revision")
)

// Store is a store.Store backed by a bbolt file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string

	// writeMu serializes writers so the cache is updated in commit order;
	// bbolt serializes write transactions itself, but not what follows them.
	writeMu sync.Mutex

	mu      sync.RWMutex // guards the fields below
	objects map[config.Key]*config.Object
	rev     int64
	changed chan struct{}

	// beforePut, when set (tests only), runs before each object is written
	// inside the transaction; an error aborts the whole batch.
	beforePut func(i int, o *config.Object) error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if needed) the store file at path and loads every
// object into memory. It fails after two seconds if another process holds
// the file.
func Open(path string) (*Store, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("state dir %s is in use by another weft process (lock on %s held for %v)", dir, path, lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{db: db, path: path, objects: map[config.Key]*config.Object{}, changed: make(chan struct{})}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// load creates the buckets on first use and fills the cache.
func (s *Store) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return fmt.Errorf("create meta bucket: %w", err)
		}
		if v := meta.Get(revisionKey); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("store %s: corrupt revision (%d bytes)", s.path, len(v))
			}
			s.rev = int64(binary.BigEndian.Uint64(v))
		}
		for _, k := range config.Kinds {
			b, err := tx.CreateBucketIfNotExists([]byte(k.Kind))
			if err != nil {
				return fmt.Errorf("create bucket %s: %w", k.Kind, err)
			}
			err = b.ForEach(func(key, val []byte) error {
				o, err := decodeOne(fmt.Sprintf("%s[%s/%s]", s.path, k.Kind, key), val)
				if err != nil {
					return err
				}
				s.objects[o.Key()] = o
				return nil
			})
			if err != nil {
				return fmt.Errorf("load %s: %w", s.path, err)
			}
		}
		return nil
	})
}

// storedMeta is the metadata the store itself sets. config.Decode treats
// these fields as server-owned and drops them, so they are read back here.
type storedMeta struct {
	Metadata struct {
		ResourceVersion   string    `json:"resourceVersion"`
		Generation        int64     `json:"generation"`
		CreationTimestamp time.Time `json:"creationTimestamp"`
	} `json:"metadata"`
}

func decodeOne(source string, data []byte) (*config.Object, error) {
	objs, err := config.Decode(source, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("%s: want one object, found %d", source, len(objs))
	}
	var m storedMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: read metadata: %w", source, err)
	}
	o := objs[0]
	if err := config.DecodeStatus(o, data); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	o.Meta.ResourceVersion = m.Metadata.ResourceVersion
	o.Meta.Generation = m.Metadata.Generation
	o.Meta.CreationTimestamp = m.Metadata.CreationTimestamp
	return o, nil
}

func bucketKey(k config.Key) []byte { return []byte(k.Namespace + "/" + k.Name) }

// Apply creates or replaces objs in one transaction. Objects equal to the
// stored ones are reported Unchanged and not written; if nothing changes the
// revision stays put and Changed does not fire.
func (s *Store) Apply(ctx context.Context, objs []*config.Object) ([]store.Result, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	results := make([]store.Result, len(objs))
	staged := map[config.Key]*config.Object{}
	s.mu.RLock()
	rev := s.rev + 1
	s.mu.RUnlock()
	now := time.Now().UTC().Truncate(time.Second) // RFC 3339 seconds, as Kubernetes writes it

	err := s.db.Update(func(tx *bolt.Tx) error {
		for i, o := range objs {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("apply aborted: %w", err)
			}
			key := o.Key()
			if info, ok := config.LookupKind(string(key.Kind)); !ok || info.Kind != key.Kind {
				return fmt.Errorf("apply %s: unknown kind", key)
			}
			if key.Name == "" || key.Namespace == "" {
				return fmt.Errorf("apply %s: name and namespace are required", key)
			}
			if _, dup := staged[key]; dup {
				return fmt.Errorf("apply %s: object appears twice in one batch", key)
			}
			results[i] = store.Result{Key: key}
			old := s.cached(key)
			n := cloneObject(o)
			n.Status = nil // status is written by UpdateStatus only
			switch {
			case old == nil:
				results[i].Action = store.Created
				n.Meta.Generation = 1
				n.Meta.CreationTimestamp = now
			case config.Equal(old, o):
				results[i].Action = store.Unchanged
				continue
			default:
				results[i].Action = store.Updated
				n.Meta.Generation = old.Meta.Generation + 1
				n.Meta.CreationTimestamp = old.Meta.CreationTimestamp
				n.Status = old.Status
			}
			n.Meta.ResourceVersion = strconv.FormatInt(rev, 10)
			if s.beforePut != nil {
				if err := s.beforePut(i, n); err != nil {
					return err
				}
			}
			data, err := config.Marshal(n, "json")
			if err != nil {
				return fmt.Errorf("encode %s: %w", key, err)
			}
			if err := tx.Bucket([]byte(key.Kind)).Put(bucketKey(key), data); err != nil {
				return fmt.Errorf("write %s: %w", key, err)
			}
			staged[key] = n
		}
		if len(staged) == 0 {
			return nil
		}
		return putRevision(tx, rev)
	})
	if err != nil {
		return nil, err
	}
	if len(staged) > 0 {
		s.commit(rev, staged, nil)
	}
	return results, nil
}

// Delete removes every key in one transaction; a missing key aborts it all.
// A key listed twice is deleted once.
func (s *Store) Delete(ctx context.Context, keys []config.Key) ([]store.Result, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	s.mu.RLock()
	rev := s.rev + 1
	s.mu.RUnlock()
	var results []store.Result
	seen := map[config.Key]bool{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("delete aborted: %w", err)
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			b := tx.Bucket([]byte(k.Kind))
			if b == nil || s.cached(k) == nil {
				return fmt.Errorf("delete %s: %w", k, store.ErrNotFound)
			}
			if err := b.Delete(bucketKey(k)); err != nil {
				return fmt.Errorf("delete %s: %w", k, err)
			}
			results = append(results, store.Result{Key: k, Action: store.Deleted})
		}
		if len(results) == 0 {
			return nil
		}
		return putRevision(tx, rev)
	})
	if err != nil {
		return nil, err
	}
	if len(results) > 0 {
		s.commit(rev, nil, seen)
	}
	return results, nil
}

func putRevision(tx *bolt.Tx, rev int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(rev))
	if err := tx.Bucket(metaBucket).Put(revisionKey, v[:]); err != nil {
		return fmt.Errorf("write revision: %w", err)
	}
	return nil
}

// commit publishes a committed transaction to readers and wakes watchers.
func (s *Store) commit(rev int64, put map[config.Key]*config.Object, deleted map[config.Key]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, o := range put {
		s.objects[k] = o
	}
	for k := range deleted {
		delete(s.objects, k)
	}
	s.rev = rev
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Store) cached(k config.Key) *config.Object {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.objects[k]
}

// Get returns the stored object for key. The result is shared: do not modify it.
func (s *Store) Get(ctx context.Context, key config.Key) (*config.Object, error) {
	if o := s.cached(key); o != nil {
		return o, nil
	}
	return nil, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
}

// List returns the objects of kind (all if "") in namespace (all if ""),
// ordered as config.Kinds lists the kinds, then by namespace and name. The
// objects are shared: do not modify them.
func (s *Store) List(ctx context.Context, kind config.Kind, namespace string) ([]*config.Object, int64, error) {
	s.mu.RLock()
	var out []*config.Object
	for k, o := range s.objects {
		if (kind == "" || k.Kind == kind) && (namespace == "" || k.Namespace == namespace) {
			out = append(out, o)
		}
	}
	rev := s.rev
	s.mu.RUnlock()
	store.SortObjects(out)
	return out, rev, nil
}

// Revision returns the current store revision (0 for a new store).
func (s *Store) Revision() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rev
}

// Changed returns a channel closed at the next successful write.
func (s *Store) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// Close releases the file lock. The Store must not be used afterwards.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// cloneObject copies o deeply enough that setting the stored metadata, or a
// caller later reusing o, cannot affect the other.
func cloneObject(o *config.Object) *config.Object {
	n := *o
	n.Meta.Labels = cloneMap(o.Meta.Labels)
	n.Meta.Annotations = cloneMap(o.Meta.Annotations)
	if o.Spec != nil {
		n.Spec = proto.Clone(o.Spec)
	}
	if o.Status != nil {
		n.Status = proto.Clone(o.Status)
	}
	return &n
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
