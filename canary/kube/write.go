package kube

import (
	"context"
	"fmt"
	"maps"
	"reflect"

	"google.golang.org/protobuf/types/known/structpb"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"

	"github.com/weft-mesh/weft/canary"
	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
)

// FieldManager names the canary controller in managed fields.
const FieldManager = "weft-canary"

// Sync implements canary.Target: NAME-primary is created from the
// target's template when missing (primary must be the target's revision
// then), Services NAME-primary and NAME-canary select the primary's and
// the target's pods, and the apex Service NAME selects the primary's once
// one of them is available (before that, traffic stays where it was). The
// revisions themselves need no selector change: each Deployment runs one.
func (t *Target) Sync(ctx context.Context, cd *config.Object, primary, _ string) error {
	l, n, dep, err := t.readTarget(cd)
	if err != nil {
		return err
	}
	key, value, err := appLabel(dep)
	if err != nil {
		return err
	}
	prim, err := l.deployments.Deployments(n.ns).Get(n.primary)
	if apierrors.IsNotFound(err) {
		if rev := TemplateHash(&dep.Spec.Template); rev != primary {
			return fmt.Errorf("Deployment %s/%s changed (revision %s, not %s) before its primary was created; the next run copies it", n.ns, n.target, rev, primary)
		}
		prim, err = t.createPrimary(ctx, cd, dep, key, value, primary)
	}
	if err != nil {
		return fmt.Errorf("Deployment %s/%s: %w", n.ns, n.primary, err)
	}
	svc := cd.Spec.(*flaggerv1beta1.Canary).GetService()
	if err := t.service(ctx, l, cd, n.hosts.Primary, map[string]string{key: value + PrimarySuffix}, svc.GetPrimary(), false); err != nil {
		return err
	}
	if err := t.service(ctx, l, cd, n.hosts.Canary, map[string]string{key: value}, svc.GetCanary(), false); err != nil {
		return err
	}
	if prim.Status.AvailableReplicas == 0 {
		return nil
	}
	return t.service(ctx, l, cd, n.hosts.Apex, map[string]string{key: value + PrimarySuffix}, svc.GetApex(), true)
}

// readTarget returns the cluster's listers, cd's names and its target
// Deployment.
func (t *Target) readTarget(cd *config.Object) (*listers, names, *appsv1.Deployment, error) {
	n := namesOf(cd)
	l, err := t.read()
	if err != nil {
		return nil, n, nil, err
	}
	dep, err := l.deployments.Deployments(n.ns).Get(n.target)
	if err != nil {
		return nil, n, nil, fmt.Errorf("read Deployment %s/%s: %w", n.ns, n.target, err)
	}
	return l, n, dep, nil
}

// createPrimary creates NAME-primary from the target, as Flagger does:
// the same spec with the app label's value suffixed -primary, at the
// target's replicas (at least one).
func (t *Target) createPrimary(ctx context.Context, cd *config.Object, dep *appsv1.Deployment, key, value, rev string) (*appsv1.Deployment, error) {
	n := namesOf(cd)
	p := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: n.primary, Namespace: n.ns, Labels: relabel(dep.Labels, key, value),
			Annotations: map[string]string{canary.AnnotationOwner: cd.Meta.Name}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{key: value + PrimarySuffix}}},
	}
	copySpec(p, dep, key, value, rev)
	if p.Spec.Replicas == nil || *p.Spec.Replicas == 0 {
		p.Spec.Replicas = ptr(int32(1))
	}
	created, err := t.kube.AppsV1().Deployments(n.ns).Create(ctx, p, metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsAlreadyExists(err) { // made by the last run; the cache had not seen it
		return t.kube.AppsV1().Deployments(n.ns).Get(ctx, n.primary, metav1.GetOptions{})
	}
	if err == nil {
		t.log.Info("canary: created the primary", "deployment", n.ns+"/"+n.primary, "revision", rev)
	}
	return created, err
}

// copySpec makes p run the target's pod template (revision rev).
func copySpec(p, dep *appsv1.Deployment, key, value, rev string) {
	tmpl := dep.Spec.Template.DeepCopy()
	tmpl.Labels = relabel(tmpl.Labels, key, value)
	p.Spec.Template = *tmpl
	if r := dep.Spec.Replicas; r != nil && *r > 0 {
		p.Spec.Replicas = ptr(*r)
	}
	p.Spec.Strategy = *dep.Spec.Strategy.DeepCopy()
	p.Spec.MinReadySeconds = dep.Spec.MinReadySeconds
	p.Spec.ProgressDeadlineSeconds = dep.Spec.ProgressDeadlineSeconds
	p.Spec.RevisionHistoryLimit = dep.Spec.RevisionHistoryLimit
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[AnnotationRevision] = rev
}

// relabel returns labels with key's value suffixed -primary.
func relabel(labels map[string]string, key, value string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[key] = value + PrimarySuffix
	return out
}

// Promote implements canary.Target: NAME-primary gets the target's pod
// template (revision must still be the target's: a template changed since
// its analysis is not promoted) and its replicas; the Deployment
// controller rolls the primary's pods over.
func (t *Target) Promote(ctx context.Context, cd *config.Object, revision string) error {
	_, n, dep, err := t.readTarget(cd)
	if err != nil {
		return err
	}
	if rev := TemplateHash(&dep.Spec.Template); rev != revision {
		return fmt.Errorf("Deployment %s/%s changed since revision %s was analysed (it is %s now): not promoted; the next run analyses the new one", n.ns, n.target, revision, rev)
	}
	key, value, err := appLabel(dep)
	if err != nil {
		return err
	}
	err = t.updateDeployment(ctx, n.ns, n.primary, func(p *appsv1.Deployment) error {
		if err := owned(p.Annotations, cd, "Deployment", n.ns, n.primary); err != nil {
			return err
		}
		copySpec(p, dep, key, value, revision)
		return nil
	})
	if err == nil {
		t.log.Info("canary: promoted", "deployment", n.ns+"/"+n.primary, "revision", revision)
	}
	return err
}

// ScaleToZero implements canary.Target: the target runs no pods between
// releases.
func (t *Target) ScaleToZero(ctx context.Context, cd *config.Object) error {
	return t.scale(ctx, cd, func(cur int32, _ *appsv1.Deployment) int32 { return 0 })
}

// ScaleFromZero implements canary.Target: a target at zero replicas gets
// the primary's (at least one); one the user scaled keeps its replicas.
func (t *Target) ScaleFromZero(ctx context.Context, cd *config.Object) error {
	return t.scale(ctx, cd, func(cur int32, prim *appsv1.Deployment) int32 {
		if cur > 0 {
			return cur
		}
		if prim != nil && prim.Spec.Replicas != nil && *prim.Spec.Replicas > 0 {
			return *prim.Spec.Replicas
		}
		return 1
	})
}

// scale sets the target's replicas to what to says.
func (t *Target) scale(ctx context.Context, cd *config.Object, to func(cur int32, primary *appsv1.Deployment) int32) error {
	l, n, dep, err := t.readTarget(cd)
	if err != nil {
		return err
	}
	prim, _ := l.deployments.Deployments(n.ns).Get(n.primary)
	cur := int32(1)
	if dep.Spec.Replicas != nil {
		cur = *dep.Spec.Replicas
	}
	want := to(cur, prim)
	if want == cur {
		return nil
	}
	err = t.updateDeployment(ctx, n.ns, n.target, func(d *appsv1.Deployment) error {
		d.Spec.Replicas = ptr(want)
		return nil
	})
	if err == nil {
		t.log.Info("canary: scaled the target", "deployment", n.ns+"/"+n.target, "replicas", want)
	}
	return err
}

// updateDeployment changes a Deployment as read from the API server
// (not the cache, which may lag), again on a conflict.
func (t *Target) updateDeployment(ctx context.Context, ns, name string, change func(*appsv1.Deployment) error) error {
	c := t.kube.AppsV1().Deployments(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := c.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := change(d); err != nil {
			return err
		}
		_, err = c.Update(ctx, d, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update Deployment %s/%s: %w", ns, name, err)
	}
	return nil
}

// service makes Service name select selector on the Canary's port. A
// Service weft did not make is refused, except the apex (adopt), whose
// other ports are kept: it is the user's (Bookinfo's reviews).
func (t *Target) service(ctx context.Context, l *listers, cd *config.Object, name string, selector map[string]string, meta *flaggerv1beta1.CustomMetadata, adopt bool) error {
	ns := cd.Meta.Namespace
	port := servicePort(cd.Spec.(*flaggerv1beta1.Canary).GetService())
	cur, err := l.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: maps.Clone(meta.GetLabels()), Annotations: maps.Clone(meta.GetAnnotations())},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector, Ports: []corev1.ServicePort{port}},
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[canary.AnnotationOwner] = cd.Meta.Name
		_, err = t.kube.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{FieldManager: FieldManager})
		if err == nil {
			t.log.Info("canary: created a Service", "service", ns+"/"+name, "selector", selector)
		}
		if err == nil || apierrors.IsAlreadyExists(err) { // the cache had not seen the last run's
			return nil
		}
		return fmt.Errorf("create Service %s/%s: %w", ns, name, err)
	}
	if err != nil {
		return fmt.Errorf("read Service %s/%s: %w", ns, name, err)
	}
	if !adopt {
		if err := owned(cur.Annotations, cd, "Service", ns, name); err != nil {
			return err
		}
	}
	if !serviceChange(cur.DeepCopy(), cd, selector, meta, port, adopt) {
		return nil
	}
	c := t.kube.CoreV1().Services(ns)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := c.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		serviceChange(s, cd, selector, meta, port, adopt)
		_, err = c.Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("update Service %s/%s: %w", ns, name, err)
	}
	t.log.Info("canary: updated a Service", "service", ns+"/"+name, "selector", selector)
	return nil
}

// serviceChange makes s what the Canary wants and reports whether that
// changed it: the selector, the Canary's metadata and ownership, and the
// Canary's port (a Service weft made has it alone; an adopted one keeps
// its other ports, and a port of the same number as it was).
func serviceChange(s *corev1.Service, cd *config.Object, selector map[string]string, meta *flaggerv1beta1.CustomMetadata, port corev1.ServicePort, adopted bool) bool {
	changed := false
	if !maps.Equal(s.Spec.Selector, selector) {
		s.Spec.Selector, changed = selector, true
	}
	set := func(m *map[string]string, k, v string) {
		if (*m)[k] != v {
			if *m == nil {
				*m = map[string]string{}
			}
			(*m)[k], changed = v, true
		}
	}
	set(&s.Annotations, canary.AnnotationOwner, cd.Meta.Name)
	for k, v := range meta.GetAnnotations() {
		set(&s.Annotations, k, v)
	}
	for k, v := range meta.GetLabels() {
		set(&s.Labels, k, v)
	}
	for _, p := range s.Spec.Ports {
		if p.Port == port.Port && adopted {
			return changed
		}
	}
	if adopted {
		s.Spec.Ports = append(s.Spec.Ports, port)
		return true
	}
	want := []corev1.ServicePort{port}
	if !reflect.DeepEqual(s.Spec.Ports, want) {
		s.Spec.Ports, changed = want, true
	}
	return changed
}

// servicePort is the port of the Canary's Services, as Flagger makes it:
// spec.service.port, named portName (default http), to targetPort
// (default the port).
func servicePort(svc *flaggerv1beta1.CanaryService) corev1.ServicePort {
	p := corev1.ServicePort{Name: svc.GetPortName(), Protocol: corev1.ProtocolTCP, Port: svc.GetPort(), TargetPort: intstr.FromInt32(svc.GetPort())}
	if p.Name == "" {
		p.Name = "http"
	}
	switch v := svc.GetTargetPort().GetKind().(type) {
	case *structpb.Value_NumberValue:
		p.TargetPort = intstr.FromInt32(int32(v.NumberValue))
	case *structpb.Value_StringValue:
		p.TargetPort = intstr.FromString(v.StringValue)
	}
	if ap := svc.GetAppProtocol(); ap != "" {
		p.AppProtocol = ptr(ap)
	}
	return p
}

func ptr[T any](v T) *T { return &v }
