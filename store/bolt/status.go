package bolt

import (
	"context"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

var _ store.StatusWriter = (*Store)(nil)

// UpdateStatus replaces the status of the stored object key in its own
// transaction, leaving its configuration and generation alone. Writing the
// status it already has changes nothing (no new revision, Changed does not
// fire).
func (s *Store) UpdateStatus(ctx context.Context, key config.Key, status proto.Message) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("update status of %s: %w", key, err)
	}
	old := s.cached(key)
	if old == nil {
		return fmt.Errorf("update status of %s: %w", key, store.ErrNotFound)
	}
	if want := config.NewStatus(key.Kind); want == nil {
		return fmt.Errorf("update status of %s: a %s has no status", key, key.Kind)
	} else if status != nil && want.ProtoReflect().Descriptor() != status.ProtoReflect().Descriptor() {
		return fmt.Errorf("update status of %s: want a %T, got %T", key, want, status)
	}
	if proto.Equal(old.Status, status) {
		return nil
	}
	s.mu.RLock()
	rev := s.rev + 1
	s.mu.RUnlock()
	n := cloneObject(old)
	n.Status = nil
	if status != nil {
		n.Status = proto.Clone(status)
	}
	n.Meta.ResourceVersion = strconv.FormatInt(rev, 10)
	data, err := config.Marshal(n, "json")
	if err != nil {
		return fmt.Errorf("update status of %s: %w", key, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(key.Kind)).Put(bucketKey(key), data); err != nil {
			return fmt.Errorf("write %s: %w", key, err)
		}
		return putRevision(tx, rev)
	})
	if err != nil {
		return err
	}
	s.commit(rev, map[config.Key]*config.Object{key: n}, nil)
	return nil
}
