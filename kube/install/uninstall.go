package install

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"

	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/kubeclient"
	"github.com/weft-mesh/weft/kube/manifest"
)

// Uninstall removes what Install applied and what the control plane made
// at run time (its CA Secret, leader Lease, and the root-cert ConfigMap in
// every namespace): the webhook configurations first, so nothing is
// refused or injected by a control plane on its way out, then the
// workloads and RBAC, then (once the control plane's pods are gone, when
// waiting) what the control plane made, istio-system if the install
// created it, and the CRDs last (which deletes every Istio object in the
// cluster). It prints
// each object it removed; objects already gone are skipped. Unless DryRun
// or Wait is zero, it then waits (at most Wait) until every object it
// deleted is gone: a namespace or CRD being deleted still exists for a
// while, and an install right after would meet it half-removed.
func Uninstall(ctx context.Context, c *kubeclient.Clients, objs []*unstructured.Unstructured, o Options) error {
	res := newResources(c)
	w := o.out()
	type deleted struct {
		cl   dynamic.ResourceInterface
		name string // as kubectl names it
		obj  string // metadata.name
	}
	var removed []deleted
	del := func(u *unstructured.Unstructured) error {
		cl, m, err := res.client(u.GroupVersionKind(), u.GetNamespace())
		if err != nil {
			return fmt.Errorf("uninstall: %w", err)
		}
		bg := metav1.DeletePropagationBackground
		err = cl.Delete(ctx, u.GetName(), metav1.DeleteOptions{DryRun: o.dryRun(), PropagationPolicy: &bg})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("uninstall: %s: %w", name(m, u), err)
		}
		removed = append(removed, deleted{cl: cl, name: name(m, u), obj: u.GetName()})
		fmt.Fprintf(w, "%s deleted%s\n", name(m, u), o.suffix())
		return nil
	}

	var crds []*unstructured.Unstructured
	var ns *unstructured.Unstructured
	for i := len(objs) - 1; i >= 0; i-- {
		u := objs[i]
		switch u.GetKind() {
		case "CustomResourceDefinition":
			crds = append([]*unstructured.Unstructured{u}, crds...)
			continue
		case "Namespace":
			ns = u
			continue
		}
		if err := del(u); err != nil {
			return err
		}
	}
	// While it runs, the control plane re-creates what it publishes (the
	// root certificate ConfigMaps, its Lease): those go once it is gone.
	if !o.DryRun && o.Wait > 0 {
		if err := waitControlPlaneGone(ctx, c, o); err != nil {
			return err
		}
	}
	rt, err := runtimeObjects(ctx, c)
	if err != nil {
		return err
	}
	for _, u := range rt {
		if err := del(u); err != nil {
			return err
		}
	}
	if ns != nil {
		cur, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("uninstall: namespace/%s: %w", ns.GetName(), err)
		case cur.Annotations[manifest.AnnotationCreatedNamespace] == "true":
			if err := del(ns); err != nil {
				return err
			}
		default:
			fmt.Fprintf(w, "namespace/%s kept: the install did not create it\n", ns.GetName())
		}
	}
	for _, u := range crds {
		if err := del(u); err != nil {
			return err
		}
	}
	if len(removed) == 0 {
		fmt.Fprintln(w, "nothing to remove: weft is not installed")
		return nil
	}
	if o.DryRun || o.Wait <= 0 {
		return nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	err = poll(ctx, o.poll(), func() (bool, string, error) {
		for len(removed) > 0 {
			d := removed[0]
			_, err := d.cl.Get(ctx, d.obj, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				removed = removed[1:]
				continue
			case err != nil:
				return false, d.name + ": " + err.Error(), nil
			}
			return false, fmt.Sprintf("%s (and %d more) still being deleted", d.name, len(removed)-1), nil
		}
		return true, "", nil
	})
	if err != nil {
		return fmt.Errorf("uninstall: not everything is gone after %s: %w", o.Wait, err)
	}
	fmt.Fprintf(w, "all gone (%s)\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// waitControlPlaneGone waits, at most o.Wait, until no control plane pod
// is left.
func waitControlPlaneGone(ctx context.Context, c *kubeclient.Clients, o Options) error {
	ctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	sel := labels.SelectorFromSet(manifest.ControlPlaneLabels()).String()
	err := poll(ctx, o.poll(), func() (bool, string, error) {
		pods, err := c.Kube.CoreV1().Pods(inject.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, "list the control plane's pods: " + err.Error(), nil
		}
		if n := len(pods.Items); n > 0 {
			return false, fmt.Sprintf("%d control plane pods still running (%s)", n, pods.Items[0].Name), nil
		}
		return true, "", nil
	})
	if err != nil {
		return fmt.Errorf("uninstall: the control plane has not stopped after %s: %w", o.Wait, err)
	}
	fmt.Fprintln(o.out(), "control plane stopped")
	return nil
}

// runtimeObjects are what the control plane creates while it runs.
func runtimeObjects(ctx context.Context, c *kubeclient.Clients) ([]*unstructured.Unstructured, error) {
	obj := func(apiVersion, kind, ns, name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetNamespace(ns)
		u.SetName(name)
		return u
	}
	out := []*unstructured.Unstructured{
		obj("coordination.k8s.io/v1", "Lease", inject.SystemNamespace, inject.LeaderLease),
		obj("v1", "Secret", inject.SystemNamespace, inject.CASecret),
	}
	cms, err := c.Kube.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", inject.RootCertConfigMap).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("uninstall: list configmaps %s: %w", inject.RootCertConfigMap, err)
	}
	for _, cm := range cms.Items {
		out = append(out, obj("v1", "ConfigMap", cm.Namespace, cm.Name))
	}
	return out, nil
}
