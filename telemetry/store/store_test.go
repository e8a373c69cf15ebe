package store

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weft-mesh/weft/telemetry"
)

var t0 = time.Unix(1_800_000_000, 0) // on a slot boundary

// labels returns a full label set for a request from src to dst.
func labels(reporter, src, dstWorkload, version, code string) map[string]string {
	return map[string]string{
		"reporter": reporter, "source_workload": src, "source_workload_namespace": "default", "source_app": src, "source_version": "v1",
		"source_principal": "unknown", "destination_service": "reviews.default.svc.cluster.local", "destination_service_name": "reviews",
		"destination_service_namespace": "default", "destination_workload": dstWorkload, "destination_workload_namespace": "default",
		"destination_app": "reviews", "destination_version": version, "destination_principal": "unknown", "request_protocol": "http",
		"response_code": code, "response_flags": "-", "connection_security_policy": "mutual_tls", "grpc_response_status": "",
	}
}

// stat is n requests, all in duration bucket b.
func stat(l map[string]string, n uint64, b int) telemetry.RequestStat {
	dur := make([]uint64, nDur)
	dur[b] = n
	sizes := make([]uint64, nSize)
	sizes[2] = n
	ms := 1e7 // +Inf bucket
	if b < len(telemetry.DurationBuckets) {
		ms = telemetry.DurationBuckets[b]
	}
	return telemetry.RequestStat{Labels: l, Count: n, DurationBuckets: dur, DurationSumMs: float64(n) * ms,
		RequestBytes: sizes, RequestBytesSum: 50 * n, ResponseBytes: sizes, ResponseBytesSum: 50 * n}
}

func TestMergeAccumulatesTotalsAndEdges(t *testing.T) {
	s := New(Options{})
	l := labels("source", "productpage-v1", "reviews-v1", "v1", "200")
	for i := 0; i < 5; i++ {
		s.Merge(&telemetry.Report{Node: "n1", Requests: []telemetry.RequestStat{stat(l, 10, 3)}}, t0.Add(time.Duration(i)*time.Second))
	}
	if st := s.Stats(); st.Totals != 1 || st.Edges != 1 || st.Reports != 5 || st.Proxies != 1 {
		t.Fatalf("stats = %+v, want one total, one edge, 5 reports, 1 proxy", st)
	}
	stats, secs := s.Edges(10*time.Second, t0.Add(5*time.Second))
	if len(stats) != 1 || stats[0].Requests != 50 || stats[0].MTLS != 50 || stats[0].Bytes != 5000 || stats[0].Duration[3] != 50 {
		t.Fatalf("edge = %+v", stats)
	}
	// 5 whole slots plus 1 s of the current one.
	if secs != 11 {
		t.Fatalf("seconds = %v, want 11", secs)
	}
	// A window that ends long after sees nothing.
	if stats, _ := s.Edges(10*time.Second, t0.Add(time.Minute)); len(stats) != 0 {
		t.Fatalf("stale window: %+v", stats)
	}
}

func TestErrorsAreFiveHundredsAndFlags(t *testing.T) {
	for _, c := range []struct {
		code, flags string
		want        bool
	}{{"200", "-", false}, {"404", "-", false}, {"503", "-", true}, {"503", "UO", true}, {"0", "DC", true}, {"200", "DI", false}, {"", "", false}} {
		if got := isError(c.code, c.flags); got != c.want {
			t.Errorf("isError(%q, %q) = %v, want %v", c.code, c.flags, got, c.want)
		}
	}
}

// TestCardinalityCap: 100 000 distinct label sets keep the caps, fold the
// rest into overflow, count the drops, and lose no request.
func TestCardinalityCap(t *testing.T) {
	s := New(Options{MaxTotals: 1000, MaxEdges: 200})
	const n = 100_000
	batch := make([]telemetry.RequestStat, 0, 1000)
	for i := 0; i < n; i++ {
		l := labels("source", fmt.Sprintf("caller-%d", i), fmt.Sprintf("reviews-%d", i%7), "v1", "200")
		batch = append(batch, telemetry.RequestStat{Labels: l, Count: 1})
		if len(batch) == cap(batch) {
			s.Merge(&telemetry.Report{Requests: batch}, t0)
			batch = batch[:0]
		}
	}
	st := s.Stats()
	if st.Totals > 1000+1 || st.Edges > 200+1 {
		t.Fatalf("caps exceeded: %+v", st)
	}
	if st.DroppedTotals != n-1000 || st.DroppedEdges != n-200 {
		t.Fatalf("dropped = %d totals, %d edges; want %d, %d", st.DroppedTotals, st.DroppedEdges, n-1000, n-200)
	}
	var sum uint64
	for _, tot := range s.totals {
		sum += tot.req.count
	}
	if sum != n {
		t.Fatalf("requests in totals = %d, want %d", sum, n)
	}
	stats, _ := s.Edges(10*time.Second, t0)
	var edgeSum uint64
	for _, e := range stats {
		edgeSum += e.Requests
	}
	if edgeSum != n {
		t.Fatalf("requests in edges = %d, want %d", edgeSum, n)
	}
	var buf bytes.Buffer
	if err := s.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), fmt.Sprintf(`weft_telemetry_series_dropped_total{kind="totals"} %d`, n-1000)) {
		t.Fatal("/metrics does not expose the dropped count")
	}
}

func TestExpiry(t *testing.T) {
	s := New(Options{Retention: time.Hour})
	s.Merge(&telemetry.Report{Node: "a", Requests: []telemetry.RequestStat{stat(labels("source", "a", "reviews-v1", "v1", "200"), 1, 0)}}, t0)
	s.Merge(&telemetry.Report{Node: "b", Requests: []telemetry.RequestStat{stat(labels("source", "b", "reviews-v1", "v1", "200"), 1, 0)}}, t0.Add(50*time.Minute))
	s.Sweep(t0.Add(59 * time.Minute))
	if st := s.Stats(); st.Totals != 2 || st.Edges != 2 {
		t.Fatalf("nothing is idle for an hour yet: %+v", st)
	}
	s.Sweep(t0.Add(61 * time.Minute))
	st := s.Stats()
	if st.Totals != 1 || st.Edges != 1 || st.Expired != 2 || st.Proxies != 1 {
		t.Fatalf("after 61 min: %+v, want a's series expired", st)
	}
	if st.HistoryBytes != chunkBytes {
		t.Fatalf("history = %d bytes, want one chunk (%d)", st.HistoryBytes, chunkBytes)
	}
}

// TestHistoryRingAndBudget: an hour is kept at 2 s resolution, and the
// memory budget releases the oldest chunks first.
func TestHistoryRingAndBudget(t *testing.T) {
	s := New(Options{})
	l := labels("source", "a", "reviews-v1", "v1", "200")
	for i := 0; i < 2*Slots; i++ { // two hours, one report per slot
		s.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{stat(l, 1, 0)}}, t0.Add(time.Duration(i)*Resolution))
	}
	end := t0.Add(time.Duration(2*Slots-1) * Resolution)
	stats, _ := s.Edges(time.Hour, end)
	if len(stats) != 1 || stats[0].Requests != Slots {
		t.Fatalf("last hour holds %+v, want %d requests", stats, Slots)
	}
	if st := s.Stats(); st.HistoryBytes > int64(ringChunks)*chunkBytes {
		t.Fatalf("history = %d bytes, more than one ring", st.HistoryBytes)
	}

	// A budget of 4 chunks per series keeps only ~8 minutes of each.
	b := New(Options{MaxHistoryBytes: 8 * chunkBytes})
	for i := 0; i < 600; i++ {
		now := t0.Add(time.Duration(i) * Resolution)
		b.Merge(&telemetry.Report{Requests: []telemetry.RequestStat{
			stat(labels("source", "a", "r1", "v1", "200"), 1, 0), stat(labels("source", "b", "r1", "v1", "200"), 1, 0)}}, now)
	}
	st := b.Stats()
	if st.HistoryBytes > 8*chunkBytes || st.EvictedChunks == 0 {
		t.Fatalf("budget not enforced: %+v", st)
	}
	stats, _ = b.Edges(5*time.Minute, t0.Add(599*Resolution))
	if len(stats) != 2 || stats[0].Requests < 150 {
		t.Fatalf("recent history must survive eviction: %+v", stats)
	}
}

func TestQuantile(t *testing.T) {
	counts := make([]uint64, nDur)
	if !math.IsNaN(Quantile(0.5, counts)) {
		t.Fatal("empty histogram must give NaN")
	}
	// 100 requests in (5, 10] ms: p50 interpolates to the middle.
	counts[3] = 100
	if got := Quantile(0.5, counts); got != 7.5 {
		t.Fatalf("p50 = %v, want 7.5", got)
	}
	// 90 fast (<= 0.5 ms), 10 slow in (100, 250]: p95 is in the slow bucket.
	counts = make([]uint64, nDur)
	counts[0], counts[7] = 90, 10
	if got := Quantile(0.95, counts); got != 175 {
		t.Fatalf("p95 = %v, want 175", got)
	}
	if got := Quantile(0.5, counts); math.Abs(got-0.5*50/90) > 1e-9 {
		t.Fatalf("p50 = %v", got)
	}
	// Everything above the last bound: the highest finite bound.
	counts = make([]uint64, nDur)
	counts[nDur-1] = 3
	if got := Quantile(0.99, counts); got != 3600000 {
		t.Fatalf("p99 in +Inf = %v", got)
	}
}

func TestIntakeHandler(t *testing.T) {
	s := New(Options{})
	mux := http.NewServeMux()
	s.Register(mux, HTTPOptions{})
	post := func(body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/telemetry", strings.NewReader(body)))
		return rec
	}
	if rec := post(`{"node":"x","requests":[{"labels":{"reporter":"source"},"count":2,"durationBuckets":[1,1]}]}`); rec.Code != 400 ||
		!strings.Contains(rec.Body.String(), "durationBuckets") {
		t.Fatalf("wrong bucket count: %d %s", rec.Code, rec.Body)
	}
	if rec := post(`{"node":"x","requests":[{"labels":{"reporter":"source"},"count":2}]}`); rec.Code != 204 {
		t.Fatalf("valid report: %d %s", rec.Code, rec.Body)
	}
	big := `{"node":"` + strings.Repeat("x", MaxReportBytes) + `"}`
	if rec := post(big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("5 MiB report: %d", rec.Code)
	}
	if s.Stats().Reports != 1 {
		t.Fatalf("reports = %d, want 1", s.Stats().Reports)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/graph?window=1s", nil))
	if rec.Code != 400 {
		t.Fatalf("window=1s: %d", rec.Code)
	}
}

func TestTracesBounded(t *testing.T) {
	s := New(Options{MaxTraces: 50, MaxSpans: 4})
	for i := 0; i < 120; i++ {
		var spans []telemetry.Span
		for j := 0; j < 6; j++ {
			sp := telemetry.Span{
				TraceID: fmt.Sprintf("%032x", i+1), SpanID: fmt.Sprintf("%016x", j+1), Name: "GET /", Kind: "SERVER",
				Start: t0.Add(time.Duration(j) * time.Millisecond), End: t0.Add(time.Duration(j+10) * time.Millisecond),
				Attributes: map[string]string{"istio.canonical_service": []string{"productpage", "reviews"}[j%2]},
			}
			if j > 0 {
				sp.ParentSpanID = fmt.Sprintf("%016x", j)
			}
			spans = append(spans, sp)
		}
		spans = append(spans, telemetry.Span{TraceID: "short", SpanID: "x"})
		s.Merge(&telemetry.Report{Node: "sidecar~127.0.0.1~productpage-v1-abc.default~default.svc.cluster.local", Spans: spans}, t0)
	}
	st := s.Traces.Stats()
	if st.Traces != 50 || st.DroppedSpans != 120*3 {
		t.Fatalf("trace stats = %+v, want 50 traces, 360 dropped spans", st)
	}
	list := s.Traces.List("", 1000)
	if len(list) != 50 || list[0].TraceID != fmt.Sprintf("%032x", 120) {
		t.Fatalf("list: %d traces, newest %s", len(list), list[0].TraceID)
	}
	sum := list[0]
	if sum.Spans != 4 || sum.RootName != "GET /" || sum.RootSvc != "productpage" || sum.DurationMs != 13 ||
		strings.Join(sum.Services, ",") != "productpage,reviews" {
		t.Fatalf("summary = %+v", sum)
	}
	if got := s.Traces.List("reviews.default.svc.cluster.local", 5); len(got) != 5 {
		t.Fatalf("filter by service host: %d", len(got))
	}
	if _, ok := s.Traces.Get(fmt.Sprintf("%032x", 1)); ok {
		t.Fatal("the oldest trace should be evicted")
	}
	d, ok := s.Traces.Get(strings.ToUpper(fmt.Sprintf("%032x", 100)))
	if !ok || len(d.Spans) != 4 || d.DroppedSpans != 2 {
		t.Fatalf("get: ok=%v %+v", ok, d)
	}
	if got := ServiceOf(&telemetry.Span{}, "sidecar~127.0.0.1~reviews-v2-xyz.default~default.svc.cluster.local"); got != "reviews-v2-xyz" {
		t.Fatalf("service from node = %q", got)
	}
}
