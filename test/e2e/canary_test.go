package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apiclient "github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/canary"
	"github.com/weft-mesh/weft/loadgen"
)

// The canary scenarios release the echo app through the ingress gateway:
// requests for host echo.example go to the Canary's VirtualService.
const canaryGateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
`

// echoCanary is seed 004's Canary for the echo app, with intervals of
// seconds; extra is appended to the analysis (indented four spaces).
func echoCanary(threshold int, extra string) string {
	return fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: echo}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: echo}
  progressDeadlineSeconds: 60
  service:
    port: 8080
    hosts: [echo.example]
    gateways: [edge]
  analysis:
    interval: 2s
    threshold: %d
    maxWeight: 50
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 4s
    - name: request-duration
      thresholdRange: {max: 500}
      interval: 4s
%s`, threshold, extra)
}

// echoRelease runs a mesh with echo v1 behind the gateway and applies
// the Canary yaml for it, returning once it is Initialized.
func echoRelease(t *testing.T, yaml string) *mesh {
	t.Helper()
	m := upMesh(t, "")
	m.apply("default", canaryGateway)
	m.echo("default", "echo", "v1")
	m.apply("default", yaml)
	m.waitPhase("echo", canary.PhaseInitialized, 30*time.Second)
	return m
}

// canaryState is the part of a Canary's status the tests follow.
type canaryState struct {
	Phase        string
	CanaryWeight int
	FailedChecks int
	LastApplied  string `json:"lastAppliedSpec"`
	LastPromoted string `json:"lastPromotedSpec"`
}

func (m *mesh) canaryStatus(name string) (canaryState, error) {
	var o struct{ Status canaryState }
	err := jsonGet("http://"+m.api+"/api/v1/objects/Canary/default/"+name, &o)
	return o.Status, err
}

func (m *mesh) canaryInfo(name string) canary.Info {
	m.t.Helper()
	var resp apiclient.CanaryResponse
	if err := jsonGet("http://"+m.api+"/api/v1/canaries/default/"+name, &resp); err != nil {
		m.t.Fatal(err)
	}
	return resp.Info
}

// waitPhase waits for the canary to reach phase, failing early if it
// reaches a final phase that is not it.
func (m *mesh) waitPhase(name, phase string, within time.Duration) canaryState {
	m.t.Helper()
	var st canaryState
	eventually(m.t, within, "canary "+name+" in phase "+phase, func() error {
		var err error
		if st, err = m.canaryStatus(name); err != nil {
			return err
		}
		if st.Phase != phase && (st.Phase == canary.PhaseSucceeded || st.Phase == canary.PhaseFailed) && phase != canary.PhaseInitialized {
			m.t.Fatalf("canary %s ended %s, want %s; events:%s", name, st.Phase, phase, eventLines(m.canaryInfo(name)))
		}
		if st.Phase != phase {
			return fmt.Errorf("phase %s, weight %d, failed checks %d", st.Phase, st.CanaryWeight, st.FailedChecks)
		}
		return nil
	})
	return st
}

func eventLines(info canary.Info) string {
	var b strings.Builder
	for _, e := range info.Events {
		fmt.Fprintf(&b, "\n  %s %s (x%d)", e.Type, e.Message, e.Count)
	}
	return b.String()
}

// canaryLoad is steady load, counting the answers per version and the
// failures that are not the canary's injected ones.
type canaryLoad struct {
	cancel   context.CancelFunc
	done     chan loadgen.Summary
	mu       sync.Mutex
	versions map[string]int
	injected int
	other    []string
}

// classify reads one answer: the version that gave it, or that it is a
// failure the test injected on purpose; anything else failed.
type classify func(status int, line string) (version string, injected bool)

var echoVersion = regexp.MustCompile(`^echo (v\d+) from`)

// echoAnswer: echo answers "echo VERSION from 'INSTANCE': N"; its
// injected failures say "failing with".
func echoAnswer(status int, line string) (string, bool) {
	if m := echoVersion.FindStringSubmatch(line); status == 200 && m != nil {
		return m[1], false
	}
	return "", status == 500 && strings.Contains(line, "failing with 500")
}

// startCanaryLoad loads echo through the gateway for host echo.example.
func startCanaryLoad(t *testing.T, m *mesh, qps float64) *canaryLoad {
	t.Helper()
	// Before the Canary took the routing over there was no route for
	// echo.example at all: the load counts from the moment the gateway
	// has it (ten answers from v1 in a row).
	eventually(t, 30*time.Second, "the gateway routes echo.example", func() error {
		for i := 0; i < 10; i++ {
			if code, body, err := get(m.gateway, "echo.example", "/", nil); err != nil || code != 200 || !strings.HasPrefix(body, "echo v1") {
				return fmt.Errorf("%d %q %v", code, body, err)
			}
		}
		return nil
	})
	return startLoadClassified(t, "http://"+m.gateway+"/", "echo.example", qps, echoAnswer)
}

// startLoadClassified sends qps requests a second to url (at most four
// minutes' worth) until finish.
func startLoadClassified(t *testing.T, url, host string, qps float64, what classify) *canaryLoad {
	l := &canaryLoad{done: make(chan loadgen.Summary, 1), versions: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	o := loadgen.Options{URL: url, Host: host, QPS: qps, Duration: 4 * time.Minute, Concurrency: 32, Timeout: 10 * time.Second,
		OnResult: func(r loadgen.Result, line string) {
			l.mu.Lock()
			defer l.mu.Unlock()
			switch v, injected := what(r.Status, line); {
			case v != "":
				l.versions[v]++
			case injected:
				l.injected++
			case len(l.other) < 20:
				l.other = append(l.other, fmt.Sprintf("%s %d %q %s", time.Now().Format("15:04:05.000"), r.Status, line, r.Err))
			default:
				l.other[19] = "... and more"
			}
		}}
	go func() {
		s, err := loadgen.Run(ctx, o)
		if err != nil {
			t.Error(err)
		}
		l.done <- s
	}()
	t.Cleanup(cancel)
	return l
}

// counts returns the answers per version so far.
func (l *canaryLoad) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := map[string]int{}
	for k, v := range l.versions {
		c[k] = v
	}
	return c
}

// finish stops the load and fails the test on any failure the switching
// caused, reporting the rate reached.
func (l *canaryLoad) finish(t *testing.T, minRate float64) {
	t.Helper()
	l.cancel()
	s := <-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	rate := float64(s.Total) / s.Elapsed.Seconds()
	t.Logf("load: %d requests in %s (%.0f/s), by version %v, %d injected failures", s.Total, s.Elapsed.Round(time.Millisecond), rate, l.versions, l.injected)
	if len(l.other) > 0 {
		t.Errorf("%d requests failed, not by the canary's injected faults:\n%s", s.Failed-l.injected, strings.Join(l.other, "\n"))
	}
	if rate < minRate {
		t.Errorf("the load ran at %.0f requests/s, under the %.0f the test needs", rate, minRate)
	}
}

// advances returns the canary weights the events say were set, in order.
func advances(info canary.Info) []int {
	re := regexp.MustCompile(`canary weight (\d+)$`)
	var ws []int
	for _, e := range info.Events {
		if m := re.FindStringSubmatch(e.Message); m != nil {
			w, _ := strconv.Atoi(m[1])
			ws = append(ws, w)
		}
	}
	return ws
}

// TestCanaryPromotion: seed 004's Canary (intervals of seconds) promotes
// a healthy new version step by step, 10 to 50, judged on live telemetry,
// with no request failing from the weight changes at 100+ requests/s.
func TestCanaryPromotion(t *testing.T) {
	m := upMesh(t, "")
	// The seed's own YAML applies unchanged (no reviews runs here: it
	// waits, saying why).
	b, err := os.ReadFile("../../demo/bookinfo/reviews-canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out := m.apply("default", string(b)); !strings.Contains(out, "canary.flagger.app/reviews created") {
		t.Fatalf("apply: %s", out)
	}
	eventually(t, 20*time.Second, "the seed's Canary waits for reviews", func() error {
		if st, _ := m.canaryStatus("reviews"); st.Phase != canary.PhaseInitializing {
			return fmt.Errorf("phase %q", st.Phase)
		}
		if info := m.canaryInfo("reviews"); !strings.Contains(info.Target.Problem, "no service reviews") {
			return fmt.Errorf("problem %q", info.Target.Problem)
		}
		return nil
	})
	m.weft("", "delete", "canary", "reviews")

	m.apply("default", canaryGateway)
	m.echo("default", "echo", "v1")
	m.apply("default", echoCanary(5, ""))
	m.waitPhase("echo", canary.PhaseInitialized, 30*time.Second)
	if out, _ := m.weft("", "get", "canaries"); !strings.Contains(out, "Initialized") {
		t.Errorf("get canaries:\n%s", out)
	}
	load := startCanaryLoad(t, m, 120)
	eventually(t, 20*time.Second, "echo v1 answers through the Canary's route", func() error {
		if load.counts()["v1"] < 50 {
			return fmt.Errorf("answers %v", load.counts())
		}
		return nil
	})

	m.echo("default", "echo", "v2")
	st := m.waitPhase("echo", canary.PhaseSucceeded, 90*time.Second)
	load.finish(t, 100)
	info := m.canaryInfo("echo")
	if got := fmt.Sprint(advances(info)); got != "[10 20 30 40 50]" {
		t.Errorf("weights %s, want [10 20 30 40 50]; events:%s", got, eventLines(info))
	}
	if st.LastPromoted != "v2" || info.Target.Primary != "v2" || !strings.Contains(eventLines(info), "Promotion completed!") {
		t.Errorf("status %+v, target %+v", st, info.Target)
	}
	live := false
	for _, c := range info.Checks {
		if c.Kind == "metric" && c.Name == "request-success-rate" && c.Value != nil && *c.Value == 100 {
			live = true
		}
	}
	if !live {
		t.Errorf("no request-success-rate of 100 from live telemetry among the checks: %+v", info.Checks)
	}
	if c := load.counts(); c["v2"] == 0 {
		t.Errorf("v2 got no traffic: %v", c)
	}
	// All traffic is v2's now.
	for i := 0; i < 20; i++ {
		if _, body, _ := get(m.gateway, "echo.example", "/", nil); !strings.HasPrefix(body, "echo v2") {
			t.Fatalf("after promotion: %q", body)
		}
	}
	out, _ := m.weft("", "describe", "canary", "echo")
	for _, want := range []string{"Phase:", "Succeeded", "Primary:   v2", "metric request-success-rate", "Advance echo.default canary weight 50"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	metrics := httpBody(t, "http://"+m.api+"/metrics")
	for _, want := range []string{`flagger_canary_status{name="echo",namespace="default"} 1`, `flagger_canary_weight{workload="echo-primary",namespace="default"} 100`,
		`weft_canary_phase{name="echo",namespace="default",phase="Succeeded"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// weft owns the routing while the Canary exists.
	vs, _ := m.weft("", "get", "vs", "echo", "-o", "yaml")
	if out, code := m.weft(vs, "apply", "-f", "-"); code == 0 || !strings.Contains(out, "managed by Canary default/echo") {
		t.Errorf("edit of the Canary's VirtualService: %d %s", code, out)
	}
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// TestCanaryRollback: a version answering 500 to 10% of requests fails
// the success rate and is rolled back after threshold failed checks; the
// switching itself fails no request at 100+ requests/s.
func TestCanaryRollback(t *testing.T) {
	m := echoRelease(t, echoCanary(3, ""))
	load := startCanaryLoad(t, m, 120)
	m.echo("default", "echo", "v2", "ECHO_FAIL=500", "ECHO_FAIL_EVERY=10")
	st := m.waitPhase("echo", canary.PhaseFailed, 90*time.Second)
	// v1 alone answers again, once the proxies have the rolled-back routes.
	eventually(t, 20*time.Second, "v1 alone answers after the rollback", func() error {
		before, v1 := load.counts()["v2"], load.counts()["v1"]
		for end := time.Now().Add(5 * time.Second); load.counts()["v1"] < v1+100 && time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
		}
		if after := load.counts()["v2"]; after != before {
			return fmt.Errorf("v2 answered %d of the last 100+ requests", after-before)
		}
		return nil
	})
	load.finish(t, 100)
	info := m.canaryInfo("echo")
	if st.FailedChecks < 3 || !strings.Contains(eventLines(info), "failed checks threshold reached") || !strings.Contains(eventLines(info), "request-success-rate") {
		t.Errorf("status %+v, events:%s", st, eventLines(info))
	}
	if load.injected == 0 {
		t.Error("the canary's injected failures never reached the client: was it analysed under traffic?")
	}
}

// TestCanaryLatency: a version adding 700 ms fails request-duration (p99
// over 500 ms) and is rolled back; its traffic comes from the built-in
// load tester, driven by the seed's webhook form.
func TestCanaryLatency(t *testing.T) {
	m := echoRelease(t, echoCanary(2, `    webhooks:
    - name: load-test
      url: http://flagger-loadtester.default/
      timeout: 5s
      metadata:
        cmd: "hey -z 1m -q 5 -c 2 http://echo-canary.default:8080/"
`))
	m.echo("default", "echo", "v2", "ECHO_DELAY=700ms")
	m.waitPhase("echo", canary.PhaseFailed, 90*time.Second)
	info := m.canaryInfo("echo")
	slow := false
	for _, c := range info.Checks {
		if c.Name == "request-duration" && c.Value != nil && *c.Value > 500 && !c.OK {
			slow = true
		}
	}
	if !slow {
		t.Errorf("no failed request-duration check over 500 ms: %+v\nevents:%s", info.Checks, eventLines(info))
	}
}

// TestCanaryConfirmPromotion: a confirm-promotion webhook that says no
// (the built-in load tester's closed gate) holds the canary at its maximum
// weight in WaitingPromotion until `weft canary promote`.
func TestCanaryConfirmPromotion(t *testing.T) {
	m := echoRelease(t, echoCanary(5, `    webhooks:
    - name: gate
      type: confirm-promotion
      url: http://flagger-loadtester.default/gate/check
`))
	load := startCanaryLoad(t, m, 100)
	m.echo("default", "echo", "v2")
	st := m.waitPhase("echo", canary.PhaseWaitingPromotion, 90*time.Second)
	if st.CanaryWeight != 50 {
		t.Errorf("waiting at weight %d, want 50", st.CanaryWeight)
	}
	// It stays there: three more intervals.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if st, _ := m.canaryStatus("echo"); st.Phase != canary.PhaseWaitingPromotion {
			t.Fatalf("left WaitingPromotion with the gate closed: %+v", st)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if out, code := m.weft("", "canary", "promote", "echo"); code != 0 || !strings.Contains(out, "promoted") {
		t.Fatalf("weft canary promote: %d %s", code, out)
	}
	m.waitPhase("echo", canary.PhaseSucceeded, 30*time.Second)
	load.finish(t, 80)
}

// TestCanaryProgressDeadline: a canary that never gets ready (registered,
// its sidecar never connects) is rolled back after progressDeadlineSeconds.
func TestCanaryProgressDeadline(t *testing.T) {
	m := echoRelease(t, strings.Replace(echoCanary(5, ""), "progressDeadlineSeconds: 60", "progressDeadlineSeconds: 6", 1))
	m.apply("default", `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: echo-v2-ghost
  labels: {app: echo, version: v2}
  annotations: {weft.io/proxy: "sidecar~127.0.0.1~echo-v2-ghost.default~default.svc.cluster.local"}
spec:
  address: 127.0.0.1
  ports: {http: 1}
  labels: {app: echo, version: v2}
`)
	m.waitPhase("echo", canary.PhaseFailed, 60*time.Second)
	info := m.canaryInfo("echo")
	if ev := eventLines(info); !strings.Contains(ev, "progress deadline exceeded") || !strings.Contains(ev, "canary not ready") {
		t.Errorf("events:%s", ev)
	}
}

// TestCanaryMetricTemplate: a MetricTemplate queried against a real
// Prometheus (scraping the control plane's istio_requests_total) judges
// the canary: 20% errors fail a 95% minimum.
func TestCanaryMetricTemplate(t *testing.T) {
	bin := requireBinary(t, "/usr/bin/prometheus")
	m := upMesh(t, "")
	prom := startPrometheus(t, bin, m.api)
	m.apply("default", canaryGateway)
	m.echo("default", "echo", "v1")
	m.apply("default", fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: success-rate}
spec:
  provider:
    type: prometheus
    address: http://%s
  query: |
    sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}", response_code!~"5.*"}[{{ interval }}]))
    /
    sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}"}[{{ interval }}])) * 100
---
`, prom.addr)+strings.Replace(echoCanary(2, ""), `    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 4s
`, `    - name: prometheus-success-rate
      templateRef: {name: success-rate}
      thresholdRange: {min: 95}
      interval: 10s
`, 1))
	m.waitPhase("echo", canary.PhaseInitialized, 30*time.Second)
	load := startCanaryLoad(t, m, 100)
	m.echo("default", "echo", "v2", "ECHO_FAIL=500", "ECHO_FAIL_EVERY=5")
	m.waitPhase("echo", canary.PhaseFailed, 120*time.Second)
	load.finish(t, 80)
	info := m.canaryInfo("echo")
	found := false
	for _, c := range info.Checks {
		if c.Name == "prometheus-success-rate" && c.Value != nil && *c.Value > 60 && *c.Value < 95 {
			found = true
		}
	}
	if !found {
		t.Errorf("no Prometheus value between 60 and 95 among the checks: %+v\nevents:%s", info.Checks, eventLines(info))
	}
}

// TestCanaryStatusSurvivesRestart: the status is in the store; a
// restarted control plane carries on from it (the events, like
// Kubernetes events, start over). The canary's traffic comes from the
// built-in load tester.
func TestCanaryStatusSurvivesRestart(t *testing.T) {
	m, cp := startControlPlane(t)
	m.echo("default", "echo", "v1")
	yaml := strings.Replace(echoCanary(5, `    webhooks:
    - name: load-test
      url: http://flagger-loadtester.default/
      metadata:
        cmd: "hey -z 1m -q 10 -c 2 http://echo-canary.default:8080/"
`), `    hosts: [echo.example]
    gateways: [edge]
`, "", 1)
	m.apply("default", yaml)
	before := m.waitPhase("echo", canary.PhaseInitialized, 30*time.Second)
	out, _ := m.weft("", "get", "canary", "echo", "-o", "json")
	cp.stop(10 * time.Second)
	m.restartControlPlane()
	after, err := m.canaryStatus("echo")
	if err != nil || after.Phase != before.Phase || after.LastApplied != "v1" {
		t.Fatalf("after restart: %+v, %v (before: %+v)", after, err, before)
	}
	again, _ := m.weft("", "get", "canary", "echo", "-o", "json")
	re := regexp.MustCompile(`"lastTransitionTime": "[^"]+"`)
	if re.FindString(out) == "" || re.FindString(out) != re.FindString(again) {
		t.Errorf("lastTransitionTime changed across the restart:\n%s\n%s", out, again)
	}
	m.echo("default", "echo", "v2")
	m.waitPhase("echo", canary.PhaseSucceeded, 90*time.Second)
}
