package observe

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/weft-mesh/weft/proxy/stats"
	"github.com/weft-mesh/weft/proxy/trace"
	"github.com/weft-mesh/weft/telemetry"
)

func TestReportDeltasAndRetry(t *testing.T) {
	var mu sync.Mutex
	var got []telemetry.Report
	fail := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != ReportPath {
			http.NotFound(w, r)
			return
		}
		var rep telemetry.Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if fail {
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		got = append(got, rep)
	}))
	defer srv.Close()

	reg, spans := stats.NewRegistry(0), trace.NewBuffer(0)
	s := reg.Intern(stats.Identity{Reporter: stats.ReporterSource})
	rep := NewReporter(ReporterOptions{URL: srv.URL, Node: "sidecar~1", Stats: reg, Spans: spans})
	ctx := context.Background()

	s.RecordHTTP(stats.ProtoHTTP, 200, "", "", time.Millisecond, 0, 10)
	spans.Add(telemetry.Span{Name: "a"})
	if err := rep.Flush(ctx); err == nil {
		t.Fatal("flush against a failing server succeeded")
	}
	s.RecordHTTP(stats.ProtoHTTP, 200, "", "", time.Millisecond, 0, 10)
	s.TCP("").Opened()
	spans.Add(telemetry.Span{Name: "b"})
	mu.Lock()
	fail = false
	mu.Unlock()
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.RecordHTTP(stats.ProtoHTTP, 200, "", "", time.Millisecond, 0, 10)
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rep.Flush(ctx); err != nil { // nothing new: nothing sent
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d reports, want 2", len(got))
	}
	first := got[0]
	if first.Node != "sidecar~1" || len(first.Requests) != 1 || first.Requests[0].Count != 2 ||
		first.Requests[0].ResponseBytesSum != 20 || len(first.TCP) != 1 || first.TCP[0].Opened != 1 {
		t.Errorf("first report (after a failure) %+v", first)
	}
	if len(first.Spans) != 2 || first.Spans[0].Name != "a" || first.Spans[1].Name != "b" {
		t.Errorf("first report spans %+v", first.Spans)
	}
	if len(got[1].Requests) != 1 || got[1].Requests[0].Count != 1 || len(got[1].TCP) != 0 || len(got[1].Spans) != 0 {
		t.Errorf("second report %+v", got[1])
	}
}

func TestReporterDoesNotHang(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	reg := stats.NewRegistry(0)
	reg.Intern(stats.Identity{}).RecordHTTP(stats.ProtoHTTP, 200, "", "", 0, 0, 0)
	rep := NewReporter(ReporterOptions{URL: srv.URL, Stats: reg, Interval: 100 * time.Millisecond})
	// The control plane never answers: Flush must give up by its own
	// timeout (the guard below only stops a build that hangs).
	done := make(chan error, 1)
	go func() { done <- rep.Flush(context.Background()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no timeout error")
		}
	case <-time.After(time.Minute):
		t.Fatal("Flush hangs on a control plane that never answers")
	}
}
