package kube

// Unit tests of the Kubernetes target under the real analysis engine,
// over client-go's fake clientset (no Deployment controller runs: the
// tests set the rollout status a controller would) and a local store for
// the routing and the Canary's status. test/kube runs the same on a real
// cluster.

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/weft-mesh/weft/canary"
	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/store/bolt"
	"github.com/weft-mesh/weft/telemetry"
	tstore "github.com/weft-mesh/weft/telemetry/store"
)

// seedCanary is seed 004's Canary (demo/bookinfo/reviews-canary.yaml)
// without its webhook.
const seedCanary = `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: reviews, namespace: default}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: reviews}
  progressDeadlineSeconds: 60
  service: {port: 9080, targetPort: 9080}
  analysis:
    interval: 10s
    threshold: 3
    maxWeight: 50
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
    - name: request-duration
      thresholdRange: {max: 500}
      interval: 30s
`

// clock is the analysis' time, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tel serves the destination proxies' series per Deployment.
type tel struct {
	mu    sync.Mutex
	stats map[string]tstore.EdgeStat
}

// set makes Deployment d show n requests, errs of them 5xx, taking 5 ms.
func (f *tel) set(d string, n, errs uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var dur [20]uint64
	dur[0] = n
	if telemetry.DurationBuckets[0] < 5 {
		dur[0], dur[1] = 0, n
	}
	f.stats[d] = tstore.EdgeStat{Key: tstore.EdgeKey{Reporter: "destination", Protocol: "http", DestinationApp: "reviews",
		DestinationNamespace: "default", DestinationWorkload: d}, Requests: n, Errors: errs, Duration: dur}
}

func (f *tel) Edges(time.Duration, time.Time) ([]tstore.EdgeStat, float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tstore.EdgeStat
	for _, s := range f.stats {
		out = append(out, s)
	}
	return out, 60
}

type fixture struct {
	t      *testing.T
	kube   *kubefake.Clientset
	st     *bolt.Store
	target *Target
	c      *canary.Controller
	clock  *clock
	tel    *tel
	key    config.Key
}

func reviewsDeployment(version string) *appsv1.Deployment {
	labels := map[string]string{"app": "reviews", "version": "v1"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default", Labels: map[string]string{"app": "reviews"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "reviews"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "reviews", Image: "weft:bookinfo",
					Args: []string{"demo-app", "bookinfo", "reviews"}, Env: []corev1.EnvVar{{Name: "VERSION", Value: version}}}}},
			},
		},
	}
}

func newFixture(t *testing.T, objs ...*appsv1.Deployment) *fixture {
	t.Helper()
	kc := kubefake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, d := range objs {
		if _, err := kc.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, kube: kc, st: st, target: New(kc, nil), clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		tel: &tel{stats: map[string]tstore.EdgeStat{}}, key: config.Key{Kind: config.KindCanary, Namespace: "default", Name: "reviews"}}
	if err := f.target.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f.c = canary.New(canary.Options{Store: st, Target: f.target, Telemetry: f.tel, Clock: f.clock})
	return f
}

func (f *fixture) apply(yaml string) {
	f.t.Helper()
	objs, err := config.Decode("test", strings.NewReader(yaml))
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.Apply(context.Background(), objs); err != nil {
		f.t.Fatal(err)
	}
}

// synced waits until the target's cache holds what the fake holds.
func (f *fixture) synced() {
	f.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		deps, _ := f.kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		svcs, _ := f.kube.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		l := f.target.listers.Load()
		same := true
		for _, d := range deps.Items {
			c, err := l.deployments.Deployments(d.Namespace).Get(d.Name)
			same = same && err == nil && reflect.DeepEqual(c.Spec, d.Spec) && reflect.DeepEqual(c.Status, d.Status) && reflect.DeepEqual(c.Annotations, d.Annotations)
		}
		for _, s := range svcs.Items {
			c, err := l.services.Services(s.Namespace).Get(s.Name)
			same = same && err == nil && reflect.DeepEqual(c.Spec, s.Spec) && reflect.DeepEqual(c.Annotations, s.Annotations)
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatal("the target's cache did not catch up with the cluster")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// advance moves the clock one interval and runs one step, once the
// target's cache has what the last step (and the test) wrote.
func (f *fixture) advance() *flaggerv1beta1.CanaryStatus {
	f.t.Helper()
	f.synced()
	f.clock.add(10 * time.Second)
	f.c.Advance(context.Background(), f.key)
	return f.status()
}

func (f *fixture) status() *flaggerv1beta1.CanaryStatus {
	f.t.Helper()
	o, err := f.st.Get(context.Background(), f.key)
	if err != nil {
		f.t.Fatal(err)
	}
	st, _ := o.Status.(*flaggerv1beta1.CanaryStatus)
	if st == nil {
		return &flaggerv1beta1.CanaryStatus{}
	}
	return st
}

func (f *fixture) expect(st *flaggerv1beta1.CanaryStatus, phase string, weight int32) {
	f.t.Helper()
	if st.GetPhase() != phase || st.GetCanaryWeight() != weight {
		info, _ := f.c.Info("default", "reviews")
		var ev []string
		for _, e := range info.Events {
			ev = append(ev, e.Type+" "+e.Message)
		}
		f.t.Fatalf("phase %s weight %d (%s), want %s %d; events:\n  %s", st.GetPhase(), st.GetCanaryWeight(), condition(st), phase, weight, strings.Join(ev, "\n  "))
	}
}

func condition(st *flaggerv1beta1.CanaryStatus) string {
	for _, c := range st.GetConditions() {
		return c.GetMessage()
	}
	return ""
}

func (f *fixture) deployment(name string) *appsv1.Deployment {
	f.t.Helper()
	d, err := f.kube.AppsV1().Deployments("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) service(name string) *corev1.Service {
	f.t.Helper()
	s, err := f.kube.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("Service %s: %v", name, err)
	}
	return s
}

// rolledOut sets the status the Deployment controller would once the
// Deployment's pods all run its template; ready false: none is ready.
func (f *fixture) rolledOut(name string, ready bool) {
	f.t.Helper()
	d := f.deployment(name)
	n := *d.Spec.Replicas
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n}
	if ready {
		d.Status.ReadyReplicas, d.Status.AvailableReplicas = n, n
	}
	if _, err := f.kube.AppsV1().Deployments("default").UpdateStatus(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

// setEnv changes the target's pod template, as `kubectl set env` does.
func (f *fixture) setEnv(name, value string) {
	f.t.Helper()
	d := f.deployment("reviews")
	d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: name, Value: value})
	if _, err := f.kube.AppsV1().Deployments("default").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) weights() [2]int32 {
	f.t.Helper()
	o, err := f.st.Get(context.Background(), config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "reviews"})
	if err != nil {
		f.t.Fatal(err)
	}
	var w [2]int32
	for _, d := range o.Spec.(*networking.VirtualService).GetHttp()[0].GetRoute() {
		switch d.GetDestination().GetHost() {
		case "reviews-primary":
			w[0] = d.GetWeight()
		case "reviews-canary":
			w[1] = d.GetWeight()
		}
	}
	return w
}

func env(d *appsv1.Deployment, name string) string {
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestRelease walks seed 004's release of a Deployment: NAME-primary and
// the Services are made, the apex Service moves to the primary once it
// serves, the target is scaled to zero; a new template is scaled up,
// analysed from 10 to 50 and copied to the primary, which serves alone
// after its rollout; a failing one is rolled back and scaled down.
func TestRelease(t *testing.T) {
	f := newFixture(t, reviewsDeployment("v1"))
	// Bookinfo's own reviews Service: adopted as the apex.
	if _, err := f.kube.CoreV1().Services("default").Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default", Labels: map[string]string{"app": "reviews", "service": "reviews"}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"}, Ports: []corev1.ServicePort{{Name: "http", Port: 9080, Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.rolledOut("reviews", true)
	v1 := TemplateHash(&f.deployment("reviews").Spec.Template)
	f.apply(seedCanary)

	// The primary is created; traffic stays where it is until it serves.
	st := f.advance()
	f.expect(st, canary.PhaseInitializing, 0)
	if !strings.Contains(condition(st), "waiting for the primary") {
		t.Errorf("condition %q", condition(st))
	}
	p := f.deployment("reviews-primary")
	if p.Annotations[AnnotationRevision] != v1 || p.Annotations[canary.AnnotationOwner] != "reviews" ||
		!reflect.DeepEqual(p.Spec.Selector.MatchLabels, map[string]string{"app": "reviews-primary"}) ||
		!reflect.DeepEqual(p.Spec.Template.Labels, map[string]string{"app": "reviews-primary", "version": "v1"}) ||
		env(p, "VERSION") != "v1" || *p.Spec.Replicas != 1 {
		t.Fatalf("primary %+v", p)
	}
	if s := f.service("reviews-primary"); !reflect.DeepEqual(s.Spec.Selector, map[string]string{"app": "reviews-primary"}) ||
		s.Spec.Ports[0].Port != 9080 || s.Spec.Ports[0].Name != "http" || s.Spec.Ports[0].TargetPort != intstr.FromInt32(9080) {
		t.Errorf("primary Service %+v", s.Spec)
	}
	if s := f.service("reviews-canary"); !reflect.DeepEqual(s.Spec.Selector, map[string]string{"app": "reviews"}) {
		t.Errorf("canary Service %+v", s.Spec)
	}
	if s := f.service("reviews"); s.Spec.Selector["app"] != "reviews" {
		t.Errorf("the apex moved before the primary served: %v", s.Spec.Selector)
	}

	f.rolledOut("reviews-primary", true)
	st = f.advance()
	f.expect(st, canary.PhaseInitialized, 0)
	if st.GetLastAppliedSpec() != v1 || f.weights() != [2]int32{100, 0} {
		t.Errorf("status %v, weights %v", st, f.weights())
	}
	apex := f.service("reviews")
	if apex.Spec.Selector["app"] != "reviews-primary" || len(apex.Spec.Ports) != 1 || apex.Labels["service"] != "reviews" ||
		apex.Annotations[canary.AnnotationOwner] != "reviews" {
		t.Errorf("apex Service %+v %+v", apex.ObjectMeta, apex.Spec)
	}
	// Between releases the target runs nothing, a run after the traffic left it.
	if r := *f.deployment("reviews").Spec.Replicas; r != 1 {
		t.Errorf("target scaled to %d with the routing change", r)
	}
	f.expect(f.advance(), canary.PhaseInitialized, 0)
	if r := *f.deployment("reviews").Spec.Replicas; r != 0 {
		t.Fatalf("target at %d replicas between releases", r)
	}
	f.rolledOut("reviews", false)

	// A new template: scaled from zero, analysed once ready.
	f.setEnv("COLOR", "black")
	v2 := TemplateHash(&f.deployment("reviews").Spec.Template)
	st = f.advance()
	f.expect(st, canary.PhaseProgressing, 0)
	if st.GetLastAppliedSpec() != v2 || *f.deployment("reviews").Spec.Replicas != 1 {
		t.Fatalf("status %v, replicas %d", st, *f.deployment("reviews").Spec.Replicas)
	}
	f.rolledOut("reviews", false)
	f.expect(f.advance(), canary.PhaseProgressing, 0) // not ready: halted
	f.rolledOut("reviews", true)
	f.tel.set("reviews", 200, 0)
	for _, w := range []int32{10, 20, 30, 40, 50} {
		st = f.advance()
		f.expect(st, canary.PhaseProgressing, w)
		if f.weights() != [2]int32{100 - w, w} {
			t.Fatalf("weights %v at %d", f.weights(), w)
		}
	}
	st = f.advance()
	f.expect(st, canary.PhasePromoting, 50)
	p = f.deployment("reviews-primary")
	if p.Annotations[AnnotationRevision] != v2 || env(p, "COLOR") != "black" || p.Spec.Template.Labels["app"] != "reviews-primary" {
		t.Fatalf("primary not promoted: %v %v", p.Annotations, p.Spec.Template)
	}
	// The primary rolls its pods over: the traffic stays split meanwhile.
	f.rolledOut("reviews-primary", false)
	f.expect(f.advance(), canary.PhasePromoting, 50)
	f.rolledOut("reviews-primary", true)
	f.expect(f.advance(), canary.PhaseFinalising, 0)
	if f.weights() != [2]int32{100, 0} || *f.deployment("reviews").Spec.Replicas != 1 {
		t.Fatalf("weights %v, target replicas %d", f.weights(), *f.deployment("reviews").Spec.Replicas)
	}
	st = f.advance()
	f.expect(st, canary.PhaseSucceeded, 0)
	if st.GetLastPromotedSpec() != v2 || *f.deployment("reviews").Spec.Replicas != 0 {
		t.Fatalf("status %v, target replicas %d", st, *f.deployment("reviews").Spec.Replicas)
	}
	f.rolledOut("reviews", false)

	// A failing template is rolled back after threshold failed checks.
	f.setEnv("REVIEWS_FAIL_EVERY", "10")
	v3 := TemplateHash(&f.deployment("reviews").Spec.Template)
	f.expect(f.advance(), canary.PhaseProgressing, 0)
	f.rolledOut("reviews", true)
	f.expect(f.advance(), canary.PhaseProgressing, 10)
	f.tel.set("reviews", 200, 20)
	for i := int32(1); i <= 3; i++ {
		st = f.advance()
		f.expect(st, canary.PhaseProgressing, 10)
		if st.GetFailedChecks() != i {
			t.Fatalf("failed checks %d, want %d", st.GetFailedChecks(), i)
		}
	}
	st = f.advance()
	f.expect(st, canary.PhaseFailed, 0)
	if st.GetLastAppliedSpec() != v3 || f.weights() != [2]int32{100, 0} || f.deployment("reviews-primary").Annotations[AnnotationRevision] != v2 {
		t.Fatalf("status %v weights %v", st, f.weights())
	}
	f.expect(f.advance(), canary.PhaseFailed, 0)
	if r := *f.deployment("reviews").Spec.Replicas; r != 0 {
		t.Errorf("failed target at %d replicas", r)
	}
}

// TestProblems: what the target cannot release is said in the status,
// and nothing is written.
func TestProblems(t *testing.T) {
	noApp := reviewsDeployment("v1")
	noApp.Spec.Selector.MatchLabels = map[string]string{"version": "v1"}
	for _, c := range []struct {
		name string
		deps []*appsv1.Deployment
		yaml string
		want string
	}{
		{"missing", nil, seedCanary, "Deployment default/reviews not found"},
		{"no app label", []*appsv1.Deployment{noApp}, seedCanary, "has none of the labels [app name app.kubernetes.io/name]"},
		{"service target", []*appsv1.Deployment{reviewsDeployment("v1")},
			strings.Replace(seedCanary, "{apiVersion: apps/v1, kind: Deployment, name: reviews}", "{apiVersion: v1, kind: Service, name: reviews}", 1),
			"in Kubernetes a Canary releases a Deployment"},
		{"foreign primary", []*appsv1.Deployment{reviewsDeployment("v1"), func() *appsv1.Deployment {
			d := reviewsDeployment("v0")
			d.Name = "reviews-primary"
			return d
		}()}, seedCanary, "Deployment default/reviews-primary exists and is not Canary default/reviews's"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, c.deps...)
			f.apply(c.yaml)
			st := f.advance()
			f.expect(st, canary.PhaseInitializing, 0)
			if !strings.Contains(condition(st), c.want) {
				t.Errorf("condition %q, want %q", condition(st), c.want)
			}
			svcs, _ := f.kube.CoreV1().Services("").List(context.Background(), metav1.ListOptions{})
			if len(svcs.Items) != 0 {
				t.Errorf("Services written: %v", svcs.Items)
			}
		})
	}
}
