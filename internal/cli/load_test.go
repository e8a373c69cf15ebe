package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// memServer is an HTTP server on an in-memory network: inside a
// synctest bubble the whole load run (pacing, requests, handlers) goes by
// the bubble's fake clock, so its counts do not depend on how busy the
// machine is.
type memServer struct {
	conns chan net.Conn
	done  chan struct{}
	srv   *http.Server
}

func newMemServer(h http.HandlerFunc) *memServer {
	s := &memServer{conns: make(chan net.Conn), done: make(chan struct{}), srv: &http.Server{Handler: h}}
	go s.srv.Serve(s)
	return s
}

func (s *memServer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *memServer) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	return nil
}

func (s *memServer) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }

// dial connects a client to the server with net.Pipe.
func (s *memServer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case s.conns <- server:
		return client, nil
	case <-s.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestRunLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		var gotHeader atomic.Value
		srv := newMemServer(func(w http.ResponseWriter, r *http.Request) {
			gotHeader.Store(r.Header.Get("End-User"))
			if n.Add(1)%5 == 0 {
				http.Error(w, "boom", 503)
				return
			}
			w.Write([]byte("{\n  \"message\": \"hi\"\n}\n"))
		})
		defer srv.srv.Close()
		var out bytes.Buffer
		err := runLoad(context.Background(), loadOptions{url: "http://mem/", qps: 50, duration: 400 * time.Millisecond, timeout: time.Second,
			concurrency: 2, headers: []string{"end-user: jason"}, failOnError: true, dial: srv.dial}, &out)
		if _, ok := err.(exitError); !ok {
			t.Errorf("want exit error for the 503s, got %v", err)
		}
		if got := n.Load(); got != 20 {
			t.Errorf("%d requests, want qps x duration = 20", got)
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
		// The pacing window, 400ms of the bubble's clock, is the elapsed time.
		if !strings.Contains(out.String(), "20 requests in 400ms (50.0/s), 4 failed") ||
			!strings.Contains(out.String(), "status 200: 16\nstatus 503: 4\n") || !strings.HasPrefix(lines[len(lines)-1], "latency p50") {
			t.Errorf("summary:\n%s", out.String())
		}
	})
}

// TestRunLoadBoundedByDuration: quiet, and no request starts at or after
// the duration when the server is slower than the pace.
func TestRunLoadBoundedByDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := newMemServer(func(w http.ResponseWriter, r *http.Request) { time.Sleep(160 * time.Millisecond) })
		defer slow.srv.Close()
		var out bytes.Buffer
		if err := runLoad(context.Background(), loadOptions{url: "http://mem/", qps: 100, duration: 300 * time.Millisecond, timeout: time.Second,
			concurrency: 1, quiet: true, dial: slow.dial}, &out); err != nil {
			t.Fatal(err)
		}
		// Requests start at 0 and 160ms (the one due at 10ms waits for the
		// only worker); at 300ms the pacing ends with the worker still
		// busy, and the run ends when its request does, at 320ms.
		if strings.Count(out.String(), "\n") != 3 || !strings.Contains(out.String(), "2 requests in 320ms") {
			t.Errorf("quiet output:\n%s", out.String())
		}
	})
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
