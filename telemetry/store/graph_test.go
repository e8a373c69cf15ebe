package store

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weft-mesh/weft/telemetry"
)

// canary reports productpage -> reviews split 80/20 between v1 and v2,
// from both reporters, over 10 s.
func canary(s *Store, errorsV2 bool) {
	for i := 0; i < 10; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		code2 := "200"
		if errorsV2 {
			code2 = "503"
		}
		for _, rep := range []string{"source", "destination"} {
			s.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{
				stat(labels(rep, "productpage-v1", "reviews-v1", "v1", "200"), 8, 3),
				stat(labels(rep, "productpage-v1", "reviews-v2", "v2", code2), 2, 7),
			}}, now)
		}
		gw := labels("source", "istio-ingressgateway", "productpage-v1", "v1", "200")
		gw["source_workload_namespace"] = "istio-system"
		gw["destination_service"] = "productpage.default.svc.cluster.local"
		s.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{stat(gw, 10, 4)}}, now)
	}
}

func TestGraphSplit(t *testing.T) {
	s := New(Options{})
	canary(s, false)
	inv := &Inventory{
		Workloads: []InventoryWorkload{{Namespace: "default", Name: "reviews-v3", App: "reviews", Version: "v3", VM: true}},
		Services:  []InventoryService{{Host: "reviews.default.svc.cluster.local", Name: "reviews", Namespace: "default", Workloads: []string{"workload:default/reviews-v3"}}},
	}
	g := s.BuildGraph(10*time.Second, inv, t0.Add(10*time.Second))
	edges := map[string]*Edge{}
	for _, e := range g.Edges {
		edges[e.ID] = e
	}
	nodes := map[string]*Node{}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	v1 := edges["service:reviews.default.svc.cluster.local->workload:default/reviews-v1"]
	v2 := edges["service:reviews.default.svc.cluster.local->workload:default/reviews-v2"]
	if v1 == nil || v2 == nil {
		t.Fatalf("missing split edges; have %v", keys(edges))
	}
	// Source-reported data only: the destination's copy must not double it.
	if v1.RequestPct != 80 || v2.RequestPct != 20 || v1.Requests != 80 || v2.Requests != 20 {
		t.Fatalf("split = %v%% (%d) / %v%% (%d), want 80/20", v1.RequestPct, v1.Requests, v2.RequestPct, v2.Requests)
	}
	pp := edges["workload:default/productpage-v1->service:reviews.default.svc.cluster.local"]
	if pp == nil || pp.RequestPct != 100 || pp.Requests != 100 || !pp.MTLS || pp.Health != HealthHealthy {
		t.Fatalf("productpage -> reviews = %+v", pp)
	}
	if *v1.P50 != 7.5 || *v2.P95 != 242.5 {
		t.Fatalf("percentiles: v1 p50 %v, v2 p95 %v", *v1.P50, *v2.P95)
	}
	if v1.Throughput != round(float64(80*100)/g.Seconds, 3) {
		t.Fatalf("throughput = %v", v1.Throughput)
	}
	if gw := nodes["workload:istio-system/istio-ingressgateway"]; gw == nil || gw.Kind != KindGateway {
		t.Fatalf("gateway node = %+v", gw)
	}
	if v3 := nodes["workload:default/reviews-v3"]; v3 == nil || !v3.VM || !v3.Idle || v3.Health != HealthIdle {
		t.Fatalf("idle VM node from the inventory = %+v", v3)
	}
	if rv := nodes["service:reviews.default.svc.cluster.local"]; rv.Kind != KindService || len(rv.Workloads) != 3 || rv.RPS != round(100/g.Seconds, 3) {
		t.Fatalf("reviews service node = %+v", rv)
	}

	// v2 failing: the edge and the workload turn red, the service degrades.
	f := New(Options{})
	canary(f, true)
	g = f.BuildGraph(10*time.Second, nil, t0.Add(10*time.Second))
	for _, e := range g.Edges {
		edges[e.ID] = e
	}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	if e := edges["service:reviews.default.svc.cluster.local->workload:default/reviews-v2"]; e.ErrorPct != 100 || e.Health != HealthFailure {
		t.Fatalf("failing v2 edge = %+v", e)
	}
	if n := nodes["service:reviews.default.svc.cluster.local"]; n.ErrorPct != 20 || n.Health != HealthFailure {
		t.Fatalf("reviews at 20%% errors = %+v", n)
	}
}

func TestGraphPrefersSourceButFallsBack(t *testing.T) {
	s := New(Options{})
	// Only the destination saw these: callers without a sidecar.
	l := labels("destination", "unknown", "reviews-v1", "v1", "200")
	s.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{stat(l, 5, 0)}}, t0)
	// An alias maps an instance name onto its workload.
	l2 := labels("source", "productpage-v1", "reviews-v1-abc12", "v1", "200")
	s.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{stat(l2, 3, 0)}}, t0)
	l3 := labels("destination", "productpage-v1", "reviews-v1", "v1", "200")
	s.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{stat(l3, 3, 0)}}, t0)
	g := s.BuildGraph(10*time.Second, &Inventory{Aliases: map[string]string{"default/reviews-v1-abc12": "reviews-v1"}}, t0.Add(time.Second))
	got := map[string]uint64{}
	for _, e := range g.Edges {
		got[e.ID] = e.Requests
	}
	want := map[string]uint64{
		"unknown->service:reviews.default.svc.cluster.local":                         5,
		"workload:default/productpage-v1->service:reviews.default.svc.cluster.local": 3,
		"service:reviews.default.svc.cluster.local->workload:default/reviews-v1":     8,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("edges = %v, want %v", got, want)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestPrometheusExposition parses /metrics with a small parser that
// enforces the text format's rules Prometheus checks.
func TestPrometheusExposition(t *testing.T) {
	s := New(Options{})
	canary(s, true)
	odd := labels("source", `we"ird\name`, "reviews-v1", "v1", "200")
	odd["destination_service"] = "line\nbreak"
	s.Merge(&telemetry.Report{
		Requests: []telemetry.RequestStat{stat(odd, 1, 19)},
		TCP:      []telemetry.TCPStat{{Labels: labels("source", "a", "mysql-v1", "v1", ""), Opened: 2, Closed: 1, SentBytes: 10, ReceivedBytes: 20}},
	}, t0)
	var buf bytes.Buffer
	if err := s.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	fams := parseExposition(t, buf.String())
	for name, typ := range map[string]string{
		telemetry.RequestsTotal: "counter", telemetry.RequestDuration: "histogram", telemetry.RequestBytes: "histogram",
		telemetry.ResponseBytes: "histogram", telemetry.TCPSentBytes: "counter", telemetry.TCPReceivedBytes: "counter",
		telemetry.TCPConnectionsOpened: "counter", telemetry.TCPConnectionsClosed: "counter",
		"weft_telemetry_series_dropped_total": "counter",
	} {
		if fams[name] != typ {
			t.Errorf("family %s: type %q, want %q", name, fams[name], typ)
		}
	}
	text := buf.String()
	for _, want := range []string{
		`le="0.5"`, `le="3600000"`, `le="+Inf"`, `le="100000000"`,
		`source_workload="we\"ird\\name"`, `destination_service="line\nbreak"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
}

// parseExposition checks every line and returns family -> type. Rules:
// HELP/TYPE before samples, samples only of declared families (histogram
// suffixes included), label names from the allowed set, quoted values with
// valid escapes, float values, cumulative non-decreasing buckets ending in
// +Inf equal to _count, no duplicate series.
func parseExposition(t *testing.T, text string) map[string]string {
	t.Helper()
	types := map[string]string{}
	seen := map[string]bool{}
	lastBucket := map[string]float64{}
	infBucket := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if strings.HasPrefix(l, "# TYPE ") {
			f := strings.Fields(l)
			if len(f) != 4 {
				t.Fatalf("line %d: bad TYPE: %q", line, l)
			}
			if _, dup := types[f[2]]; dup {
				t.Fatalf("line %d: family %s declared twice", line, f[2])
			}
			types[f[2]] = f[3]
			continue
		}
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		name, lbls, value, err := parseSample(l)
		if err != nil {
			t.Fatalf("line %d: %v: %q", line, err, l)
		}
		family, suffix := name, ""
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && types[base] == "histogram" {
				family, suffix = base, suf
			}
		}
		if _, ok := types[family]; !ok {
			t.Fatalf("line %d: sample of undeclared family %s", line, name)
		}
		id := name + "{" + strings.Join(lbls, ",") + "}"
		if seen[id] {
			t.Fatalf("line %d: duplicate series %s", line, id)
		}
		seen[id] = true
		if suffix == "_bucket" || suffix == "_count" {
			var series, le []string
			for _, kv := range lbls {
				if strings.HasPrefix(kv, "le=") {
					le = append(le, kv)
				} else {
					series = append(series, kv)
				}
			}
			key := family + strings.Join(series, ",")
			if suffix == "_bucket" {
				if len(le) != 1 {
					t.Fatalf("line %d: bucket without le", line)
				}
				if value < lastBucket[key] {
					t.Fatalf("line %d: buckets decrease", line)
				}
				lastBucket[key] = value
				if le[0] == `le="+Inf"` {
					infBucket[key] = value
				}
			} else {
				if inf, ok := infBucket[key]; !ok || inf != value {
					t.Fatalf("line %d: _count %v != +Inf bucket %v", line, value, inf)
				}
				delete(lastBucket, key)
			}
		}
	}
	return types
}

func parseSample(l string) (name string, lbls []string, value float64, err error) {
	i := strings.IndexAny(l, "{ ")
	if i <= 0 {
		return "", nil, 0, fmt.Errorf("no metric name")
	}
	name = l[:i]
	for j, r := range name {
		if !(r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || j > 0 && r >= '0' && r <= '9') {
			return "", nil, 0, fmt.Errorf("bad metric name %q", name)
		}
	}
	rest := l[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return "", nil, 0, fmt.Errorf("bad label at %q", rest)
			}
			lname := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			k := 0
			for ; k < len(rest) && rest[k] != '"'; k++ {
				if rest[k] == '\\' {
					k++
					if k >= len(rest) || !strings.ContainsRune(`\"n`, rune(rest[k])) {
						return "", nil, 0, fmt.Errorf("bad escape in label %s", lname)
					}
				}
				val.WriteByte(rest[k])
			}
			if k >= len(rest) {
				return "", nil, 0, fmt.Errorf("unterminated label %s", lname)
			}
			lbls = append(lbls, lname+"="+strconv.Quote(val.String()))
			rest = rest[k+1:]
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
				continue
			}
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			return "", nil, 0, fmt.Errorf("expected , or } at %q", rest)
		}
	}
	if !strings.HasPrefix(rest, " ") {
		return "", nil, 0, fmt.Errorf("no space before value")
	}
	value, err = strconv.ParseFloat(strings.TrimSpace(rest), 64)
	return name, lbls, value, err
}

// As proxies really report it: the caller's sidecar cannot tell whether its
// upstream handshake was mutual ("unknown"), the destination's can. The
// edge takes its counts from the source and its lock from the destination.
func TestGraphMutualTLSFromDestination(t *testing.T) {
	s := New(Options{})
	for i := 0; i < 5; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		src := func(workload, version string) map[string]string {
			l := labels("source", "productpage-v1", workload, version, "200")
			l["connection_security_policy"] = "unknown"
			return l
		}
		dst := func(workload, version, policy string) map[string]string {
			l := labels("destination", "productpage-v1", workload, version, "200")
			l["connection_security_policy"] = policy
			return l
		}
		s.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{
			stat(src("reviews-v1", "v1"), 10, 3), stat(src("reviews-v2", "v2"), 10, 3), stat(src("reviews-v3", "v3"), 10, 3),
		}}, now)
		// v1 is all mTLS, v2 half (PERMISSIVE with a plaintext caller), v3 none.
		s.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{
			stat(dst("reviews-v1", "v1", "mutual_tls"), 10, 3),
			stat(dst("reviews-v2", "v2", "mutual_tls"), 5, 3), stat(dst("reviews-v2", "v2", "none"), 5, 3),
			stat(dst("reviews-v3", "v3", "none"), 10, 3),
		}}, now)
		// An external caller without a sidecar, seen only by the destination.
		ext := dst("reviews-v1", "v1", "none")
		ext["source_workload"], ext["source_app"] = "unknown", "unknown"
		s.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{stat(ext, 2, 3)}}, now)
	}
	g := s.BuildGraph(10*time.Second, nil, t0.Add(5*time.Second))
	edges := map[string]*Edge{}
	for _, e := range g.Edges {
		edges[e.ID] = e
	}
	const svc = "service:reviews.default.svc.cluster.local"
	for _, tc := range []struct {
		id       string
		requests uint64
		mtls     bool
		pct      float64
	}{
		{svc + "->workload:default/reviews-v1", 60, true, 83.33}, // 50 from productpage, mTLS; 10 from outside
		{svc + "->workload:default/reviews-v2", 50, true, 50},
		{svc + "->workload:default/reviews-v3", 50, false, 0},
		{"workload:default/productpage-v1->" + svc, 150, true, 50}, // 50 + 25 of 150
		{"unknown->" + svc, 10, false, 0},
	} {
		e := edges[tc.id]
		if e == nil {
			t.Errorf("no edge %s; have %v", tc.id, keys(edges))
			continue
		}
		if e.Requests != tc.requests || e.MTLS != tc.mtls || e.MTLSPct != tc.pct {
			t.Errorf("%s: %d requests, mtls %v (%v%%); want %d, %v (%v%%)", tc.id, e.Requests, e.MTLS, e.MTLSPct, tc.requests, tc.mtls, tc.pct)
		}
	}
	for _, n := range g.Nodes {
		if n.ID == "workload:default/reviews-v3" && (n.MTLS || n.MTLSPct != 0) {
			t.Errorf("reviews-v3 node: %+v", n)
		}
		if n.ID == svc && (!n.MTLS || n.MTLSPct != 46.88) { // 75 of 160
			t.Errorf("reviews service node: mtls %v %v%%", n.MTLS, n.MTLSPct)
		}
	}
}
