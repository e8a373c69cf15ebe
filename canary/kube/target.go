// Package kube is the canary.Target of Kubernetes mode: what Flagger does
// for a Canary whose targetRef is a Deployment. The user's Deployment NAME
// is the canary; weft keeps a copy of it, NAME-primary, that serves
// between releases, and Services NAME (the apex) and NAME-primary
// selecting the primary's pods and NAME-canary selecting the target's.
// A revision is a hash of the target's pod template; promotion copies
// the template to NAME-primary, and between releases NAME runs no pods.
// The traffic split itself is the engine's (canary.Router's
// VirtualService and DestinationRules, written through the store). See
// README.md.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/weft-mesh/weft/canary"
	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
)

// AnnotationRevision, on NAME-primary, is the revision (the target's pod
// template hash) its template was copied from: the primary revision.
const AnnotationRevision = "weft.io/canary-revision"

// PrimarySuffix names the primary Deployment, its Service and the value
// of its pods' app label, as Flagger does.
const PrimarySuffix = "-primary"

// selectorLabels are the labels that tell a target's pods, Flagger's
// defaults in its order: the primary's pods get the value plus
// PrimarySuffix.
var selectorLabels = []string{"app", "name", "app.kubernetes.io/name"}

// Target is the Kubernetes canary.Target. Start must run (on the leader,
// for its term) before the controller uses it.
type Target struct {
	kube    kubernetes.Interface
	log     *slog.Logger
	listers atomic.Pointer[listers]
}

type listers struct {
	deployments appslisters.DeploymentLister
	services    corelisters.ServiceLister
}

var _ canary.Target = (*Target)(nil)

// New returns a Target writing through kube; log receives what it
// changes (nil discards).
func New(kube kubernetes.Interface, log *slog.Logger) *Target {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Target{kube: kube, log: log}
}

// Start reads Deployments and Services through informers until ctx ends,
// returning once they have read the cluster. Run it for each term the
// controller runs in.
func (t *Target) Start(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(t.kube, 0)
	deps, svcs := f.Apps().V1().Deployments(), f.Core().V1().Services()
	for _, inf := range []cache.SharedIndexInformer{deps.Informer(), svcs.Informer()} {
		// Writes read the object afresh; the cache needs no managed fields.
		if err := inf.SetTransform(func(obj any) (any, error) {
			if m, err := meta.Accessor(obj); err == nil {
				m.SetManagedFields(nil)
			}
			return obj, nil
		}); err != nil {
			return fmt.Errorf("canary target: informer transform: %w", err)
		}
	}
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			f.Shutdown()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("canary target: could not read %v from the cluster (can the control plane list and watch them?)", typ)
		}
	}
	l := &listers{deployments: deps.Lister(), services: svcs.Lister()}
	t.listers.Store(l)
	go func() {
		<-ctx.Done()
		t.listers.CompareAndSwap(l, nil)
		f.Shutdown()
	}()
	return nil
}

func (t *Target) read() (*listers, error) {
	l := t.listers.Load()
	if l == nil {
		return nil, errors.New("canary target: not reading the cluster (not the leader's term)")
	}
	return l, nil
}

// names are the objects of one Canary.
type names struct {
	ns      string
	target  string // Deployment NAME
	primary string // Deployment NAME-primary
	hosts   canary.Hosts
}

func namesOf(cd *config.Object) names {
	name := cd.Spec.(*flaggerv1beta1.Canary).GetTargetRef().GetName()
	return names{ns: cd.Meta.Namespace, target: name, primary: name + PrimarySuffix, hosts: canary.HostsOf(cd)}
}

// Observe implements canary.Target: the primary revision is the one
// NAME-primary was copied from (before it exists: the target's, which
// Sync copies), the candidate the target's pod template hash when it
// differs; readiness is the Deployments' rollout.
func (t *Target) Observe(_ context.Context, cd *config.Object) (canary.Observation, error) {
	n := namesOf(cd)
	obs := canary.Observation{Revisions: map[string]canary.Revision{}, Hosts: n.hosts}
	spec := cd.Spec.(*flaggerv1beta1.Canary)
	if kind := spec.GetTargetRef().GetKind(); kind != "Deployment" {
		obs.Problem = fmt.Sprintf("in Kubernetes a Canary releases a Deployment (targetRef {apiVersion: apps/v1, kind: Deployment}); kind %s is local mode's", kind)
		return obs, nil
	}
	l, err := t.read()
	if err != nil {
		return obs, err
	}
	dep, err := l.deployments.Deployments(n.ns).Get(n.target)
	if apierrors.IsNotFound(err) {
		obs.Problem = fmt.Sprintf("Deployment %s/%s not found", n.ns, n.target)
		return obs, nil
	}
	if err != nil {
		return obs, fmt.Errorf("read Deployment %s/%s: %w", n.ns, n.target, err)
	}
	if _, _, err := appLabel(dep); err != nil {
		obs.Problem = err.Error()
		return obs, nil
	}
	a := spec.GetAnalysis()
	rev := TemplateHash(&dep.Spec.Template)
	prim, err := l.deployments.Deployments(n.ns).Get(n.primary)
	switch {
	case apierrors.IsNotFound(err):
		obs.Primary = rev // what Sync copies
		obs.Revisions[rev] = canary.Revision{ID: rev, NotReady: fmt.Sprintf("Deployment %s/%s is not created yet", n.ns, n.primary),
			Workloads: []string{n.primary}, MetricLabels: metricLabels(n.ns, n.primary)}
	case err != nil:
		return obs, fmt.Errorf("read Deployment %s/%s: %w", n.ns, n.primary, err)
	default:
		if err := owned(prim.Annotations, cd, "Deployment", n.ns, n.primary); err != nil {
			obs.Problem = err.Error()
			return obs, nil
		}
		obs.Primary = prim.Annotations[AnnotationRevision]
		if obs.Primary == "" {
			obs.Problem = fmt.Sprintf("Deployment %s/%s has no annotation %s: weft cannot tell which revision it runs; delete it to have it copied again", n.ns, n.primary, AnnotationRevision)
			return obs, nil
		}
		obs.Revisions[obs.Primary] = revision(prim, obs.Primary, threshold(a.PrimaryReadyThreshold))
	}
	if rev != obs.Primary {
		// When the two are one revision (promoted, or not released yet),
		// the primary's readiness is the one that matters: it serves.
		obs.Candidate = rev
		obs.Revisions[rev] = revision(dep, rev, threshold(a.CanaryReadyThreshold))
	}
	return obs, nil
}

// revision is what the analysis needs of one Deployment.
func revision(d *appsv1.Deployment, id string, threshold int32) canary.Revision {
	r := canary.Revision{ID: id, Instances: int(d.Status.Replicas), Workloads: []string{d.Name}, MetricLabels: metricLabels(d.Namespace, d.Name)}
	r.NotReady = notReady(d, threshold)
	r.Ready = r.NotReady == ""
	return r
}

// metricLabels select a Deployment's traffic in the control plane's
// telemetry: its pods' proxies report their Deployment as
// destination_workload.
func metricLabels(ns, deployment string) map[string]string {
	return map[string]string{"destination_workload": deployment, "destination_workload_namespace": ns}
}

// notReady says why a Deployment is not (yet) serving its current
// template, as `kubectl rollout status` reads it; threshold is the percent
// of its replicas that must be available; "" when it serves.
func notReady(d *appsv1.Deployment, threshold int32) string {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return fmt.Sprintf("Deployment %s exceeded its progress deadline: %s", d.Name, c.Message)
		}
	}
	switch {
	case want == 0:
		return fmt.Sprintf("Deployment %s is scaled to zero", d.Name)
	case d.Generation > s.ObservedGeneration:
		return fmt.Sprintf("waiting for the rollout of Deployment %s to start", d.Name)
	case s.UpdatedReplicas < want:
		return fmt.Sprintf("%d of %d replicas of Deployment %s updated", s.UpdatedReplicas, want, d.Name)
	case s.Replicas > s.UpdatedReplicas:
		return fmt.Sprintf("%d old replicas of Deployment %s pending termination", s.Replicas-s.UpdatedReplicas, d.Name)
	}
	if need := (want*threshold + 99) / 100; s.AvailableReplicas < need {
		return fmt.Sprintf("%d of %d replicas of Deployment %s available (%d%% needed)", s.AvailableReplicas, want, d.Name, threshold)
	}
	return ""
}

// threshold is a ready threshold in percent, Flagger's 100 by default.
func threshold(p *int32) int32 {
	if p == nil {
		return 100
	}
	return *p
}

// appLabel returns the label of the target's selector that tells its
// pods (app, name or app.kubernetes.io/name, as Flagger looks for them).
func appLabel(d *appsv1.Deployment) (key, value string, err error) {
	if d.Spec.Selector != nil {
		for _, k := range selectorLabels {
			if v := d.Spec.Selector.MatchLabels[k]; v != "" && d.Spec.Template.Labels[k] == v {
				return k, v, nil
			}
		}
	}
	return "", "", fmt.Errorf("Deployment %s/%s: spec.selector.matchLabels has none of the labels %v (as its pod template): weft, like Flagger, names the primary's pods by it",
		d.Namespace, d.Name, selectorLabels)
}

// owned checks that an object weft would write for cd is cd's.
func owned(annotations map[string]string, cd *config.Object, kind, ns, name string) error {
	if got := annotations[canary.AnnotationOwner]; got != cd.Meta.Name {
		return fmt.Errorf("%s %s/%s exists and is not Canary %s/%s's (annotation %s: %q): rename it, or delete it so weft creates its own",
			kind, ns, name, cd.Meta.Namespace, cd.Meta.Name, canary.AnnotationOwner, got)
	}
	return nil
}

// TemplateHash is the revision of a pod template: a hash of its JSON
// (the API server's defaults included, so the same template always hashes
// the same).
func TemplateHash(t *corev1.PodTemplateSpec) string {
	js, err := json.Marshal(t)
	if err != nil { // a PodTemplateSpec always encodes
		panic(err)
	}
	h := fnv.New64a()
	h.Write(js)
	return strconv.FormatUint(h.Sum64(), 16)
}
