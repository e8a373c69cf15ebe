package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/weft-mesh/weft/config"
)

// crdGVR is where CustomResourceDefinitions live.
var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crKind is one config kind whose CRD is installed, and its informer.
type crKind struct {
	info config.KindInfo
	gvr  schema.GroupVersionResource
	// status: the CRD serves the status subresource, so status writes
	// neither touch the spec nor bump the generation.
	status   bool
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
}

// CRDName is the name of the CustomResourceDefinition of a kind, e.g.
// virtualservices.networking.istio.io.
func CRDName(k config.KindInfo) string { return k.Plural + "." + k.Group }

// kindOfCRD finds the config kind a CRD defines.
func kindOfCRD(name string) (config.KindInfo, bool) {
	for _, k := range config.Kinds {
		if CRDName(k) == name {
			return k, true
		}
	}
	return config.KindInfo{}, false
}

// watchCRDs returns the informer of the cluster's CRDs: a kind's custom
// resources are read from when its CRD is established, so the control
// plane may start before `weft kube install` and picks them up after.
func (s *Store) watchCRDs() cache.SharedIndexInformer {
	inf := dynamicinformer.NewFilteredDynamicInformer(s.opts.Dynamic, crdGVR, "", 0, cache.Indexers{}, nil).Informer()
	_ = inf.SetTransform(stripUnstructured)
	_, _ = inf.AddEventHandler(s.handler(func(obj any) {
		if m, err := metaOf(obj); err == nil {
			if _, ok := kindOfCRD(m.GetName()); ok {
				s.queue.Add(item{what: whatCRD, name: m.GetName()})
			}
		}
	}, nil))
	return inf
}

func crdName(obj any) string {
	if m, err := metaOf(obj); err == nil {
		return m.GetName()
	}
	return ""
}

// servedVersion returns the first of the kind's versions (weft's preferred
// order) that an established CRD serves, and whether that version has the
// status subresource; "" when the CRD is not usable (yet).
func servedVersion(info config.KindInfo, crd *unstructured.Unstructured) (version string, status bool) {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	established := false
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			established = true
		}
	}
	if !established {
		return "", false
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, want := range info.Versions {
		for _, v := range versions {
			m, ok := v.(map[string]any)
			if !ok || m["name"] != want || m["served"] != true {
				continue
			}
			_, hasStatus, _ := unstructured.NestedMap(m, "subresources", "status")
			return want, hasStatus
		}
	}
	return "", false
}

// reconcileCRD starts, restarts or stops the informer of the kind a CRD
// defines so it reads the version the CRD serves, and returns the kind
// (nil when it is not served).
func (s *Store) reconcileCRD(ctx context.Context, name string) *crKind {
	info, ok := kindOfCRD(name)
	if !ok {
		return nil
	}
	var version string
	var status bool
	if obj, exists, _ := s.crds.GetStore().GetByKey(name); exists {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			version, status = servedVersion(info, u)
		}
	}
	s.kindMu.Lock()
	defer s.kindMu.Unlock()
	cur := s.kinds[info.Kind]
	gvr := schema.GroupVersionResource{Group: info.Group, Version: version, Resource: info.Plural}
	if cur != nil && version != "" && cur.gvr == gvr {
		cur.status = status
		return cur
	}
	if cur != nil {
		cur.cancel()
		delete(s.kinds, info.Kind)
		s.dropKind(info.Kind)
		s.log.Info("stopped reading a kind: its CRD is gone or changed", "crd", name)
	}
	if version == "" {
		return nil
	}
	k := &crKind{info: info, gvr: gvr, status: status}
	k.informer = dynamicinformer.NewFilteredDynamicInformer(s.opts.Dynamic, gvr, "", 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil).Informer()
	_ = k.informer.SetTransform(stripUnstructured)
	_, _ = k.informer.AddEventHandler(s.handler(func(obj any) { s.enqueueObject(string(info.Kind), obj) }, nil))
	kctx, cancel := context.WithCancel(ctx)
	k.cancel = cancel
	go k.informer.RunWithContext(kctx)
	s.kinds[info.Kind] = k
	s.log.Info("reading custom resources", "kind", info.Kind, "version", gvr.GroupVersion().String())
	return k
}

// dropKind forgets every object of a kind whose informer stopped.
func (s *Store) dropKind(kind config.Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.records {
		if k.Kind == kind {
			delete(s.records, k)
			s.changedLocked()
		}
	}
	s.progressLocked()
}

// kind returns the installed kind, or nil.
func (s *Store) kind(kind config.Kind) *crKind {
	s.kindMu.Lock()
	defer s.kindMu.Unlock()
	return s.kinds[kind]
}

// cached returns a custom resource from its informer, or nil.
func (s *Store) cached(key config.Key) *unstructured.Unstructured {
	k := s.kind(key.Kind)
	if k == nil {
		return nil
	}
	obj, exists, err := k.informer.GetIndexer().GetByKey(key.Namespace + "/" + key.Name)
	if err != nil || !exists {
		return nil
	}
	u, _ := obj.(*unstructured.Unstructured)
	return u
}

// reconcileCR brings the store's record of one custom resource up to date
// with the cluster: decoded and validated once per resourceVersion; an
// invalid version keeps the last valid one in force and is reported.
func (s *Store) reconcileCR(kind config.Kind, ns, name string) {
	key := config.Key{Kind: kind, Namespace: ns, Name: name}
	u := s.cached(key)
	if u == nil || !s.InMesh(ns) {
		s.mu.Lock()
		if s.records[key] != nil {
			delete(s.records, key)
			s.changedLocked()
		}
		s.progressLocked()
		s.mu.Unlock()
		return
	}
	status, _, _ := unstructured.NestedMap(u.Object, "status")
	rec := &crRecord{uid: string(u.GetUID()), rv: u.GetResourceVersion(), generation: u.GetGeneration(), status: status}

	s.mu.RLock()
	prev := s.records[key]
	rec.shadowed = kind == config.KindServiceEntry && s.synth[key] != nil
	s.mu.RUnlock()

	switch {
	case prev != nil && prev.uid == rec.uid && prev.rv == rec.rv:
		rec.obj, rec.err = prev.obj, prev.err
	default:
		o, err := decode(u)
		if err != nil {
			rec.err = err
			if prev != nil && prev.uid == rec.uid {
				rec.obj = prev.obj // the last valid version stays in force
			}
			s.log.Warn("custom resource refused; its last valid version (if any) stays in force", "object", key.String(), "generation", rec.generation, "err", err)
		} else {
			s.decodeStatus(o, u)
			rec.obj = o
		}
	}

	s.mu.Lock()
	if prev == nil || !sameInForce(prev, rec) || errText(prev.err) != errText(rec.err) || prev.shadowed != rec.shadowed {
		s.changedLocked()
	}
	s.records[key] = rec
	s.progressLocked()
	s.mu.Unlock()
}

// sameInForce reports whether two records put the same object in force.
func sameInForce(a, b *crRecord) bool {
	if a.obj == nil || b.obj == nil {
		return a.obj == b.obj
	}
	return a.obj.Meta.Generation == b.obj.Meta.Generation && config.Equal(a.obj, b.obj)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// decode reads a custom resource with config's decoder and validation
// (the `weft apply` path) and keeps the server-set metadata.
func decode(u *unstructured.Unstructured) (*config.Object, error) {
	js, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	o, err := config.DecodeObject("", js)
	if err != nil {
		return nil, err
	}
	o.Meta.ResourceVersion = u.GetResourceVersion()
	o.Meta.Generation = u.GetGeneration()
	o.Meta.CreationTimestamp = u.GetCreationTimestamp().Time
	return o, nil
}

// decodeStatus reads the status of the kinds that keep one (a Canary's)
// into o.Status, as the local store does. The status is a controller's,
// not the user's: one that cannot be read (edited by hand) is left out
// and logged, the object stays in force, and its controller writes a
// new one.
func (s *Store) decodeStatus(o *config.Object, u *unstructured.Unstructured) {
	if config.NewStatus(o.Kind) == nil {
		return
	}
	st, ok := u.Object["status"]
	if !ok {
		return
	}
	js, err := json.Marshal(map[string]any{"status": st})
	if err == nil {
		err = config.DecodeStatus(o, js)
	}
	if err != nil {
		o.Status = nil
		s.log.Warn("status left out: it cannot be read", "object", o.Key().String(), "err", err)
	}
}

// progressLocked wakes writers waiting to see their write; s.mu must be
// held for writing.
func (s *Store) progressLocked() {
	close(s.progress)
	s.progress = make(chan struct{})
}

// Resource is one custom resource as the store last read it.
type Resource struct {
	Key config.Key
	// Generation of the version read (metadata.generation).
	Generation int64
	// Refused says why that version is not in force: decoding or
	// validation failed (its last valid version, if any, stays in force),
	// or Shadowed. nil when it is in force.
	Refused error
	// Shadowed: a Kubernetes Service of the same namespace and name
	// defines this ServiceEntry (the synthesized one wins).
	Shadowed bool
}

// ErrShadowed is the Refused error of a shadowed ServiceEntry (wrapped,
// naming the Service).
var ErrShadowed = errors.New("a Kubernetes Service of the same name defines this ServiceEntry")

// Resources lists every custom resource the store has read, sorted by key.
func (s *Store) Resources() []Resource {
	s.mu.RLock()
	out := make([]Resource, 0, len(s.records))
	for k, r := range s.records {
		res := Resource{Key: k, Generation: r.generation, Refused: r.err, Shadowed: r.shadowed}
		if r.shadowed {
			res.Refused = fmt.Errorf("%w: Kubernetes Service %s/%s is ServiceEntry %s/%s to the mesh, so this custom one is ignored; rename it",
				ErrShadowed, k.Namespace, k.Name, k.Namespace, k.Name)
		}
		out = append(out, res)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out
}
