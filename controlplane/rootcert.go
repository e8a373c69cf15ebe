package controlplane

import (
	"bytes"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// The trust bundle ConfigMap Istio publishes in every namespace, which
// injected pods mount to verify the control plane and their peers.
const (
	RootCertConfigMap = "istio-ca-root-cert"
	RootCertKey       = "root-cert.pem"
)

// systemNamespaces never get the root certificate: nothing there joins
// the mesh (Istio skips them too).
var systemNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// publishRootCert keeps ConfigMap istio-ca-root-cert, holding the mesh's
// trust bundle, in every namespace of the mesh: created where missing,
// corrected where changed, re-created when deleted. It runs while this
// replica leads.
func (c *ControlPlane) publishRootCert(term context.Context) {
	kube := c.kube.Clients.Kube
	nsFactory := informers.NewSharedInformerFactory(kube, 0)
	cmFactory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = "metadata.name=" + RootCertConfigMap
	}))
	namespaces := nsFactory.Core().V1().Namespaces()
	configMaps := cmFactory.Core().V1().ConfigMaps()
	q := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "weft-root-cert"})
	defer q.ShutDown()
	enqueue := func(ns func(any) string) cache.ResourceEventHandler {
		add := func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n := ns(obj); n != "" {
				q.Add(n)
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }, DeleteFunc: add}
	}
	_, _ = namespaces.Informer().AddEventHandler(enqueue(func(obj any) string {
		if n, ok := obj.(*corev1.Namespace); ok {
			return n.Name
		}
		return ""
	}))
	_, _ = configMaps.Informer().AddEventHandler(enqueue(func(obj any) string {
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			return cm.Namespace
		}
		return ""
	}))
	nsFactory.Start(term.Done())
	cmFactory.Start(term.Done())
	defer nsFactory.Shutdown()
	defer cmFactory.Shutdown()
	if !cache.WaitForCacheSync(term.Done(), namespaces.Informer().HasSynced, configMaps.Informer().HasSynced) {
		return
	}
	go func() {
		<-term.Done()
		q.ShutDown()
	}()
	p := rootPublisher{c: c, namespaces: namespaces.Lister(), configMaps: configMaps.Lister()}
	for {
		ns, quit := q.Get()
		if quit {
			return
		}
		if err := p.reconcile(term, ns); err != nil {
			c.log.Warn("publish root certificate; retrying", "namespace", ns, "err", err)
			q.AddRateLimited(ns)
		} else {
			q.Forget(ns)
		}
		q.Done(ns)
	}
}

type rootPublisher struct {
	c          *ControlPlane
	namespaces corelisters.NamespaceLister
	configMaps corelisters.ConfigMapLister
}

// reconcile makes one namespace's ConfigMap hold the trust bundle.
func (p rootPublisher) reconcile(ctx context.Context, ns string) error {
	n, err := p.namespaces.Get(ns)
	if apierrors.IsNotFound(err) || systemNamespaces[ns] || (err == nil && n.Status.Phase == corev1.NamespaceTerminating) {
		return nil
	}
	if err != nil {
		return err
	}
	if !p.c.kstore.InMesh(ns) {
		return nil
	}
	root := p.c.ca.RootPEM()
	cms := p.c.kube.Clients.Kube.CoreV1().ConfigMaps(ns)
	cm, err := p.configMaps.ConfigMaps(ns).Get(RootCertConfigMap)
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCertConfigMap, Namespace: ns, Labels: map[string]string{"istio.io/config": "true"}},
			Data:       map[string]string{RootCertKey: string(root)},
		}, metav1.CreateOptions{FieldManager: fieldManager})
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("configmap %s/%s appeared meanwhile", ns, RootCertConfigMap) // checked again on retry
		}
		return err
	case err != nil:
		return err
	case bytes.Equal([]byte(cm.Data[RootCertKey]), root):
		return nil
	}
	upd := cm.DeepCopy()
	if upd.Data == nil {
		upd.Data = map[string]string{}
	}
	upd.Data[RootCertKey] = string(root)
	_, err = cms.Update(ctx, upd, metav1.UpdateOptions{FieldManager: fieldManager})
	return err
}
