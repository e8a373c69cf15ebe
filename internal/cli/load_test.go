package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 90: 90 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := percentile(lat, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := percentile([]time.Duration{7 * time.Millisecond}, 99); got != 7*time.Millisecond {
		t.Errorf("one value: %v", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("no values: %v", got)
	}
	// Nearest rank: p50 of 4 values is the 2nd, p90 the 4th.
	four := []time.Duration{1, 2, 3, 4}
	if percentile(four, 50) != 2 || percentile(four, 90) != 4 {
		t.Errorf("four values: p50 %v p90 %v", percentile(four, 50), percentile(four, 90))
	}
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	var rs []loadResult
	for i := 1; i <= 8; i++ {
		rs = append(rs, loadResult{status: 200, latency: time.Duration(i) * ms})
	}
	rs = append(rs, loadResult{status: 503, latency: 9 * ms}, loadResult{status: 302, latency: 10 * ms},
		loadResult{err: "connection refused", latency: 100 * ms}, loadResult{err: "connection refused"})
	s := summarize(rs, 2*time.Second)
	if s.total != 12 || s.failed != 3 || s.answered != 10 {
		t.Errorf("total %d failed %d answered %d", s.total, s.failed, s.answered)
	}
	if s.codes[200] != 8 || s.codes[503] != 1 || s.codes[302] != 1 || s.errors["connection refused"] != 2 {
		t.Errorf("codes %v errors %v", s.codes, s.errors)
	}
	// Latencies are over the answered requests only: 1..10 ms.
	if s.p50 != 5*ms || s.p90 != 9*ms || s.p99 != 10*ms || s.max != 10*ms {
		t.Errorf("p50 %v p90 %v p99 %v max %v", s.p50, s.p90, s.p99, s.max)
	}
	var buf bytes.Buffer
	s.print(&buf, "http://x/")
	for _, want := range []string{"12 requests in 2s (6.0/s), 3 failed", "status 200: 8", "status 302: 1", "status 503: 1",
		"error connection refused: 2", "latency p50 5ms  p90 9ms  p99 10ms  max 10ms"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, buf.String())
		}
	}
	if e := summarize(nil, time.Second); e.total != 0 || e.answered != 0 {
		t.Errorf("empty: %+v", e)
	}
}

func TestRunLoad(t *testing.T) {
	var n atomic.Int32
	var gotHeader atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader.Store(r.Header.Get("End-User"))
		if n.Add(1)%5 == 0 {
			http.Error(w, "boom", 503)
			return
		}
		w.Write([]byte("{\n  \"message\": \"hi\"\n}\n"))
	}))
	defer srv.Close()
	var out bytes.Buffer
	start := time.Now()
	err := runLoad(context.Background(), loadOptions{url: srv.URL, qps: 50, duration: 400 * time.Millisecond, timeout: time.Second,
		concurrency: 2, headers: []string{"end-user: jason"}, failOnError: true}, &out)
	took := time.Since(start)
	if _, ok := err.(exitError); !ok {
		t.Errorf("want exit error for the 503s, got %v", err)
	}
	if got := n.Load(); got != 20 {
		t.Errorf("%d requests, want qps x duration = 20", got)
	}
	if took < 380*time.Millisecond || took > 2*time.Second {
		t.Errorf("took %v for a 400ms run", took)
	}
	if gotHeader.Load() != "jason" {
		t.Errorf("header not sent: %v", gotHeader.Load())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if c := strings.Count(out.String(), `{ "message": "hi" }`); c != 16 {
		t.Errorf("%d body lines, want 16:\n%s", c, out.String())
	}
	if c := strings.Count(out.String(), "[503] boom"); c != 4 {
		t.Errorf("%d 503 lines, want 4", c)
	}
	if !strings.Contains(out.String(), "status 200: 16\nstatus 503: 4\n") || !strings.HasPrefix(lines[len(lines)-1], "latency p50") {
		t.Errorf("summary:\n%s", out.String())
	}

	// Quiet, and bounded by the duration when the server is slow.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(150 * time.Millisecond) }))
	defer slow.Close()
	out.Reset()
	if err := runLoad(context.Background(), loadOptions{url: slow.URL, qps: 100, duration: 300 * time.Millisecond, timeout: time.Second,
		concurrency: 1, quiet: true}, &out); err != nil {
		t.Fatal(err)
	}
	// Requests start at 0 and 150ms; the one due at 10ms waits for the
	// only worker, and none starts at or after 300ms.
	if strings.Count(out.String(), "\n") != 3 || !strings.Contains(out.String(), "2 requests in 3") {
		t.Errorf("quiet output:\n%s", out.String())
	}
}

func TestParseHeaders(t *testing.T) {
	h, host, err := parseHeaders([]string{"Cookie: session=jason", "Host: bookinfo.example", "x-a:1"})
	if err != nil || h.Get("Cookie") != "session=jason" || h.Get("X-A") != "1" || host != "bookinfo.example" {
		t.Errorf("%v %q %v", h, host, err)
	}
	if _, _, err := parseHeaders([]string{"nocolon"}); err == nil {
		t.Error("want an error")
	}
}
