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
