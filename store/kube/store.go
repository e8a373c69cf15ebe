// Package kube is the store.Store of Kubernetes mode: it reads the cluster
// through client-go informers instead of a local file, so the control
// plane's model, analysis, translation and xDS serving are the same code
// in both modes.
//
// What List returns:
//   - Istio's (and weft's, Maistra's) custom resources, one dynamic
//     informer per kind of config.Kinds, each decoded and validated by
//     package config exactly as `weft apply` does. An object that fails
//     (the validating webhook was bypassed) is left out, its last valid
//     version kept, and reported (Refused);
//   - a ServiceEntry per Kubernetes Service, synthesized from the Service,
//     its EndpointSlices, their Pods and Nodes (see serviceEntry), marked
//     with annotation weft.io/origin: kubernetes and not writable here.
//
// Writes (Apply, Delete, WriteStatus) go to the API server through the
// dynamic client; the informers bring them back. Events are reconciled
// level-triggered from a work queue by one worker, and bursts of changes
// close Changed() once.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

// Options configures a Store.
type Options struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Log receives refusals and informer trouble; nil discards.
	Log *slog.Logger
	// NamespaceSelector, when set, limits the mesh to the namespaces whose
	// labels it matches, as Istio's discoverySelectors do: Services and
	// custom resources elsewhere are not seen, and writes there are
	// refused. The namespaces of AlwaysNamespaces are always in. nil: all.
	NamespaceSelector labels.Selector
	// AlwaysNamespaces are in the mesh whatever the selector says (the
	// control plane's own namespace, which holds mesh-wide policy).
	AlwaysNamespaces []string
	// SyncTimeout bounds New's wait for the first full read of the
	// cluster; default one minute.
	SyncTimeout time.Duration
}

// Changes reach Changed() once the queue is drained, but no later than
// this after the first change of a burst, so a steady stream of events
// cannot hold configuration back.
const flushAfter = 100 * time.Millisecond

// Store is a store.Store over a Kubernetes cluster. It is safe for
// concurrent use.
type Store struct {
	opts Options
	log  *slog.Logger

	services   corelisters.ServiceLister
	slices     cache.Indexer // EndpointSlices, indexed by service, pod and node
	pods       corelisters.PodLister
	nodes      corelisters.NodeLister
	namespaces corelisters.NamespaceLister // only with a NamespaceSelector
	crds       cache.SharedIndexInformer

	queue workqueue.TypedRateLimitingInterface[item]

	kindMu sync.Mutex
	kinds  map[config.Kind]*crKind // kinds whose CRD is installed

	mu         sync.RWMutex // guards the fields below
	synth      map[config.Key]*config.Object
	records    map[config.Key]*crRecord
	rev        int64
	changed    chan struct{}
	dirtySince time.Time     // first change not yet announced; zero: none
	progress   chan struct{} // closed (and replaced) whenever a custom resource is reconciled

	cancel context.CancelFunc
	done   chan struct{}
}

var _ store.Store = (*Store)(nil)

// item is one unit of reconciliation: a Service, a CRD, or a custom
// resource of a config kind.
type item struct {
	what     string // whatService, whatCRD or a config.Kind
	ns, name string
}

const (
	whatService = "Service"                  // a Kubernetes Service: its synthesized ServiceEntry
	whatCRD     = "CustomResourceDefinition" // name is the CRD's name, plural.group
)

// crRecord is what the store knows of one custom resource.
type crRecord struct {
	uid, rv    string
	generation int64
	// obj is the last valid version (nil if none was valid); err says why
	// the current version is refused (nil: obj is the current version).
	obj *config.Object
	err error
	// shadowed: a Kubernetes Service of the same namespace and name
	// defines this ServiceEntry's key, and wins.
	shadowed bool
	status   map[string]any
}

// Slice indexes.
const (
	byService = "service" // NS/NAME of the slice's Service
	byPod     = "pod"     // NS/NAME of each endpoint's pod
	byNode    = "node"    // node name of each endpoint
)

// New starts the informers, waits until they have read the cluster (at
// most SyncTimeout, or until ctx ends) and reconciled it, and returns a
// store whose first List is the whole mesh. The informers run until Close.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Kube == nil || o.Dynamic == nil {
		return nil, errors.New("store/kube: Kube and Dynamic clients are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = time.Minute
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &Store{
		opts: o, log: o.Log, kinds: map[config.Kind]*crKind{},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[item](),
			workqueue.TypedRateLimitingQueueConfig[item]{Name: "weft-store"}),
		synth: map[config.Key]*config.Object{}, records: map[config.Key]*crRecord{},
		changed: make(chan struct{}), progress: make(chan struct{}), cancel: cancel, done: make(chan struct{}),
	}
	factory := informers.NewSharedInformerFactory(o.Kube, 0)
	synced, err := s.watchCore(factory)
	if err != nil {
		cancel()
		return nil, err
	}
	s.crds = s.watchCRDs()
	synced["CustomResourceDefinitions"] = s.crds.HasSynced
	factory.Start(runCtx.Done())
	go s.crds.RunWithContext(runCtx)

	startCtx, stop := context.WithTimeout(ctx, o.SyncTimeout)
	defer stop()
	fail := func(err error) (*Store, error) {
		cancel()
		s.queue.ShutDown()
		factory.Shutdown()
		return nil, err
	}
	if err := waitSynced(startCtx, synced); err != nil {
		return fail(err)
	}
	// Start the informers of the kinds whose CRDs exist, and read them
	// too, so the first List holds every object.
	crSynced := map[string]cache.InformerSynced{}
	for _, obj := range s.crds.GetStore().List() {
		if k := s.reconcileCRD(runCtx, crdName(obj)); k != nil {
			crSynced[CRDName(k.info)] = k.informer.HasSynced
		}
	}
	if err := waitSynced(startCtx, crSynced); err != nil {
		return fail(err)
	}
	for s.queue.Len() > 0 {
		s.processNext(runCtx)
	}
	s.flush()
	go s.run(runCtx)
	return s, nil
}

// waitSynced waits until every informer has read its kind, or names those
// that have not when ctx ends (typically: the control plane may not list
// them; see its RBAC).
func waitSynced(ctx context.Context, synced map[string]cache.InformerSynced) error {
	fns := make([]cache.InformerSynced, 0, len(synced))
	for _, f := range synced {
		fns = append(fns, f)
	}
	if cache.WaitForCacheSync(ctx.Done(), fns...) {
		return nil
	}
	var missing []string
	for what, f := range synced {
		if !f() {
			missing = append(missing, what)
		}
	}
	sort.Strings(missing)
	return fmt.Errorf("store/kube: could not read %s from the cluster (can the control plane list and watch them?): %w",
		strings.Join(missing, ", "), context.Cause(ctx))
}

// watchCore sets up the informers of Kubernetes' own kinds and returns
// their HasSynced functions by what they read.
func (s *Store) watchCore(f informers.SharedInformerFactory) (map[string]cache.InformerSynced, error) {
	svc := f.Core().V1().Services()
	slices := f.Discovery().V1().EndpointSlices()
	pods := f.Core().V1().Pods()
	nodes := f.Core().V1().Nodes()
	s.services, s.pods, s.nodes = svc.Lister(), pods.Lister(), nodes.Lister()
	s.slices = slices.Informer().GetIndexer()

	// Keep only what synthesis reads: with thousands of pods, the
	// informers' copies are most of the control plane's memory.
	for inf, strip := range map[cache.SharedIndexInformer]cache.TransformFunc{
		svc.Informer(): stripManagedFields, slices.Informer(): stripManagedFields,
		pods.Informer(): stripPod, nodes.Informer(): stripNode,
	} {
		if err := inf.SetTransform(strip); err != nil {
			return nil, fmt.Errorf("store/kube: informer transform: %w", err)
		}
	}
	if err := slices.Informer().AddIndexers(cache.Indexers{byService: sliceService, byPod: slicePods, byNode: sliceNodes}); err != nil {
		return nil, fmt.Errorf("store/kube: slice indexes: %w", err)
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{svc.Informer(), s.handler(func(obj any) { s.enqueueObject(whatService, obj) }, nil)},
		{slices.Informer(), s.handler(s.enqueueSliceService, nil)},
		{pods.Informer(), s.handler(s.enqueuePodServices, podChanged)},
		{nodes.Informer(), s.handler(s.enqueueNodeServices, nodeChanged)},
	}
	synced := map[string]cache.InformerSynced{"Services": svc.Informer().HasSynced, "EndpointSlices": slices.Informer().HasSynced,
		"Pods": pods.Informer().HasSynced, "Nodes": nodes.Informer().HasSynced}
	if s.opts.NamespaceSelector != nil {
		ns := f.Core().V1().Namespaces()
		s.namespaces = ns.Lister()
		handlers = append(handlers, struct {
			inf cache.SharedIndexInformer
			h   cache.ResourceEventHandler
		}{ns.Informer(), s.handler(s.enqueueNamespace, namespaceChanged)})
		synced["Namespaces"] = ns.Informer().HasSynced
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return nil, fmt.Errorf("store/kube: event handler: %w", err)
		}
	}
	return synced, nil
}

// handler calls enqueue with the object of every add and delete, and with
// both objects of an update when relevant(old, new) says it matters (nil:
// always).
func (s *Store) handler(enqueue func(obj any), relevant func(old, new any) bool) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(old, new any) {
			if relevant == nil || relevant(old, new) {
				enqueue(old)
				enqueue(new)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			enqueue(obj)
		},
	}
}

func (s *Store) enqueueObject(what string, obj any) {
	if m, err := metaOf(obj); err == nil {
		s.queue.Add(item{what, m.GetNamespace(), m.GetName()})
	}
}

func (s *Store) enqueueSliceService(obj any) {
	for _, key := range mustIndex(sliceService(obj)) {
		ns, name, _ := cache.SplitMetaNamespaceKey(key)
		s.queue.Add(item{whatService, ns, name})
	}
}

// enqueueByIndex queues the Services of the slices that index under key.
func (s *Store) enqueueByIndex(index, key string) {
	objs, err := s.slices.ByIndex(index, key)
	if err != nil {
		s.log.Error("slice index", "index", index, "err", err)
		return
	}
	for _, o := range objs {
		s.enqueueSliceService(o)
	}
}

func (s *Store) enqueuePodServices(obj any) {
	if m, err := metaOf(obj); err == nil {
		s.enqueueByIndex(byPod, m.GetNamespace()+"/"+m.GetName())
	}
}

func (s *Store) enqueueNodeServices(obj any) {
	if m, err := metaOf(obj); err == nil {
		s.enqueueByIndex(byNode, m.GetName())
	}
}

// enqueueNamespace reconsiders everything in a namespace whose labels (and
// so its place under the NamespaceSelector) changed.
func (s *Store) enqueueNamespace(obj any) {
	m, err := metaOf(obj)
	if err != nil {
		return
	}
	ns := m.GetName()
	svcs, _ := s.services.Services(ns).List(labels.Everything())
	for _, svc := range svcs {
		s.queue.Add(item{whatService, ns, svc.Name})
	}
	s.kindMu.Lock()
	defer s.kindMu.Unlock()
	for kind, k := range s.kinds {
		objs, _ := k.informer.GetIndexer().ByIndex(cache.NamespaceIndex, ns)
		for _, o := range objs {
			if m, err := metaOf(o); err == nil {
				s.queue.Add(item{string(kind), ns, m.GetName()})
			}
		}
	}
}

// run is the worker: one reconciliation at a time, in queue order.
func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	for s.processNext(ctx) {
	}
}

// processNext reconciles one item and announces the changes made so far
// when the queue is drained or the oldest has waited flushAfter. It
// returns false once the queue is shut down.
func (s *Store) processNext(ctx context.Context) bool {
	it, quit := s.queue.Get()
	if quit {
		return false
	}
	err := s.reconcile(ctx, it)
	s.queue.Done(it)
	if err != nil {
		s.log.Warn("reconcile failed; retrying", "what", it.what, "namespace", it.ns, "name", it.name, "err", err)
		s.queue.AddRateLimited(it)
	} else {
		s.queue.Forget(it)
	}
	s.mu.RLock()
	due := !s.dirtySince.IsZero() && (s.queue.Len() == 0 || time.Since(s.dirtySince) >= flushAfter)
	s.mu.RUnlock()
	if due {
		s.flush()
	}
	return true
}

func (s *Store) reconcile(ctx context.Context, it item) error {
	switch it.what {
	case whatService:
		s.reconcileService(it.ns, it.name)
		return nil
	case whatCRD:
		s.reconcileCRD(ctx, it.name)
		return nil
	}
	s.reconcileCR(config.Kind(it.what), it.ns, it.name)
	return nil
}

// reconcileService makes the synthesized ServiceEntry of one Service
// match the cluster.
func (s *Store) reconcileService(ns, name string) {
	key := config.Key{Kind: config.KindServiceEntry, Namespace: ns, Name: name}
	svc, err := s.services.Services(ns).Get(name)
	var o *config.Object
	if err == nil && s.InMesh(ns) {
		objs, _ := s.slices.ByIndex(byService, ns+"/"+name)
		slices := make([]*discoveryv1.EndpointSlice, 0, len(objs))
		for _, obj := range objs {
			slices = append(slices, obj.(*discoveryv1.EndpointSlice))
		}
		o = serviceEntry(svc, slices, lookups{pod: s.pod, node: s.node})
		if errs := config.Validate(o); len(errs) > 0 {
			// A Service the API server accepted that a ServiceEntry cannot
			// say; it would break the model, so it stays out, loudly.
			s.log.Error("Kubernetes Service left out of the mesh: its ServiceEntry is invalid", "service", ns+"/"+name, "err", errs)
			o = nil
		}
	}
	s.mu.Lock()
	old := s.synth[key]
	switch {
	case o == nil && old == nil:
	case o == nil:
		delete(s.synth, key)
		s.changedLocked()
	case old == nil || !config.Equal(old, o):
		o.Meta.Generation = 1
		if old != nil {
			o.Meta.Generation = old.Meta.Generation + 1
		}
		s.changedLocked()
		o.Meta.ResourceVersion = strconv.FormatInt(s.rev, 10)
		s.synth[key] = o
	}
	s.mu.Unlock()
	if (old == nil) != (o == nil) {
		// A custom ServiceEntry of the same name is shadowed, or no longer.
		s.queue.Add(item{string(config.KindServiceEntry), ns, name})
	}
}

func (s *Store) pod(ns, name string) *corev1.Pod {
	p, err := s.pods.Pods(ns).Get(name)
	if err != nil {
		return nil
	}
	return p
}

func (s *Store) node(name string) *corev1.Node {
	n, err := s.nodes.Get(name)
	if err != nil {
		return nil
	}
	return n
}

// InMesh reports whether namespace ns is in the mesh (see NamespaceSelector).
func (s *Store) InMesh(ns string) bool {
	if s.opts.NamespaceSelector == nil {
		return true
	}
	for _, n := range s.opts.AlwaysNamespaces {
		if n == ns {
			return true
		}
	}
	n, err := s.namespaces.Get(ns)
	if err != nil {
		return false
	}
	return s.opts.NamespaceSelector.Matches(labels.Set(n.Labels))
}

// changedLocked records a change; s.mu must be held for writing.
func (s *Store) changedLocked() {
	s.rev++
	if s.dirtySince.IsZero() {
		s.dirtySince = time.Now()
	}
}

// flush announces the changes recorded since the last flush.
func (s *Store) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirtySince.IsZero() {
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.dirtySince = time.Time{}
}

// Changed returns a channel closed after the next change of the mesh's
// configuration: a custom resource, a Service, its endpoints, or the
// refusal of an object.
func (s *Store) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// Revision is the store's revision: it counts changes since New.
func (s *Store) Revision() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rev
}

// List returns the custom resources in force (the last valid version of
// each, less ServiceEntries a Service shadows) and the synthesized
// ServiceEntries, with the revision they were read at.
func (s *Store) List(_ context.Context, kind config.Kind, namespace string) ([]*config.Object, int64, error) {
	s.mu.RLock()
	var out []*config.Object
	want := func(k config.Key) bool {
		return (kind == "" || k.Kind == kind) && (namespace == "" || k.Namespace == namespace)
	}
	for k, r := range s.records {
		if r.obj != nil && !r.shadowed && want(k) {
			out = append(out, r.obj)
		}
	}
	for k, o := range s.synth {
		if want(k) {
			out = append(out, o)
		}
	}
	rev := s.rev
	s.mu.RUnlock()
	store.SortObjects(out)
	return out, rev, nil
}

// Get returns one object as List would include it, or store.ErrNotFound.
func (s *Store) Get(_ context.Context, key config.Key) (*config.Object, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if o := s.synth[key]; o != nil {
		return o, nil
	}
	if r := s.records[key]; r != nil && r.obj != nil && !r.shadowed {
		return r.obj, nil
	}
	return nil, fmt.Errorf("%s: %w", key, store.ErrNotFound)
}

// Synthesized reports whether key is the ServiceEntry of a Kubernetes
// Service (and so read-only here).
func (s *Store) Synthesized(key config.Key) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.synth[key] != nil
}

// Close stops the informers and the worker.
func (s *Store) Close() error {
	s.cancel()
	s.queue.ShutDown()
	<-s.done
	return nil
}

func metaOf(obj any) (interface {
	GetNamespace() string
	GetName() string
}, error) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, err := metaAccessor(obj)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
