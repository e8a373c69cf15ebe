package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

// Two writers share a custom resource's status: the analysis
// (WriteStatus: validationMessages and observedGeneration) and a
// controller of the kind (UpdateStatus: a Canary's status as Flagger
// writes it). Each replaces only its own fields and keeps the rest, and
// both write with the resourceVersion they read, so neither clobbers the
// other: a write that raced another is refused by the API server and made
// again from what the cluster holds.

var _ store.StatusWriter = (*Store)(nil)

// UpdateStatus writes status (config.NewStatus of the key's kind, e.g. a
// Canary's) to the custom resource's status subresource: the fields the
// status message defines are replaced (a field it leaves unset is
// removed), every other field of the cluster's status
// (validationMessages) is kept. Nothing is written when that changes
// nothing. It returns once the store has read the write back, so a Get
// right after sees it, as with the local store.
func (s *Store) UpdateStatus(ctx context.Context, key config.Key, status proto.Message) error {
	want := config.NewStatus(key.Kind)
	if want == nil {
		return fmt.Errorf("update status of %s: a %s has no status", key, key.Kind)
	}
	if status != nil && want.ProtoReflect().Descriptor() != status.ProtoReflect().Descriptor() {
		return fmt.Errorf("update status of %s: want a %T, got %T", key, want, status)
	}
	k := s.kind(key.Kind)
	if k == nil {
		return fmt.Errorf("update status of %s: the cluster does not serve %s: %w", key, key.Kind, store.ErrNotFound)
	}
	if !k.status {
		return fmt.Errorf("update status of %s: %w (%s)", key, ErrNoStatusSubresource, CRDName(k.info))
	}
	fields, err := statusFields(status)
	if err != nil {
		return fmt.Errorf("update status of %s: %w", key, err)
	}
	owned := map[string]bool{}
	fds := want.ProtoReflect().Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		owned[fds.Get(i).JSONName()] = true
	}

	client := s.opts.Dynamic.Resource(k.gvr).Namespace(key.Namespace)
	cur := s.cached(key)
	rv := ""
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if cur == nil {
			u, err := client.Get(ctx, key.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return store.ErrNotFound
			}
			if err != nil {
				return err
			}
			cur = u
		}
		old, _, _ := unstructured.NestedMap(cur.Object, "status")
		next := runtime.DeepCopyJSON(old)
		if next == nil {
			next = map[string]any{}
		}
		for name := range owned {
			delete(next, name)
		}
		for name, v := range fields {
			next[name] = v
		}
		if equalJSON(old, next) || (len(old) == 0 && len(next) == 0) {
			return nil
		}
		obj := cur.DeepCopy()
		obj.Object["status"] = next
		u, err := client.UpdateStatus(ctx, obj, metav1.UpdateOptions{FieldManager: FieldManager})
		if err != nil {
			cur = nil // read it again: someone else wrote meanwhile
			return err
		}
		rv = u.GetResourceVersion()
		return nil
	})
	if err != nil {
		return fmt.Errorf("update status of %s: %w", key, err)
	}
	if rv != "" {
		s.waitSeen(ctx, map[config.Key]string{key: rv})
	}
	return nil
}

// statusFields is status as a JSON object (protojson's field names, the
// Kubernetes ones); nil status has none.
func statusFields(status proto.Message) (map[string]any, error) {
	if status == nil {
		return nil, nil
	}
	js, err := protojson.Marshal(status)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// StatusMessage is one finding about a custom resource, written to its
// status.validationMessages in the shape of Istio's analysis messages.
type StatusMessage struct {
	Level       string // ERROR, WARNING or INFO
	Code        string // type.code, e.g. WEFT0101
	Name        string // type.name, e.g. UndefinedSubset
	Description string
}

// ErrNoStatusSubresource is returned (wrapped) by WriteStatus for a kind
// whose CRD lacks the status subresource: writing status there would bump
// the object's generation, so nothing is written.
var ErrNoStatusSubresource = errors.New("the CRD has no status subresource")

// WriteStatus sets status.validationMessages of a custom resource to msgs
// and status.observedGeneration to generation (the generation the
// messages are about), keeping the rest of its status. It writes only
// when that changes what the cluster holds, and not at all for an object
// without messages that never had any. It reports whether it wrote.
func (s *Store) WriteStatus(ctx context.Context, key config.Key, generation int64, msgs []StatusMessage) (bool, error) {
	k := s.kind(key.Kind)
	u := s.cached(key)
	if k == nil || u == nil {
		return false, nil // gone: nothing to write to
	}
	cur, _, _ := unstructured.NestedMap(u.Object, "status")
	if _, had := cur["validationMessages"]; len(msgs) == 0 && !had {
		return false, nil
	}
	next := runtime.DeepCopyJSON(cur)
	if next == nil {
		next = map[string]any{}
	}
	if len(msgs) == 0 {
		delete(next, "validationMessages")
	} else {
		list := make([]any, len(msgs))
		for i, m := range msgs {
			list[i] = map[string]any{
				"level":       m.Level,
				"type":        map[string]any{"code": m.Code, "name": m.Name},
				"description": m.Description,
			}
		}
		next["validationMessages"] = list
	}
	next["observedGeneration"] = generation
	if equalJSON(cur, next) {
		return false, nil
	}
	if !k.status {
		return false, fmt.Errorf("write status of %s: %w (%s)", key, ErrNoStatusSubresource, CRDName(k.info))
	}
	obj := u.DeepCopy()
	obj.Object["status"] = next
	if _, err := s.opts.Dynamic.Resource(k.gvr).Namespace(key.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return false, fmt.Errorf("write status of %s: %w", key, err)
	}
	return true, nil
}

// equalJSON compares two JSON values as their encodings (maps encode
// sorted, and integers the same whatever their Go type).
func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
