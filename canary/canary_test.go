package canary

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/store/bolt"
	"github.com/weft-mesh/weft/telemetry"
	tstore "github.com/weft-mesh/weft/telemetry/store"
)

// fakeClock is the analysis' time, moved by the test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

// fakeTelemetry serves edge series per version of reviews, as the
// destination proxies would report them.
type fakeTelemetry struct {
	mu    sync.Mutex
	stats map[string]tstore.EdgeStat
}

// set makes version v show n requests, errs of them 5xx, all taking ms.
func (f *fakeTelemetry) set(v string, n, errs uint64, ms float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d [20]uint64
	for i, b := range telemetry.DurationBuckets {
		if ms <= b {
			d[i] = n
			break
		}
	}
	f.stats[v] = tstore.EdgeStat{Key: tstore.EdgeKey{Reporter: "destination", Protocol: "http", DestinationApp: "reviews",
		DestinationVersion: v, DestinationNamespace: "default", DestinationWorkload: "reviews-" + v}, Requests: n, Errors: errs, Duration: d}
}

func (f *fakeTelemetry) Edges(time.Duration, time.Time) ([]tstore.EdgeStat, float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []tstore.EdgeStat
	for _, s := range f.stats {
		out = append(out, s)
	}
	return out, 60
}

type fixture struct {
	t         *testing.T
	st        *bolt.Store
	c         *Controller
	clock     *fakeClock
	tel       *fakeTelemetry
	connected sync.Map // node ID -> bool
	key       config.Key
}

const reviewsApp = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {weft.io/service: reviews}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`

// seedCanary is seed 004's Canary with intervals for a test.
const seedCanary = `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: reviews, namespace: default}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: reviews}
  progressDeadlineSeconds: 60
  service: {port: 9080, targetPort: 9080}
  analysis:
    interval: 10s
    threshold: 5
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

func newFixture(t *testing.T, yaml string) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, clock: &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, tel: &fakeTelemetry{stats: map[string]tstore.EdgeStat{}},
		key: config.Key{Kind: config.KindCanary, Namespace: "default", Name: "reviews"}}
	target := &Local{Store: st, Connected: func(id string) bool { v, ok := f.connected.Load(id); return !ok || v.(bool) }}
	f.c = New(Options{Store: st, Target: target, Telemetry: f.tel, Clock: f.clock})
	f.apply(reviewsApp)
	f.instance("v1", "")
	f.apply(yaml)
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

// instance registers an instance of reviews version v, as weft run does
// (with a sidecar node ID when node is set).
func (f *fixture) instance(v, node string) {
	f.t.Helper()
	labels := map[string]string{"app": "reviews", "version": v, config.LabelService: "reviews", config.LabelWorkload: "reviews-" + v}
	o := &config.Object{Kind: config.KindWorkloadEntry, Meta: config.Meta{Namespace: "default", Name: "reviews-" + v + "-abc", Labels: labels},
		Spec: &networking.WorkloadEntry{Address: "127.0.0.1", Ports: map[string]uint32{"http": 20000}, Labels: labels}}
	if node != "" {
		o.Meta.Annotations = map[string]string{config.AnnotationProxy: node}
	}
	if _, err := f.st.Apply(context.Background(), []*config.Object{o}); err != nil {
		f.t.Fatal(err)
	}
}

// advance moves the clock one interval and runs one step.
func (f *fixture) advance() *flaggerv1beta1.CanaryStatus {
	f.t.Helper()
	f.clock.Add(10 * time.Second)
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
		f.t.Fatalf("phase %s weight %d, want %s %d; events: %s", st.GetPhase(), st.GetCanaryWeight(), phase, weight, eventText(info.Events))
	}
	if w := f.vsWeights(); st.GetPhase() != PhaseInitializing && w != [2]int32{100 - weight, weight} && phase != PhasePromoting {
		f.t.Fatalf("VirtualService weights %v, status weight %d", w, weight)
	}
}

func eventText(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("\n  " + e.Type + " " + e.Message)
	}
	return b.String()
}

// vsWeights reads the primary and canary weights of the owned VirtualService.
func (f *fixture) vsWeights() [2]int32 {
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

func (f *fixture) selected(name string) string {
	f.t.Helper()
	o, err := f.st.Get(context.Background(), config.Key{Kind: config.KindServiceEntry, Namespace: "default", Name: name})
	if err != nil {
		f.t.Fatal(err)
	}
	return o.Spec.(*networking.ServiceEntry).GetWorkloadSelector().GetLabels()["version"]
}

// TestPromotion walks seed 004's release: initialization takes the
// VirtualService over with v1 primary, v2 appears, the weight goes 10 to
// 50 under healthy checks, v2 is promoted, and stays the primary.
func TestPromotion(t *testing.T) {
	f := newFixture(t, seedCanary)
	st := f.advance()
	f.expect(st, PhaseInitialized, 0)
	if f.selected("reviews-primary") != "v1" || st.GetLastAppliedSpec() != "v1" {
		t.Fatalf("primary %s, lastAppliedSpec %s", f.selected("reviews-primary"), st.GetLastAppliedSpec())
	}
	f.expect(f.advance(), PhaseInitialized, 0) // nothing new yet

	f.instance("v2", "")
	f.tel.set("v2", 100, 0, 3)
	f.tel.set("v1", 900, 0, 3)
	st = f.advance()
	f.expect(st, PhaseProgressing, 0)
	if st.GetLastAppliedSpec() != "v2" || f.selected("reviews-canary") != "v2" {
		t.Fatalf("canary %s, lastAppliedSpec %s", f.selected("reviews-canary"), st.GetLastAppliedSpec())
	}
	for _, w := range []int32{10, 20, 30, 40, 50} {
		f.expect(f.advance(), PhaseProgressing, w)
	}
	st = f.advance()
	if st.GetPhase() != PhasePromoting || f.selected("reviews-primary") != "v2" {
		t.Fatalf("at max weight: phase %s, primary selects %s", st.GetPhase(), f.selected("reviews-primary"))
	}
	f.expect(f.advance(), PhaseFinalising, 0)
	st = f.advance()
	f.expect(st, PhaseSucceeded, 0)
	if st.GetLastPromotedSpec() != "v2" || st.GetConditions()[0].GetStatus() != "True" || st.GetConditions()[0].GetReason() != "Succeeded" {
		t.Errorf("status %v", st)
	}
	// v1 still runs, retired: no new release.
	f.expect(f.advance(), PhaseSucceeded, 0)
	info, _ := f.c.Info("default", "reviews")
	if !strings.Contains(eventText(info.Events), "Advance reviews.default canary weight 50") || info.Target.Primary != "v2" {
		t.Errorf("events %s, target %+v", eventText(info.Events), info.Target)
	}
	var out strings.Builder
	f.c.WriteMetrics(&out)
	for _, want := range []string{`flagger_canary_status{name="reviews",namespace="default"} 1`, `weft_canary_phase{name="reviews",namespace="default",phase="Succeeded"} 1`,
		`flagger_canary_weight{workload="reviews-primary",namespace="default"} 100`, `flagger_canary_total{namespace="default"} 1`,
		`flagger_canary_metric_analysis{name="reviews",namespace="default",metric="request-success-rate"} 100`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, out.String())
		}
	}

	// A new version is the next release; its status survives a new
	// controller (a restarted control plane).
	f.instance("v3", "")
	f.tel.set("v3", 100, 0, 3)
	f.expect(f.advance(), PhaseProgressing, 0)
	f.expect(f.advance(), PhaseProgressing, 10)
	f.c = New(Options{Store: f.st, Target: f.c.opts.Target, Telemetry: f.tel, Clock: f.clock})
	f.expect(f.advance(), PhaseProgressing, 20)
}

// TestRollback: a canary answering 500 to 10% of requests fails the
// success rate at every check and is rolled back at the threshold; it
// stays failed until resumed.
func TestRollback(t *testing.T) {
	f := newFixture(t, strings.Replace(seedCanary, "threshold: 5", "threshold: 3", 1))
	f.advance()
	f.instance("v2", "")
	f.tel.set("v2", 100, 10, 3)
	f.expect(f.advance(), PhaseProgressing, 0)
	f.expect(f.advance(), PhaseProgressing, 10) // pre-rollout: no metrics yet
	for i := int32(1); i <= 3; i++ {
		st := f.advance()
		f.expect(st, PhaseProgressing, 10)
		if st.GetFailedChecks() != i {
			t.Fatalf("failed checks %d, want %d", st.GetFailedChecks(), i)
		}
	}
	st := f.advance()
	f.expect(st, PhaseFailed, 0)
	if st.GetConditions()[0].GetStatus() != "False" || f.selected("reviews-primary") != "v1" {
		t.Errorf("status %v, primary %s", st, f.selected("reviews-primary"))
	}
	info, _ := f.c.Info("default", "reviews")
	if ev := eventText(info.Events); !strings.Contains(ev, "request-success-rate 90.00 < 99") || !strings.Contains(ev, "failed checks threshold reached 3") {
		t.Errorf("events: %s", ev)
	}
	f.expect(f.advance(), PhaseFailed, 0) // the same version is not retried by itself

	if err := f.c.command(context.Background(), f.key, ActionAbort); err == nil {
		t.Error("abort of a failed canary was taken")
	}
	if err := f.c.command(context.Background(), f.key, ActionResume); err != nil {
		t.Fatal(err)
	}
	f.tel.set("v2", 100, 0, 3)
	f.expect(f.advance(), PhaseProgressing, 0)
	f.expect(f.advance(), PhaseProgressing, 10)
	if err := f.c.command(context.Background(), f.key, ActionAbort); err != nil {
		t.Fatal(err)
	}
	f.expect(f.advance(), PhaseFailed, 0)
}

// TestLatencyAndNoTraffic: +700 ms fails request-duration; no traffic at
// all fails the checks too ("no values found").
func TestLatencyAndNoTraffic(t *testing.T) {
	f := newFixture(t, strings.Replace(seedCanary, "threshold: 5", "threshold: 2", 1))
	f.advance()
	f.instance("v2", "")
	f.tel.set("v2", 100, 0, 703)
	f.advance()
	f.expect(f.advance(), PhaseProgressing, 10)
	f.advance()
	st := f.advance()
	f.expect(st, PhaseProgressing, 10)
	if st.GetFailedChecks() != 2 {
		t.Fatalf("failed checks %d", st.GetFailedChecks())
	}
	info, _ := f.c.Info("default", "reviews")
	last := info.Checks[len(info.Checks)-1]
	if last.Name != "request-duration" || last.OK || *last.Value <= 500 {
		t.Errorf("last check %+v", last)
	}
	f.expect(f.advance(), PhaseFailed, 0)

	g := newFixture(t, strings.Replace(seedCanary, "threshold: 5", "threshold: 1", 1))
	g.advance()
	g.instance("v2", "")
	g.advance()
	g.expect(g.advance(), PhaseProgressing, 10)
	g.expect(g.advance(), PhaseProgressing, 10)
	g.expect(g.advance(), PhaseFailed, 0)
	info, _ = g.c.Info("default", "reviews")
	if !strings.Contains(eventText(info.Events), "no values found") {
		t.Errorf("events: %s", eventText(info.Events))
	}
}

// hookServer answers webhooks with the status in code and keeps the
// payloads it got.
type hookServer struct {
	*httptest.Server
	code     atomic.Int32
	mu       sync.Mutex
	payloads []Payload
}

func newHookServer(t *testing.T, code int) *hookServer {
	h := &hookServer{}
	h.code.Store(int32(code))
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p Payload
		json.NewDecoder(r.Body).Decode(&p)
		h.mu.Lock()
		h.payloads = append(h.payloads, p)
		h.mu.Unlock()
		w.WriteHeader(int(h.code.Load()))
	}))
	t.Cleanup(h.Close)
	return h
}

// TestConfirmGates: a confirm-promotion webhook saying no holds the
// canary in WaitingPromotion until it says yes; a confirm-rollout one
// holds a new revision in Waiting until `weft canary promote`.
func TestConfirmGates(t *testing.T) {
	promo := newHookServer(t, http.StatusForbidden)
	rollout := newHookServer(t, http.StatusForbidden)
	pre := newHookServer(t, http.StatusOK)
	events := newHookServer(t, http.StatusOK)
	f := newFixture(t, strings.Replace(seedCanary, "    metrics:", `    webhooks:
    - {name: events, type: event, url: `+events.URL+`, metadata: {channel: ops}}
    - {name: gate, type: confirm-promotion, url: `+promo.URL+`}
    - {name: start, type: confirm-rollout, url: `+rollout.URL+`}
    - {name: pre, type: pre-rollout, url: `+pre.URL+`, metadata: {cmd: "hey -z 1m -q 10 -c 2 http://reviews-canary.default:9080/"}}
    metrics:`, 1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.c.runEvents(ctx) // event webhooks are sent in the background
	f.advance()
	f.instance("v2", "")
	f.tel.set("v2", 100, 0, 3)
	f.expect(f.advance(), PhaseWaiting, 0)
	f.expect(f.advance(), PhaseWaiting, 0)
	if err := f.c.command(context.Background(), f.key, ActionPromote); err != nil {
		t.Fatal(err)
	}
	f.expect(f.advance(), PhaseProgressing, 0)
	for _, w := range []int32{10, 20, 30, 40, 50} {
		f.expect(f.advance(), PhaseProgressing, w)
	}
	f.expect(f.advance(), PhaseWaitingPromotion, 50)
	f.expect(f.advance(), PhaseWaitingPromotion, 50)
	promo.code.Store(http.StatusOK)
	st := f.advance()
	if st.GetPhase() != PhasePromoting {
		t.Fatalf("phase %s after the gate opened", st.GetPhase())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		events.mu.Lock()
		var got []string
		for _, p := range events.payloads {
			got = append(got, p.Metadata["eventType"]+" "+p.Metadata["eventMessage"]+" "+p.Metadata["channel"])
		}
		events.mu.Unlock()
		all := strings.Join(got, "\n")
		if strings.Contains(all, "Normal Initialization done! reviews.default") && strings.Contains(all, "Warning Halt reviews.default advancement waiting for approval") &&
			strings.Contains(all, " ops") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event webhook got:\n%s", all)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pre.mu.Lock()
	defer pre.mu.Unlock()
	if len(pre.payloads) != 1 {
		t.Fatalf("pre-rollout called %d times", len(pre.payloads))
	}
	p := pre.payloads[0]
	if p.Name != "reviews" || p.Namespace != "default" || p.Phase != PhaseProgressing || p.Checksum == "" || p.Metadata["cmd"] == "" {
		t.Errorf("payload %+v", p)
	}
}

// TestProgressDeadline: a canary whose sidecar never connects is rolled
// back once progressDeadlineSeconds pass without progress.
func TestProgressDeadline(t *testing.T) {
	f := newFixture(t, strings.Replace(seedCanary, "progressDeadlineSeconds: 60", "progressDeadlineSeconds: 25", 1))
	f.advance()
	f.connected.Store("sidecar~v2", false)
	f.instance("v2", "sidecar~v2")
	f.expect(f.advance(), PhaseProgressing, 0)
	f.expect(f.advance(), PhaseProgressing, 0) // 10s: not ready, waiting
	f.expect(f.advance(), PhaseProgressing, 0) // 20s
	st := f.advance()                          // 30s > 25s
	f.expect(st, PhaseFailed, 0)
	info, _ := f.c.Info("default", "reviews")
	if !strings.Contains(eventText(info.Events), "progress deadline exceeded") {
		t.Errorf("events: %s", eventText(info.Events))
	}
}

// TestABTest: matched requests go to the canary for the iterations.
func TestABTest(t *testing.T) {
	f := newFixture(t, strings.Replace(strings.Replace(seedCanary, "    maxWeight: 50\n    stepWeight: 10\n", `    iterations: 2
    match:
    - headers: {x-canary: {exact: insider}}
`, 1), "threshold: 5", "threshold: 1", 1))
	f.advance()
	f.instance("v2", "")
	f.tel.set("v2", 100, 0, 3)
	f.advance()
	st := f.advance()
	if st.GetIterations() != 1 || f.vsWeights() != [2]int32{0, 100} {
		t.Fatalf("iterations %d, weights %v", st.GetIterations(), f.vsWeights())
	}
	o, _ := f.st.Get(context.Background(), config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "reviews"})
	http := o.Spec.(*networking.VirtualService).GetHttp()
	if len(http) != 2 || http[0].GetMatch()[0].GetHeaders()["x-canary"].GetExact() != "insider" || http[1].GetRoute()[0].GetDestination().GetHost() != "reviews-primary" {
		t.Fatalf("A/B routes: %v", http)
	}
	f.advance()
	if st = f.advance(); st.GetPhase() != PhasePromoting {
		t.Fatalf("phase %s", st.GetPhase())
	}
}

func TestStepWeights(t *testing.T) {
	a := &flaggerv1beta1.CanaryAnalysis{StepWeights: []int32{1, 5, 25, 50}}
	var got []int
	for w := 0; w < maxWeight(a); w += nextStepWeight(a, w) {
		got = append(got, w+nextStepWeight(a, w))
	}
	if fmt.Sprint(got) != "[1 5 25 50]" {
		t.Errorf("steps %v", got)
	}
	if maxWeight(&flaggerv1beta1.CanaryAnalysis{StepWeight: 10}) != 100 || maxWeight(&flaggerv1beta1.CanaryAnalysis{StepWeight: 10, MaxWeight: 50}) != 50 {
		t.Error("maxWeight defaults")
	}
}

// TestGuard refuses user edits of what a Canary owns, while it exists.
func TestGuard(t *testing.T) {
	f := newFixture(t, seedCanary)
	f.advance()
	ctx := context.Background()
	vs, _ := f.st.Get(ctx, config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "reviews"})
	refusal, err := Guard(ctx, f.st, []*config.Object{vs}, nil)
	if err != nil || !strings.Contains(refusal, "VirtualService default/reviews is managed by Canary default/reviews") {
		t.Errorf("edit: %q %v", refusal, err)
	}
	refusal, _ = Guard(ctx, f.st, nil, []config.Key{{Kind: config.KindServiceEntry, Namespace: "default", Name: "reviews-primary"}})
	if !strings.Contains(refusal, "cannot be deleted") {
		t.Errorf("delete: %q", refusal)
	}
	if refusal, _ = Guard(ctx, f.st, nil, []config.Key{{Kind: config.KindServiceEntry, Namespace: "default", Name: "reviews"}}); refusal != "" {
		t.Errorf("the apex service is the user's: %q", refusal)
	}
	other, _ := config.Decode("x", strings.NewReader(strings.Replace(seedCanary, "name: reviews, namespace", "name: reviews2, namespace", 1)))
	if refusal, _ = Guard(ctx, f.st, other, nil); !strings.Contains(refusal, "already releases default/reviews") {
		t.Errorf("second canary: %q", refusal)
	}
	if _, err := f.st.Delete(ctx, []config.Key{f.key}); err != nil {
		t.Fatal(err)
	}
	if refusal, _ = Guard(ctx, f.st, []*config.Object{vs}, nil); refusal != "" {
		t.Errorf("after the Canary is deleted: %q", refusal)
	}
}
