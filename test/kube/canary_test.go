package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/canary"
	canarykube "github.com/weft-mesh/weft/canary/kube"
	"github.com/weft-mesh/weft/demo/bookinfo"
	"github.com/weft-mesh/weft/kube/kubetest"
)

// Seed 004's canary exercise runs where the seed runs it: namespace
// default, whose name its Canary YAML carries (and its load test's URL,
// flagger-loadtester.default). The test labels default for injection as
// the workshop's Istio install does, deploys Bookinfo there with a single
// reviews Deployment (demo/bookinfo/kube/reviews.yaml), reaches its
// productpage through the ingress gateway as host canaryHost (the main
// Bookinfo has the gateway's "*"), and removes all of it afterwards.
const (
	seedNamespace = "default"
	seedCanary    = bookinfoDir + "reviews-canary.yaml"
	reviewsKube   = bookinfoDir + "kube/reviews.yaml"
	canaryHost    = "canary.bookinfo"
)

// The seed's Bookinfo: bookinfo.yaml less its reviews-vN Deployments (the
// seed deletes them), plus reviews.yaml.
var seedDeployments = []string{"details-v1", "ratings-v1", "productpage-v1", "reviews"}

const canaryEdge = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: canary-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [` + canaryHost + `]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: canary-bookinfo}
spec:
  hosts: [` + canaryHost + `]
  gateways: [canary-gateway]
  http:
  - match: [{uri: {exact: /productpage}}]
    route: [{destination: {host: productpage, port: {number: 9080}}}]
`

// seconds is the seed's analysis with intervals of seconds (its 1m
// interval would make the test take minutes per step).
const seconds = `{"spec":{"analysis":{"interval":"2s","metrics":[
 {"name":"request-success-rate","thresholdRange":{"min":99},"interval":"10s"},
 {"name":"request-duration","thresholdRange":{"max":500},"interval":"10s"}]}}}`

var (
	canaryGVR = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}
	vsGVR     = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
)

// TestCanary runs seed 004 on Kubernetes: the seed's Canary, applied
// unchanged with kubectl, makes reviews-primary serve; a new pod template
// (VERSION=v2) is analysed on live telemetry through weights 10 to 50 and
// promoted (reviews-primary runs v2, reviews is scaled to zero); a broken
// build (REVIEWS_FAIL_EVERY=10) is rolled back after the threshold of
// failed checks. Under 100 pages a second through the gateway all along,
// no page fails but for the broken build's own failures.
func TestCanary(t *testing.T) {
	m := meshFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	m.cleanSeedNamespace(t)
	t.Cleanup(func() { m.cleanSeedNamespace(t) })
	m.deploySeedBookinfo(t)
	t.Logf("the seed's Bookinfo runs in %s (%s)", seedNamespace, time.Since(start).Round(time.Second))
	eventually(t, time.Minute, "whole pages from reviews through the gateway", func() error {
		_, err := m.seedPage(ctx)
		return err
	})

	// The seed's Canary, unchanged: the primary is made at once.
	applied := time.Now()
	if out := m.mustKubectl(t, "", "apply", "-f", seedCanary); !strings.Contains(out, "canary.flagger.app/reviews created") {
		t.Fatalf("kubectl apply: %s", out)
	}
	kubetest.Poll(t, time.Minute, "Deployment reviews-primary", func() bool {
		_, err := m.c.Kube.AppsV1().Deployments(seedNamespace).Get(ctx, "reviews-primary", metav1.GetOptions{})
		return err == nil
	})
	m.mustKubectl(t, "", "patch", "canary", "reviews", "-n", seedNamespace, "--type", "merge", "-p", seconds)
	st := m.waitCanary(t, canary.PhaseInitialized, "", 2*time.Minute)
	v1 := st.LastAppliedSpec
	t.Logf("Initialized %s after kubectl apply", time.Since(applied).Round(100*time.Millisecond))
	eventually(t, time.Minute, "reviews-primary serving and reviews scaled to zero", func() error {
		p, err := m.seedPage(ctx)
		if err != nil || p.workload != "reviews-primary" || p.version != "v1" {
			return fmt.Errorf("%+v %v", p, err)
		}
		return m.scaledToZero(ctx)
	})
	for svc, selector := range map[string]string{"reviews": "reviews-primary", "reviews-primary": "reviews-primary", "reviews-canary": "reviews"} {
		s, err := m.c.Kube.CoreV1().Services(seedNamespace).Get(ctx, svc, metav1.GetOptions{})
		if err != nil || s.Spec.Selector["app"] != selector || s.Spec.ClusterIP == "" || s.Spec.Ports[0].Port != 9080 {
			t.Errorf("Service %s: %v %v", svc, s, err)
		}
	}

	l := m.startSeedLoad(rps)
	defer l.cancel() // a failed wait below ends the load too
	eventually(t, 30*time.Second, "pages served under load before the release", func() error {
		if n := l.byWorkload()["reviews-primary v1"]; n < 2*rps {
			return fmt.Errorf("%d pages from reviews-primary v1", n)
		}
		return nil
	})

	// A new revision, promoted step by step.
	released := time.Now()
	m.mustKubectl(t, "", "set", "env", "-n", seedNamespace, "deployment/reviews", "VERSION=v2")
	st = m.waitCanary(t, canary.PhaseSucceeded, v1, 4*time.Minute)
	t.Logf("VERSION=v2 Succeeded %s after kubectl set env", time.Since(released).Round(100*time.Millisecond))
	info := m.canaryInfo(t, ctx)
	if got := fmt.Sprint(weights(info)); got != "[10 20 30 40 50]" {
		t.Errorf("weights %s, want [10 20 30 40 50]; events:%s", got, events(info))
	}
	if st.LastPromotedSpec == v1 || st.LastPromotedSpec != st.LastAppliedSpec {
		t.Errorf("status after the promotion %+v", st)
	}
	live := false
	for _, c := range info.Checks {
		live = live || (c.Kind == "metric" && c.Name == "request-success-rate" && c.Value != nil && *c.Value == 100)
	}
	if !live {
		t.Errorf("no request-success-rate of 100 from live telemetry among the checks: %+v", info.Checks)
	}
	prim, err := m.c.Kube.AppsV1().Deployments(seedNamespace).Get(ctx, "reviews-primary", metav1.GetOptions{})
	if err != nil || prim.Annotations[canarykube.AnnotationRevision] != st.LastPromotedSpec || !hasEnv(prim.Spec.Template.Spec.Containers[0].Env, "VERSION", "v2") {
		t.Errorf("reviews-primary after the promotion: %v %v", prim, err)
	}
	if w := m.routeWeights(t, ctx); w["reviews-primary"] != 100 || w["reviews-canary"] != 0 || len(w) != 2 {
		t.Errorf("VirtualService reviews after the promotion routes %v, want reviews-primary 100, reviews-canary 0", w)
	}
	eventually(t, time.Minute, "reviews-primary serving v2 and reviews scaled to zero", func() error {
		return m.settleSeed(ctx, "reviews-primary", "v2")
	})
	if out := m.mustKubectl(t, "", "get", "canary", "-n", seedNamespace); !strings.Contains(out, "Succeeded") {
		t.Errorf("kubectl get canary:\n%s", out)
	}
	promoted := l.byWorkload()

	// A broken build, rolled back.
	v2 := st.LastAppliedSpec
	released = time.Now()
	m.mustKubectl(t, "", "set", "env", "-n", seedNamespace, "deployment/reviews", bookinfo.EnvReviewsFailEvery+"=10")
	st = m.waitCanary(t, canary.PhaseFailed, v2, 4*time.Minute)
	t.Logf("%s=10 Failed %s after kubectl set env", bookinfo.EnvReviewsFailEvery, time.Since(released).Round(100*time.Millisecond))
	info = m.canaryInfo(t, ctx)
	if st.FailedChecks < 5 || st.CanaryWeight != 0 || !strings.Contains(events(info), "failed checks threshold reached") {
		t.Errorf("status after the rollback %+v; events:%s", st, events(info))
	}
	// The broken build was caught by its success rate, on live telemetry.
	var rates []string
	for _, c := range info.Checks {
		if c.Kind == "metric" && c.Name == "request-success-rate" && !c.OK && c.Value != nil && *c.Value < 99 {
			rates = append(rates, strconv.FormatFloat(*c.Value, 'f', 1, 64))
		}
	}
	if len(rates) == 0 {
		t.Errorf("no failed request-success-rate check with a value under 99 among the checks: %+v", info.Checks)
	}
	t.Logf("failed request-success-rate checks of the broken build: %s%%", strings.Join(rates, "%, "))
	if st.LastPromotedSpec != v2 {
		t.Errorf("lastPromotedSpec after the rollback %q, want the promoted %q", st.LastPromotedSpec, v2)
	}
	if p, err := m.c.Kube.AppsV1().Deployments(seedNamespace).Get(ctx, "reviews-primary", metav1.GetOptions{}); err != nil ||
		p.Annotations[canarykube.AnnotationRevision] != v2 || p.Generation != prim.Generation ||
		hasEnvName(p.Spec.Template.Spec.Containers[0].Env, bookinfo.EnvReviewsFailEvery) {
		t.Errorf("the rollback changed reviews-primary: %v %v", p, err)
	}
	if w := m.routeWeights(t, ctx); w["reviews-primary"] != 100 || w["reviews-canary"] != 0 || len(w) != 2 {
		t.Errorf("VirtualService reviews after the rollback routes %v, want reviews-primary 100, reviews-canary 0", w)
	}
	eventually(t, time.Minute, "reviews-primary alone serving v2 and reviews scaled to zero", func() error {
		return m.settleSeed(ctx, "reviews-primary", "v2")
	})
	// The load keeps going a while on the primary alone.
	rolledBack := l.byWorkload()["reviews-primary v2"]
	eventually(t, 30*time.Second, "pages under load after the rollback", func() error {
		if n := l.byWorkload()["reviews-primary v2"] - rolledBack; n < 2*rps {
			return fmt.Errorf("%d pages from reviews-primary v2 since the rollback", n)
		}
		return nil
	})
	s := l.stop()
	after := l.byWorkload()
	t.Logf("pages by the reviews that served them: %v after the promotion, %v in all; %d failed by the broken build itself",
		promoted, after, l.injected.Load())
	s.check(t, "the canary's promotion and rollback")
	if after["reviews v2"] <= promoted["reviews v2"] {
		t.Errorf("no page came from the canary while it was analysed: %v then %v", promoted, after)
	}
	if t.Failed() {
		t.Logf("requests that did not answer 200, by the proxies' metrics:\n%s", m.failedSeriesIn(ctx, seedNamespace))
	}

	// weft owns the routing while the Canary exists.
	_, errOut, ok := kubetest.Kubectl(t, "", "patch", "virtualservice", "reviews", "-n", seedNamespace, "--type", "merge", "-p", `{"spec":{"hosts":["reviews","other"]}}`)
	if ok || !strings.Contains(errOut, "managed by Canary default/reviews") {
		t.Errorf("a user's edit of the Canary's VirtualService: %v %s", ok, errOut)
	}
	_, errOut, ok = kubetest.Kubectl(t, "", "delete", "destinationrule", "reviews-canary", "-n", seedNamespace)
	if ok || !strings.Contains(errOut, "managed by Canary default/reviews") {
		t.Errorf("a user's delete of the Canary's DestinationRule: %v %s", ok, errOut)
	}
	t.Logf("the canary test took %s", time.Since(start).Round(time.Second))
}

// canaryState is the part of the Canary's status the test follows, as
// Flagger writes it.
type canaryState struct {
	Phase            string `json:"phase"`
	CanaryWeight     int    `json:"canaryWeight"`
	FailedChecks     int    `json:"failedChecks"`
	Iterations       int    `json:"iterations"`
	LastAppliedSpec  string `json:"lastAppliedSpec"`
	LastPromotedSpec string `json:"lastPromotedSpec"`
	LastTransition   string `json:"lastTransitionTime"`
	// ObservedGeneration is the Canary generation the status is about.
	ObservedGeneration int64 `json:"observedGeneration"`
	Conditions         []struct {
		Type, Status, Reason, Message string
	} `json:"conditions"`
}

// waitCanary waits for the Canary's status phase; a release of another
// revision than before (the one analysed when the wait began) that ends
// in the other final phase fails the test at once.
func (m *mesh) waitCanary(t *testing.T, phase, before string, within time.Duration) canaryState {
	t.Helper()
	var st canaryState
	eventually(t, within, "Canary reviews "+phase, func() error {
		u, err := m.c.Dynamic.Resource(canaryGVR).Namespace(seedNamespace).Get(context.Background(), "reviews", metav1.GetOptions{})
		if err != nil {
			return err
		}
		js, _ := json.Marshal(u.Object["status"])
		st = canaryState{}
		if err := json.Unmarshal(js, &st); err != nil {
			return err
		}
		if st.Phase != phase {
			if (st.Phase == canary.PhaseSucceeded || st.Phase == canary.PhaseFailed) && st.LastAppliedSpec != before && before != "" {
				t.Fatalf("the release ended %s, want %s: %s", st.Phase, phase, js)
			}
			msg := ""
			if len(st.Conditions) > 0 {
				msg = st.Conditions[0].Message
			}
			return fmt.Errorf("phase %s, weight %d, failed checks %d: %s", st.Phase, st.CanaryWeight, st.FailedChecks, msg)
		}
		if st.LastTransition == "" || len(st.Conditions) != 1 || st.Conditions[0].Type != "Promoted" {
			return fmt.Errorf("status without Flagger's fields: %s", js)
		}
		if st.ObservedGeneration != u.GetGeneration() {
			return fmt.Errorf("observedGeneration %d, the Canary's generation %d", st.ObservedGeneration, u.GetGeneration())
		}
		want := map[string]string{canary.PhaseInitialized: "True", canary.PhaseSucceeded: "True", canary.PhaseFailed: "False"}[phase]
		if want != "" && st.Conditions[0].Status != want {
			return fmt.Errorf("condition Promoted %s in phase %s, want %s: %s", st.Conditions[0].Status, phase, want, js)
		}
		return nil
	})
	return st
}

// canaryInfo is the analysis' record (events, checks) from the leader.
func (m *mesh) canaryInfo(t *testing.T, ctx context.Context) canary.Info {
	t.Helper()
	var resp api.CanaryResponse
	eventually(t, 30*time.Second, "the canary's record on the leader", func() error {
		leader, err := m.leader(ctx)
		if err != nil {
			return err
		}
		rs, err := m.replicas(ctx)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.name == leader {
				return m.apiGet(ctx, r, "/api/v1/canaries/"+seedNamespace+"/reviews", &resp)
			}
		}
		return fmt.Errorf("leader %s not running", leader)
	})
	return resp.Info
}

var weightEvent = regexp.MustCompile(`canary weight (\d+)$`)

// weights are the canary weights the events say were set, in order.
func weights(info canary.Info) []int {
	var ws []int
	for _, e := range info.Events {
		if mm := weightEvent.FindStringSubmatch(e.Message); mm != nil {
			w, _ := strconv.Atoi(mm[1])
			ws = append(ws, w)
		}
	}
	return ws
}

func events(info canary.Info) string {
	var b strings.Builder
	for _, e := range info.Events {
		fmt.Fprintf(&b, "\n  %s %s (x%d)", e.Type, e.Message, e.Count)
	}
	return b.String()
}

// seedPageInfo is which reviews served a page: its Deployment (from the
// pod's name) and version (from the stars).
type seedPageInfo struct{ workload, version string }

var seedServedBy = regexp.MustCompile(`Reviews served by: (reviews(?:-primary)?)-[a-z0-9]+-[a-z0-9]+<`)

// seedPage loads the seed's product page.
func (m *mesh) seedPage(ctx context.Context) (seedPageInfo, error) {
	body, err := m.fetchPage(ctx, canaryHost, "")
	if err != nil {
		return seedPageInfo{}, err
	}
	return seedPageOf(body)
}

func seedPageOf(body string) (seedPageInfo, error) {
	mm := seedServedBy.FindStringSubmatch(body)
	if mm == nil {
		return seedPageInfo{}, fmt.Errorf("no reviews on the page: %.300s", body)
	}
	p := seedPageInfo{workload: mm[1], version: "v1"}
	switch {
	case strings.Contains(body, "color: black"):
		p.version = "v2"
	case strings.Contains(body, "color: red"):
		p.version = "v3"
	}
	return p, nil
}

// reviewsCause is productpage's hidden account of a failed reviews call
// (each attempt's cause), "" if the page has none.
func reviewsCause(body string) string {
	_, cause, ok := strings.Cut(body, `<p class="error-cause" hidden>`)
	if !ok {
		return ""
	}
	cause, _, _ = strings.Cut(cause, "</p>")
	return html.UnescapeString(cause)
}

// injectedOnly says whether a failed page failed by the broken build
// alone: reviews failed, and every attempt's cause is its 500.
func injectedOnly(body string) bool {
	if !strings.Contains(body, bookinfo.ReviewsError) {
		return false
	}
	cause := reviewsCause(body)
	_, attempts, _ := strings.Cut(cause, ": ") // "URL: attempt; attempt"
	for _, a := range strings.Split(attempts, "; ") {
		if !strings.HasPrefix(a, "answered 500") || !strings.Contains(a, bookinfo.InjectedFailure) {
			return false
		}
	}
	return attempts != ""
}

// seedLoad is load on the seed's product page, counting pages by the
// reviews that served them and the broken build's own failures apart.
type seedLoad struct {
	*load
	injected atomic.Int64
	mu       sync.Mutex
	served   map[string]int
}

func (m *mesh) startSeedLoad(rps int) *seedLoad {
	l := &seedLoad{served: map[string]int{}}
	l.load = startLoadOf(rps, func(ctx context.Context) error {
		body, err := m.fetchPage(ctx, canaryHost, "")
		if err != nil {
			if injectedOnly(body) {
				l.injected.Add(1)
				return nil
			}
			if cause := reviewsCause(body); cause != "" {
				return fmt.Errorf("%w (%s)", err, cause)
			}
			return err
		}
		p, err := seedPageOf(body)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.served[p.workload+" "+p.version]++
		l.mu.Unlock()
		return nil
	})
	return l
}

func (l *seedLoad) byWorkload() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.served)
}

// settleSeed checks that 20 pages in a row come from workload at version
// and that the target runs no pods.
func (m *mesh) settleSeed(ctx context.Context, workload, version string) error {
	for i := 0; i < 20; i++ {
		p, err := m.seedPage(ctx)
		if err != nil {
			return err
		}
		if p.workload != workload || p.version != version {
			return fmt.Errorf("page %d from %+v", i, p)
		}
	}
	return m.scaledToZero(ctx)
}

// scaledToZero checks that Deployment reviews wants and runs no pods.
func (m *mesh) scaledToZero(ctx context.Context) error {
	d, err := m.c.Kube.AppsV1().Deployments(seedNamespace).Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		return err
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 0 {
		return fmt.Errorf("reviews wants %v replicas", d.Spec.Replicas)
	}
	pods, err := m.c.Kube.CoreV1().Pods(seedNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=reviews"})
	if err != nil {
		return err
	}
	if n := len(pods.Items); n > 0 {
		return fmt.Errorf("%d reviews pods left", n)
	}
	return nil
}

// routeWeights is the weight of each destination host of the Canary's
// VirtualService reviews (its first HTTP route, as weft writes it).
func (m *mesh) routeWeights(t *testing.T, ctx context.Context) map[string]int64 {
	t.Helper()
	u, err := m.c.Dynamic.Resource(vsGVR).Namespace(seedNamespace).Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("VirtualService reviews: %v", err)
	}
	http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	if len(http) == 0 {
		t.Fatalf("VirtualService reviews has no HTTP route: %v", u.Object["spec"])
	}
	routes, _, _ := unstructured.NestedSlice(http[0].(map[string]any), "route")
	w := map[string]int64{}
	for _, r := range routes {
		host, _, _ := unstructured.NestedString(r.(map[string]any), "destination", "host")
		weight, _, _ := unstructured.NestedInt64(r.(map[string]any), "weight")
		w[host] = weight
	}
	return w
}

func hasEnvName(env []corev1.EnvVar, name string) bool {
	for _, e := range env {
		if e.Name == name {
			return true
		}
	}
	return false
}

func hasEnv(env []corev1.EnvVar, name, value string) bool {
	for _, e := range env {
		if e.Name == name && e.Value == value {
			return true
		}
	}
	return false
}

// deploySeedBookinfo labels the seed's namespace for injection and
// deploys Bookinfo there as the seed has it, with the gateway route.
func (m *mesh) deploySeedBookinfo(t *testing.T) {
	t.Helper()
	m.mustKubectl(t, "", "label", "namespace", seedNamespace, "istio-injection=enabled", "--overwrite")
	all, err := os.ReadFile(bookinfoKube)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, doc := range strings.Split(string(all), "\n---\n") {
		var meta struct {
			Kind     string
			Metadata struct{ Name string }
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		if meta.Kind == "Deployment" && strings.HasPrefix(meta.Metadata.Name, "reviews-") {
			continue // the seed deletes them
		}
		docs = append(docs, doc)
	}
	reviews, err := os.ReadFile(reviewsKube)
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, string(reviews))
	yamlText := strings.ReplaceAll(strings.Join(docs, "\n---\n"), bookinfoImage, "image: "+m.image)
	m.mustKubectl(t, yamlText, "apply", "-n", seedNamespace, "-f", "-")
	m.mustKubectl(t, canaryEdge, "apply", "-n", seedNamespace, "-f", "-")
	for _, d := range seedDeployments {
		if _, err := m.kubectl("", "rollout", "status", "-n", seedNamespace, "deployment/"+d, "--timeout=3m"); err != nil {
			t.Fatal(err)
		}
	}
}

// cleanSeedNamespace removes what the canary test made in the seed's
// namespace (a killed run's too) and its injection label, and waits for
// the pods to be gone.
func (m *mesh) cleanSeedNamespace(t *testing.T) {
	t.Helper()
	ns := seedNamespace
	// The Canary first: its analysis stops and its objects are the user's again.
	if _, err := m.kubectl("", "delete", "canary", "reviews", "-n", ns, "--ignore-not-found", "--wait"); err != nil {
		t.Error(err)
	}
	objs := []string{"deployment/reviews", "deployment/reviews-primary", "deployment/productpage-v1", "deployment/details-v1", "deployment/ratings-v1",
		"service/reviews", "service/reviews-primary", "service/reviews-canary", "service/productpage", "service/details", "service/ratings",
		"serviceaccount/bookinfo-reviews", "serviceaccount/bookinfo-productpage", "serviceaccount/bookinfo-details", "serviceaccount/bookinfo-ratings",
		"gateway/canary-gateway", "virtualservice/canary-bookinfo", "virtualservice/reviews", "destinationrule/reviews-primary", "destinationrule/reviews-canary"}
	args := append([]string{"delete", "-n", ns, "--ignore-not-found", "--cascade=foreground", "--wait", "--timeout=3m"}, objs...)
	if _, err := m.kubectl("", args...); err != nil {
		t.Error(err)
	}
	if _, err := m.kubectl("", "label", "namespace", ns, "istio-injection-"); err != nil && !strings.Contains(err.Error(), "not found") {
		t.Error(err)
	}
	kubetest.Poll(t, 3*time.Minute, "the seed's pods gone", func() bool {
		pods, err := m.c.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0
	})
}
