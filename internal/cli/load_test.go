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
