package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireBinary returns the path of an external program a test drives.
// Outside CI a missing program skips the test; in CI (CI=true, where
// scripts/install-test-deps.sh has run) it fails it.
func requireBinary(t *testing.T, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (scripts/install-test-deps.sh installs it): %v", path, err)
		}
		t.Skipf("%s is missing; run scripts/install-test-deps.sh as root", path)
	}
	return path
}

// proxyAdmins waits until want proxies are connected and returns their
// admin addresses by proxy ID, as GET /api/v1/proxies reports them.
func proxyAdmins(t *testing.T, m *mesh, gatewayAdmin string, want int) map[string]string {
	t.Helper()
	var admins map[string]string
	eventually(t, 60*time.Second, fmt.Sprintf("%d proxies connected with admin addresses", want), func() error {
		var list struct {
			Proxies []struct{ ID, Admin string } `json:"proxies"`
		}
		if err := jsonGet("http://"+m.api+"/api/v1/proxies", &list); err != nil {
			return err
		}
		admins = map[string]string{}
		for _, p := range list.Proxies {
			if p.Admin != "" {
				admins[p.ID] = p.Admin
			}
		}
		if len(admins) < want {
			return fmt.Errorf("admin addresses known: %v", admins)
		}
		return nil
	})
	return admins
}

// prometheus is a real Prometheus server started by a test.
type prometheus struct {
	t       *testing.T
	addr    string
	targets string // file_sd file of the proxies' admin addresses
}

// promListening is prometheus' log line naming the address it bound.
var promListening = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

// startPrometheus runs /usr/bin/prometheus scraping every second the
// proxies' /stats/prometheus (file_sd, see setProxies) and the control
// plane's /metrics.
func startPrometheus(t *testing.T, bin, controlPlane string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	p := &prometheus{t: t, targets: filepath.Join(dir, "proxies.json")}
	if err := os.WriteFile(p.targets, []byte("[]"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: weft-proxies
  metrics_path: /stats/prometheus
  file_sd_configs:
  - files: [%q]
    refresh_interval: 1s
- job_name: weft-controlplane
  metrics_path: /metrics
  static_configs:
  - targets: [%q]
`, p.targets, controlPlane)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		// Port 0: prometheus binds a port the kernel picks and logs it
		// (at info level, "Listening on" address=...).
		"--web.listen-address="+anyPort, "--storage.tsdb.retention.time=1h", "--log.level=info")
	cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("---- prometheus log ----\n%s", b)
		}
	})
	eventually(t, 30*time.Second, "prometheus ready", func() error {
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("prometheus exited:\n%s", b)
		default:
		}
		if p.addr == "" {
			b, _ := os.ReadFile(logf.Name())
			mm := promListening.FindSubmatch(b)
			if mm == nil {
				return fmt.Errorf("no %q line in its log yet", "Listening on")
			}
			p.addr = string(mm[1])
		}
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return p
}

// setProxies writes the file_sd targets: one per proxy admin address.
func (p *prometheus) setProxies(admins map[string]string) {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels,omitempty"`
	}
	var groups []group
	for id, a := range admins {
		groups = append(groups, group{Targets: []string{a}, Labels: map[string]string{"weft_proxy": id}})
	}
	b, _ := json.Marshal(groups)
	tmp := p.targets + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.targets); err != nil {
		p.t.Fatal(err)
	}
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  float64
}

// query runs an instant PromQL query; it returns the API's error (bad
// query, status != success) as an error.
func (p *prometheus) query(q string) ([]promSample, error) {
	resp, err := http.PostForm("http://"+p.addr+"/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %s: %d: %v", q, resp.StatusCode, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s %s: %s", q, r.Status, r.ErrorType, r.Error)
	}
	var out []promSample
	switch r.Data.ResultType {
	case "vector":
		for _, s := range r.Data.Result {
			v, err := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
			if err != nil {
				return nil, fmt.Errorf("query %s: value %v: %v", q, s.Value[1], err)
			}
			out = append(out, promSample{Metric: s.Metric, Value: v})
		}
	case "scalar":
	default:
		return nil, fmt.Errorf("query %s: result type %q", q, r.Data.ResultType)
	}
	return out, nil
}

// scalar runs a query that must yield exactly one sample.
func (p *prometheus) scalar(q string) (float64, error) {
	s, err := p.query(q)
	if err != nil {
		return 0, err
	}
	if len(s) != 1 {
		return 0, fmt.Errorf("query %s: want 1 sample, got %d: %v", q, len(s), s)
	}
	return s[0].Value, nil
}

// selector is a PromQL series selector of istio_requests_total on the
// proxies: label -> value, or "~" + regexp for a regexp match.
type selector map[string]string

func (sel selector) promQL(metric string) string {
	parts := []string{`job="weft-proxies"`}
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		if re, ok := strings.CutPrefix(sel[k], "~"); ok {
			parts = append(parts, fmt.Sprintf("%s=~%q", k, re))
		} else {
			parts = append(parts, fmt.Sprintf("%s=%q", k, sel[k]))
		}
	}
	return "sum(" + metric + "{" + strings.Join(parts, ",") + "})"
}

var exposedSample = regexp.MustCompile(`^(\w+)\{(.*)\} (\S+)$`)
var exposedLabel = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// direct sums metric{sel} as the proxies expose it on their admin
// /stats/prometheus right now: the counts themselves, not a scrape of them.
func direct(admins map[string]string, metric string, sel selector) (float64, error) {
	var sum float64
	for _, a := range admins {
		resp, err := http.Get("http://" + a + "/stats/prometheus")
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
	lines:
		for _, line := range strings.Split(string(b), "\n") {
			mm := exposedSample.FindStringSubmatch(line)
			if mm == nil || mm[1] != metric {
				continue
			}
			labels := map[string]string{}
			for _, l := range exposedLabel.FindAllStringSubmatch(mm[2], -1) {
				labels[l[1]] = l[2]
			}
			for k, want := range sel {
				if re, ok := strings.CutPrefix(want, "~"); ok {
					if !regexp.MustCompile("^(?:" + re + ")$").MatchString(labels[k]) {
						continue lines
					}
				} else if labels[k] != want {
					continue lines
				}
			}
			v, err := strconv.ParseFloat(mm[3], 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %q: %v", a, line, err)
			}
			sum += v
		}
	}
	return sum, nil
}

// settled waits until Prometheus's sum of metric{sel} equals what the
// proxies count themselves (no traffic runs meanwhile: that is the final
// count, once scraped) and returns it. The proxies' own numbers are the
// positive sign that the scrapes caught up, rather than a value that did
// not move for a while.
func (p *prometheus) settled(admins map[string]string, metric string, sel selector) float64 {
	p.t.Helper()
	q := sel.promQL(metric)
	var v float64
	eventually(p.t, 30*time.Second, "prometheus has the proxies' count of "+q, func() error {
		want, err := direct(admins, metric, sel)
		if err != nil {
			return err
		}
		got, err := p.scalar(q)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("prometheus %v, the proxies %v", got, want)
		}
		v = got
		return nil
	})
	return v
}

// catalogLoad sends n requests to the gateway, one after another, and
// tallies the answers by catalog version; any other answer fails the test.
func catalogLoad(t *testing.T, addr string, n int, limit time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(limit)
	c := map[string]int{}
	for i := 0; i < n; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("load: only %d of %d requests in %v", i, n, limit)
		}
		code, body, err := get(addr, "", "/", nil)
		mm := catalogLine.FindStringSubmatch(body)
		if err != nil || code != 200 || mm == nil {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
		c[mm[1]]++
	}
	return c
}

// TestPrometheusScrapesIstioMetrics has a real Prometheus scrape every
// proxy's /stats/prometheus and the control plane's /metrics while the
// coolapp demo serves an 80/20 split, then asks it what dashboards and
// Flagger ask Istio's Prometheus.
func TestPrometheusScrapesIstioMetrics(t *testing.T) {
	bin := requireBinary(t, "/usr/bin/prometheus")
	m, gwAdmin := upMeshWith(t, "coolapp")
	m.apply("coolapp", drV1V2)
	m.apply("coolapp", splitVS(80, 20))
	eventually(t, 60*time.Second, "the 80/20 split serves both versions", func() error {
		c, err := tally(m.gateway, 30)
		if err == nil && (c["v1"] == 0 || c["v2"] == 0) {
			err = fmt.Errorf("got %v", c)
		}
		return err
	})

	// Four sidecars (catalog v1 and v2, partner, gateway) and the ingress gateway.
	admins := proxyAdmins(t, m, gwAdmin, 5)
	if !containsValue(admins, gwAdmin) {
		t.Errorf("the ingress gateway's admin %s is not among the proxies' admin addresses %v", gwAdmin, admins)
	}
	t.Logf("proxy admin addresses: %v", admins)
	prom := startPrometheus(t, bin, m.api)
	prom.setProxies(admins)
	eventually(t, 30*time.Second, "every target scraped and up", func() error {
		s, err := prom.query(`up`)
		if err != nil {
			return err
		}
		up := 0
		for _, x := range s {
			if x.Value != 1 {
				return fmt.Errorf("target %v down", x.Metric)
			}
			up++
		}
		if up != len(admins)+1 {
			return fmt.Errorf("%d targets up, want %d", up, len(admins)+1)
		}
		return nil
	})

	const requests = "istio_requests_total"
	var (
		srcCatalog = selector{"reporter": "source", "destination_service_name": "catalog"}
		srcV2      = selector{"reporter": "source", "destination_service_name": "catalog", "destination_version": "v2"}
		dstCatalog = selector{"reporter": "destination", "destination_workload_namespace": "coolapp", "destination_workload": "~catalog-.*"}
	)
	// Counters give exact counts: the increase over the load equals what
	// the client saw, request for request, on both sides of the hop.
	before := prom.settled(admins, requests, srcCatalog)
	beforeV2 := prom.settled(admins, requests, srcV2)
	beforeDst := prom.settled(admins, requests, dstCatalog)
	const n = 800
	begin := time.Now()
	c := catalogLoad(t, m.gateway, n, 2*time.Minute)
	t.Logf("load: %d requests in %v: %v", n, time.Since(begin).Round(time.Millisecond), c)
	if !within(c["v2"], n, 0.2) {
		t.Fatalf("80/20 split over %d requests: got %v", n, c)
	}
	eventually(t, 30*time.Second, "prometheus counts every request", func() error {
		after, err := prom.scalar(srcCatalog.promQL(requests))
		if err != nil {
			return err
		}
		if after-before != n {
			return fmt.Errorf("increase %v, want %d", after-before, n)
		}
		return nil
	})
	afterV2 := prom.settled(admins, requests, srcV2)
	if got := int(afterV2 - beforeV2); got != c["v2"] {
		t.Errorf("prometheus counted %d requests to catalog v2, the client %d", got, c["v2"])
	}

	// The share of v2 as a dashboard computes it, from rates.
	share, err := prom.scalar(`sum(rate(istio_requests_total{reporter="source",destination_service_name="catalog",destination_version="v2"}[1m])) / sum(rate(istio_requests_total{reporter="source",destination_service_name="catalog"}[1m]))`)
	if err != nil {
		t.Fatal(err)
	}
	// The rates cover the last minute: the load and the few requests
	// before it (at most 0.05 of the share).
	want := float64(c["v2"]) / n
	t.Logf("v2 share from rates: %.3f, of the load: %.3f", share, want)
	if math.Abs(share-want) > 0.05 {
		t.Errorf("v2 share from rates: %.3f, want about %.3f", share, want)
	}

	// The destination side (catalog's sidecars) counted the same requests.
	if got := prom.settled(admins, requests, dstCatalog) - beforeDst; got != n {
		t.Errorf("catalog's sidecars counted %v requests of the load, want %d", got, n)
	}
	src := prom.settled(admins, requests, srcCatalog)

	// Both reporters name the destination workload alike, as Istio does
	// (the workload, e.g. catalog-v1, not the instance). Answered requests
	// only: one that found no catalog instance yet, while the demo was
	// starting, has no destination workload (unknown) at its source.
	for _, reporter := range []string{"source", "destination"} {
		s, err := prom.query(`count by (destination_workload, destination_version) (istio_requests_total{job="weft-proxies",reporter="` + reporter + `",destination_service_name="catalog",response_code="200"})`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range s {
			got = append(got, x.Metric["destination_workload"]+" "+x.Metric["destination_version"])
		}
		sort.Strings(got)
		if strings.Join(got, ", ") != "catalog-v1 v1, catalog-v2 v2" {
			t.Errorf("reporter=%s: destination_workload/version of catalog's requests: %v, want catalog-v1 v1, catalog-v2 v2", reporter, got)
		}
	}

	// Flagger's Istio metric templates.
	rate, err := prom.scalar(`sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="coolapp",destination_workload=~"catalog-.*",response_code!~"5.*"}[1m])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="coolapp",destination_workload=~"catalog-.*"}[1m])) * 100`)
	if err != nil {
		t.Fatal(err)
	}
	if rate != 100 {
		t.Errorf("request-success-rate: %v, want 100", rate)
	}
	p99, err := prom.scalar(`histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload=~"catalog-.*"}[1m])) by (le))`)
	if err != nil {
		t.Fatal(err)
	}
	if math.IsNaN(p99) || math.IsInf(p99, 0) || p99 <= 0 {
		t.Errorf("request-duration p99: %v, want a positive finite number of ms", p99)
	}
	t.Logf("flagger: request-success-rate %v%%, request-duration p99 %.2f ms", rate, p99)

	// The control plane's aggregate agrees with the proxies once their
	// reports (every second) are in.
	eventually(t, 30*time.Second, "the control plane's /metrics agrees with the proxies", func() error {
		agg, err := prom.scalar(`sum(istio_requests_total{job="weft-controlplane",reporter="source",destination_service_name="catalog"})`)
		if err != nil {
			return err
		}
		if agg != src {
			return fmt.Errorf("control plane %v, proxies %v", agg, src)
		}
		return nil
	})

	checkDashboard(t, prom, "../../docs/grafana/weft-dashboard.json", map[string]string{"namespace": "coolapp", "workload": "catalog-v1|catalog-v2"})
}

func containsValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// checkDashboard validates the Grafana dashboard: it is JSON, its template
// variables include namespace and workload, and every panel query, with
// the variables substituted, is accepted by Prometheus; the request panels
// also return data for the traffic just sent.
func checkDashboard(t *testing.T, prom *prometheus, path string, vars map[string]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		SchemaVersion int `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
		Panels []dashPanel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	names := map[string]bool{}
	for _, v := range d.Templating.List {
		names[v.Name] = true
	}
	for _, want := range []string{"DS_PROMETHEUS", "namespace", "workload"} {
		if !names[want] {
			t.Errorf("%s: no template variable %q", path, want)
		}
	}
	sub := map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "DS_PROMETHEUS": "prometheus"}
	for k, v := range vars {
		sub[k] = v
	}
	var panels []dashPanel
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			panels = append(panels, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	queries := 0
	for _, p := range panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				continue
			}
			queries++
			expr := grafanaVar.ReplaceAllStringFunc(tg.Expr, func(s string) string {
				mm := grafanaVar.FindStringSubmatch(s)
				name := mm[1] + mm[2]
				if v, ok := sub[name]; ok {
					return v
				}
				t.Errorf("panel %q: unknown variable %s in %s", p.Title, s, tg.Expr)
				return s
			})
			res, err := prom.query(expr)
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
				continue
			}
			if strings.Contains(expr, "istio_request") && len(res) == 0 {
				t.Errorf("panel %q: no data for %s", p.Title, expr)
			}
		}
	}
	if queries < 5 {
		t.Errorf("%s: %d panel queries, want at least 5", path, queries)
	}
	t.Logf("dashboard: %d panels, %d queries accepted by prometheus", len(panels), queries)
}

type dashPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}
