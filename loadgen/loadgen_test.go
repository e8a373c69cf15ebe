package loadgen

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 90: 90 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := Percentile(lat, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := Percentile([]time.Duration{7 * time.Millisecond}, 99); got != 7*time.Millisecond {
		t.Errorf("one value: %v", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("no values: %v", got)
	}
	// Nearest rank: p50 of 4 values is the 2nd, p90 the 4th.
	four := []time.Duration{1, 2, 3, 4}
	if Percentile(four, 50) != 2 || Percentile(four, 90) != 4 {
		t.Errorf("four values: p50 %v p90 %v", Percentile(four, 50), Percentile(four, 90))
	}
}

func TestSummarize(t *testing.T) {
	ms := time.Millisecond
	var rs []Result
	for i := 1; i <= 8; i++ {
		rs = append(rs, Result{Status: 200, Latency: time.Duration(i) * ms})
	}
	rs = append(rs, Result{Status: 503, Latency: 9 * ms}, Result{Status: 302, Latency: 10 * ms},
		Result{Err: "connection refused", Latency: 100 * ms}, Result{Err: "connection refused"})
	s := Summarize(rs, 2*time.Second)
	if s.Total != 12 || s.Failed != 3 || s.Answered != 10 {
		t.Errorf("total %d failed %d answered %d", s.Total, s.Failed, s.Answered)
	}
	if s.Codes[200] != 8 || s.Codes[503] != 1 || s.Codes[302] != 1 || s.Errors["connection refused"] != 2 {
		t.Errorf("codes %v errors %v", s.Codes, s.Errors)
	}
	// Latencies are over the answered requests only: 1..10 ms.
	if s.P50 != 5*ms || s.P90 != 9*ms || s.P99 != 10*ms || s.Max != 10*ms {
		t.Errorf("p50 %v p90 %v p99 %v max %v", s.P50, s.P90, s.P99, s.Max)
	}
	var buf bytes.Buffer
	s.Print(&buf, "http://x/")
	for _, want := range []string{"12 requests in 2s (6.0/s), 3 failed", "status 200: 8", "status 302: 1", "status 503: 1",
		"error connection refused: 2", "latency p50 5ms  p90 9ms  p99 10ms  max 10ms"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, buf.String())
		}
	}
	if e := Summarize(nil, time.Second); e.Total != 0 || e.Answered != 0 {
		t.Errorf("empty: %+v", e)
	}
}

func TestParseHeaders(t *testing.T) {
	h, host, err := ParseHeaders([]string{"Cookie: session=jason", "Host: bookinfo.example", "x-a:1"})
	if err != nil || h.Get("Cookie") != "session=jason" || h.Get("X-A") != "1" || host != "bookinfo.example" {
		t.Errorf("%v %q %v", h, host, err)
	}
	if _, _, err := ParseHeaders([]string{"nocolon"}); err == nil {
		t.Error("want an error")
	}
}
