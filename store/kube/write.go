package kube

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

// FieldManager names weft in the API server's managed fields.
const FieldManager = "weft"

// seenTimeout bounds how long a write waits for the informers to bring it
// back, so a List right after a write sees it (as with the local store).
const seenTimeout = 10 * time.Second

// Apply validates every object (as `weft apply` does) and checks that each
// may be written here before writing any; then it creates or updates them
// through the API server, one by one (the API server has no multi-object
// transactions: a failure part-way says how many were written), and waits
// until the store has read them back.
func (s *Store) Apply(ctx context.Context, objs []*config.Object) ([]store.Result, error) {
	kinds := make([]*crKind, len(objs))
	var errs config.ErrorList
	seen := map[config.Key]bool{}
	for i, o := range objs {
		key := o.Key()
		if key.Name == "" || key.Namespace == "" {
			return nil, fmt.Errorf("apply %s: name and namespace are required", key)
		}
		if seen[key] {
			return nil, fmt.Errorf("apply %s: the object appears twice in one apply", key)
		}
		seen[key] = true
		errs = append(errs, config.Validate(o)...)
		k, err := s.writable(key)
		if err != nil {
			return nil, err
		}
		kinds[i] = k
	}
	if len(errs) > 0 {
		return nil, errs
	}
	results := make([]store.Result, 0, len(objs))
	written := map[config.Key]string{}
	for i, o := range objs {
		action, rv, err := s.put(ctx, kinds[i], o)
		if err != nil {
			return results, fmt.Errorf("apply %s: %w (%d of %d objects were applied before it)", o.Key(), err, i, len(objs))
		}
		results = append(results, store.Result{Key: o.Key(), Action: action})
		if action != store.Unchanged {
			written[o.Key()] = rv
		}
	}
	s.waitSeen(ctx, written)
	return results, nil
}

// Delete removes custom resources through the API server once every key
// is known to exist (else store.ErrNotFound, naming the key, and nothing
// is deleted), and waits until the store has seen them go.
func (s *Store) Delete(ctx context.Context, keys []config.Key) ([]store.Result, error) {
	clients := make([]dynamic.ResourceInterface, len(keys))
	for i, key := range keys {
		k, err := s.writable(key)
		if err != nil {
			return nil, err
		}
		clients[i] = s.opts.Dynamic.Resource(k.gvr).Namespace(key.Namespace)
		if _, err := clients[i].Get(ctx, key.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete %s: %w", key, store.ErrNotFound)
		} else if err != nil {
			return nil, fmt.Errorf("delete %s: %w", key, err)
		}
	}
	results := make([]store.Result, 0, len(keys))
	gone := map[config.Key]string{}
	for i, key := range keys {
		// Deleted meanwhile by someone else is deleted all the same.
		if err := clients[i].Delete(ctx, key.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return results, fmt.Errorf("delete %s: %w (%d of %d objects were deleted before it)", key, err, i, len(keys))
		}
		results = append(results, store.Result{Key: key, Action: store.Deleted})
		gone[key] = ""
	}
	s.waitSeen(ctx, gone)
	return results, nil
}

// writable returns the installed kind of key, or why key cannot be
// written here.
func (s *Store) writable(key config.Key) (*crKind, error) {
	info, ok := config.LookupKind(string(key.Kind))
	if !ok || info.Kind != key.Kind {
		return nil, fmt.Errorf("%s: unknown kind", key)
	}
	if key.Kind == config.KindServiceEntry {
		if _, err := s.services.Services(key.Namespace).Get(key.Name); err == nil {
			return nil, fmt.Errorf("%s is Kubernetes Service %s/%s as the mesh sees it (annotation %s: %s): %w; change the Service instead, or give the ServiceEntry another name",
				key, key.Namespace, key.Name, AnnotationOrigin, OriginKubernetes, store.ErrReadOnly)
		}
	}
	k := s.kind(key.Kind)
	if k == nil {
		return nil, fmt.Errorf("%s: the cluster does not serve %s (CustomResourceDefinition %s, one of versions %s): install weft's CRDs (weft kube install)",
			key, info.Kind, CRDName(info), strings.Join(info.Versions, ", "))
	}
	if !s.InMesh(key.Namespace) {
		return nil, fmt.Errorf("%s: namespace %s is outside the mesh: its labels do not match the discovery selector %q", key, key.Namespace, s.opts.NamespaceSelector)
	}
	return k, nil
}

// put creates or updates one object, keeping what others own: status,
// finalizers, owner references and kubectl's last-applied annotation.
func (s *Store) put(ctx context.Context, k *crKind, o *config.Object) (store.Action, string, error) {
	js, err := config.Marshal(o, config.FormatJSON)
	if err != nil {
		return "", "", err
	}
	body := &unstructured.Unstructured{}
	if err := body.UnmarshalJSON(js); err != nil {
		return "", "", fmt.Errorf("encode: %w", err)
	}
	body.SetAPIVersion(k.gvr.GroupVersion().String())
	body.SetResourceVersion("")
	unstructured.RemoveNestedField(body.Object, "metadata", "generation")
	unstructured.RemoveNestedField(body.Object, "metadata", "creationTimestamp")

	client := s.opts.Dynamic.Resource(k.gvr).Namespace(o.Meta.Namespace)
	var (
		action store.Action
		rv     string
	)
	retriable := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err = retry.OnError(retry.DefaultRetry, retriable, func() error {
		cur, err := client.Get(ctx, o.Meta.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			created, err := client.Create(ctx, body, metav1.CreateOptions{FieldManager: FieldManager})
			if err != nil {
				return err
			}
			action, rv = store.Created, created.GetResourceVersion()
			return nil
		}
		if err != nil {
			return err
		}
		if same(cur, o) {
			action, rv = store.Unchanged, cur.GetResourceVersion()
			return nil
		}
		upd := cur.DeepCopy()
		upd.SetLabels(o.Meta.Labels)
		ann := maps.Clone(o.Meta.Annotations)
		if last := cur.GetAnnotations()[annotationLastApplied]; last != "" {
			if ann == nil {
				ann = map[string]string{}
			}
			ann[annotationLastApplied] = last
		}
		upd.SetAnnotations(ann)
		upd.Object["spec"] = body.Object["spec"]
		updated, err := client.Update(ctx, upd, metav1.UpdateOptions{FieldManager: FieldManager})
		if err != nil {
			return err
		}
		action, rv = store.Updated, updated.GetResourceVersion()
		return nil
	})
	return action, rv, err
}

// same reports whether the cluster's object already says what o says
// (kubectl's last-applied annotation aside).
func same(cur *unstructured.Unstructured, o *config.Object) bool {
	c := cur.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "annotations", annotationLastApplied)
	co, err := decode(c)
	return err == nil && config.Equal(co, o)
}

// waitSeen waits until the store has read each key at the resourceVersion
// given, or seen it gone ("" versions), at most seenTimeout. Not seeing a
// write in time is no failure (the write happened); it is logged.
func (s *Store) waitSeen(ctx context.Context, want map[config.Key]string) {
	if len(want) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, seenTimeout)
	defer cancel()
	for {
		s.mu.RLock()
		ch, pending := s.progress, ""
		for k, rv := range want {
			r := s.records[k]
			if (rv == "" && r != nil) || (rv != "" && (r == nil || !rvAtLeast(r.rv, rv))) {
				pending = k.String()
				break
			}
		}
		s.mu.RUnlock()
		if pending == "" {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			s.log.Warn("a write has not come back through the informers yet", "object", pending, "waited", seenTimeout)
			return
		}
	}
}

// rvAtLeast compares resourceVersions: numerically where both are numbers
// (etcd revisions, as every API server writes them), else for equality.
func rvAtLeast(have, want string) bool {
	h, err1 := strconv.ParseUint(have, 10, 64)
	w, err2 := strconv.ParseUint(want, 10, 64)
	if err1 != nil || err2 != nil {
		return have == want
	}
	return h >= w
}
