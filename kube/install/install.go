// Package install applies weft's manifests (kube/manifest) to a cluster
// with server-side apply, waits for the control plane, and removes it all
// again. It talks to the API server through kube/kubeclient, as kubectl
// would with the same kubeconfig.
package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/kubeclient"
	"github.com/weft-mesh/weft/kube/webhook"
)

// FieldManager owns the fields the install applies.
const FieldManager = "weft-install"

// Options control Install and Uninstall.
type Options struct {
	// DryRun sends every change as a server-side dry run: the API server
	// checks it, nothing is stored.
	DryRun bool
	// Wait bounds how long Install waits for the control plane (zero: no
	// waiting) and Uninstall for the CRDs to go.
	Wait time.Duration
	// Poll is the interval of the waits (default 1s).
	Poll time.Duration
	Out  io.Writer // progress, one line per object (nil: discarded)
}

func (o Options) dryRun() []string {
	if o.DryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

func (o Options) suffix() string {
	if o.DryRun {
		return " (server dry run)"
	}
	return ""
}

func (o Options) out() io.Writer {
	if o.Out == nil {
		return io.Discard
	}
	return o.Out
}

func (o Options) poll() time.Duration {
	if o.Poll <= 0 {
		return time.Second
	}
	return o.Poll
}

// resources maps objects to their API resources through discovery.
type resources struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newResources(c *kubeclient.Clients) *resources {
	return &resources{dyn: c.Dynamic, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Kube.Discovery()))}
}

func (r *resources) client(gvk schema.GroupVersionKind, ns string) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	m, err := r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return r.dyn.Resource(m.Resource).Namespace(ns), m, nil
	}
	return r.dyn.Resource(m.Resource), m, nil
}

// name is how kubectl names an object, "deployment.apps/istiod", with
// its namespace: "deployment.apps/istiod -n istio-system".
func name(m *meta.RESTMapping, u *unstructured.Unstructured) string {
	r := strings.ToLower(m.GroupVersionKind.Kind)
	if m.Resource.Group != "" {
		r += "." + m.Resource.Group
	}
	r += "/" + u.GetName()
	if u.GetNamespace() != "" && m.Scope.Name() == meta.RESTScopeNameNamespace {
		r += " -n " + u.GetNamespace()
	}
	return r
}

// Install applies objs in order (server-side apply, weft owning the
// fields it sets) and, unless DryRun or Wait is zero, waits for what it
// applied: the CRDs to be served, and the control plane (when objs hold
// its Deployment) to have a ready replica that has set the webhook
// configurations' caBundle. istio-system is created only if missing
// and then marked, so Uninstall removes only a namespace it created.
func Install(ctx context.Context, c *kubeclient.Clients, objs []*unstructured.Unstructured, o Options) error {
	res := newResources(c)
	w := o.out()
	var crds []string
	controlPlane := false
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			if err := ensureNamespace(ctx, c, u, o); err != nil {
				return err
			}
			continue
		}
		cl, m, err := res.client(u.GroupVersionKind(), u.GetNamespace())
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}
		if _, err := cl.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true, DryRun: o.dryRun()}); err != nil {
			if o.DryRun && apierrors.IsNotFound(err) && u.GetNamespace() != "" {
				// A dry run cannot create the namespace its objects go in.
				fmt.Fprintf(w, "%s not checked: namespace %s does not exist yet%s\n", name(m, u), u.GetNamespace(), o.suffix())
				continue
			}
			return fmt.Errorf("install: %s: %w", name(m, u), err)
		}
		fmt.Fprintf(w, "%s serverside-applied%s\n", name(m, u), o.suffix())
		switch {
		case u.GetKind() == "CustomResourceDefinition":
			crds = append(crds, u.GetName())
		case u.GetKind() == "Deployment" && u.GetName() == inject.ControlPlaneName && u.GetNamespace() == inject.SystemNamespace:
			controlPlane = true
		}
	}
	if o.DryRun || o.Wait <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	if err := waitCRDs(ctx, c, crds, o); err != nil {
		return err
	}
	if !controlPlane {
		return nil
	}
	return waitControlPlane(ctx, c, o)
}

func ensureNamespace(ctx context.Context, c *kubeclient.Clients, u *unstructured.Unstructured, o Options) error {
	w := o.out()
	_, err := c.Kube.CoreV1().Namespaces().Get(ctx, u.GetName(), metav1.GetOptions{})
	if err == nil {
		fmt.Fprintf(w, "namespace/%s exists\n", u.GetName())
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("install: namespace/%s: %w", u.GetName(), err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Labels: u.GetLabels(), Annotations: u.GetAnnotations()}}
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{FieldManager: FieldManager, DryRun: o.dryRun()}); err != nil {
		return fmt.Errorf("install: namespace/%s: %w", u.GetName(), err)
	}
	fmt.Fprintf(w, "namespace/%s created%s\n", u.GetName(), o.suffix())
	return nil
}

// poll runs check every interval until it returns true, an error, or ctx
// ends; then it returns the last reason check gave for not being done.
func poll(ctx context.Context, every time.Duration, check func() (bool, string, error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		done, why, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New(why)
		case <-t.C:
		}
	}
}

func waitCRDs(ctx context.Context, c *kubeclient.Clients, names []string, o Options) error {
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	err := poll(ctx, o.poll(), func() (bool, string, error) {
		for _, n := range names {
			u, err := c.Dynamic.Resource(gvr).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, fmt.Sprintf("customresourcedefinition %s: %v", n, err), nil
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			established := false
			for _, cd := range conds {
				m, _ := cd.(map[string]any)
				established = established || (m["type"] == "Established" && m["status"] == "True")
			}
			if !established {
				return false, "customresourcedefinition " + n + " is not established", nil
			}
		}
		return true, "", nil
	})
	if err != nil {
		return fmt.Errorf("install: waiting for the CRDs: %w", err)
	}
	fmt.Fprintf(o.out(), "%d CRDs established\n", len(names))
	return nil
}

// waitControlPlane waits for a ready control plane replica that has set
// the webhooks' caBundle (so pods can be injected and objects validated).
func waitControlPlane(ctx context.Context, c *kubeclient.Clients, o Options) error {
	start := time.Now()
	err := poll(ctx, o.poll(), func() (bool, string, error) {
		d, err := c.Kube.AppsV1().Deployments(inject.SystemNamespace).Get(ctx, inject.ControlPlaneName, metav1.GetOptions{})
		if err != nil {
			return false, "deployment " + inject.ControlPlaneName + ": " + err.Error(), nil
		}
		if d.Status.ReadyReplicas == 0 {
			return false, fmt.Sprintf("no ready replica of deployment %s/%s (%d of %d); %s", inject.SystemNamespace, inject.ControlPlaneName,
				d.Status.ReadyReplicas, deref(d.Spec.Replicas), podStates(ctx, c, d)), nil
		}
		mw, err := c.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhook.InjectorConfig, metav1.GetOptions{})
		if err != nil {
			return false, "mutatingwebhookconfiguration " + webhook.InjectorConfig + ": " + err.Error(), nil
		}
		vw, err := c.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhook.ValidatorConfig, metav1.GetOptions{})
		if err != nil {
			return false, "validatingwebhookconfiguration " + webhook.ValidatorConfig + ": " + err.Error(), nil
		}
		for _, h := range mw.Webhooks {
			if len(h.ClientConfig.CABundle) == 0 {
				return false, "the control plane has not set the caBundle of webhook " + h.Name, nil
			}
		}
		for _, h := range vw.Webhooks {
			if len(h.ClientConfig.CABundle) == 0 {
				return false, "the control plane has not set the caBundle of webhook " + h.Name, nil
			}
		}
		return true, "", nil
	})
	if err != nil {
		return fmt.Errorf("install: the control plane is not ready after %s: %w", o.Wait, err)
	}
	fmt.Fprintf(o.out(), "control plane ready (%s)\n", time.Since(start).Round(time.Second))
	return nil
}

func deref(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// podStates says why the Deployment's pods are not ready, for the
// timeout message: "pod istiod-x: CrashLoopBackOff (exit 1: ...)".
func podStates(ctx context.Context, c *kubeclient.Clients, d *appsv1.Deployment) string {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return ""
	}
	pods, err := c.Kube.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil || len(pods.Items) == 0 {
		return "no pods"
	}
	var b bytes.Buffer
	for i, p := range pods.Items {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "pod %s: %s", p.Name, p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.State.Waiting != nil:
				fmt.Fprintf(&b, ", %s %s", cs.Name, cs.State.Waiting.Reason)
				if t := cs.LastTerminationState.Terminated; t != nil {
					fmt.Fprintf(&b, " (exit %d: %s)", t.ExitCode, strings.TrimSpace(lastLine(t.Message)))
				}
			case cs.State.Running != nil && !cs.Ready:
				fmt.Fprintf(&b, ", %s running, not ready", cs.Name)
			}
		}
	}
	return b.String()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
