package http1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func get(t *testing.T, tr *Transport, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func pools(tr *Transport) int {
	n := 0
	tr.hosts.Range(func(any, any) bool { n++; return true })
	return n
}

// TestTransportReuse: kept-alive connections are reused, and a pool that
// holds nothing any more is forgotten.
func TestTransportReuse(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := NewTransport(TransportOptions{MaxIdlePerHost: 4})
	for range 10 {
		if code, body := get(t, tr, srv.URL+"/"); code != 200 || body != "ok" {
			t.Fatalf("%d %q", code, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 10 sequential requests, want 1", n)
	}
	tr.CloseIdleConnections()
	if n := pools(tr); n != 0 {
		t.Fatalf("%d pools left after closing every connection", n)
	}
}

// TestTransportStaleConnection: a request on a kept-alive connection the
// server has closed meanwhile goes out again on a new one.
func TestTransportStaleConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// Answer one request, then close: the client keeps the
				// connection idle and finds it dead on the next request.
				br := bufio.NewReader(c)
				if _, _, err := readHead(br, nil, Limits{}, true); err == nil {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
				time.Sleep(10 * time.Millisecond)
				c.Close()
			}()
		}
	}()
	tr := NewTransport(TransportOptions{MaxIdlePerHost: 4})
	url := "http://" + ln.Addr().String() + "/"
	get(t, tr, url)
	time.Sleep(50 * time.Millisecond) // the server closes the idle connection
	if code, body := get(t, tr, url); code != 200 || body != "ok" {
		t.Fatalf("after the server closed the idle connection: %d %q", code, body)
	}
}

// TestTransportMaxConns: requests beyond MaxConnsPerHost wait for a
// connection instead of opening more.
func TestTransportMaxConns(t *testing.T) {
	var open, most atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	tr := NewTransport(TransportOptions{MaxIdlePerHost: 4, MaxConnsPerHost: 2, Dial: func(ctx context.Context, n, a string) (net.Conn, error) {
		if v := open.Add(1); v > most.Load() {
			most.Store(v)
		}
		return (&net.Dialer{}).DialContext(ctx, n, a)
	}})
	done := make(chan string, 5)
	for range 5 {
		go func() {
			_, body := get(t, tr, srv.URL)
			done <- body
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	for range 5 {
		if b := <-done; b != "ok" {
			t.Fatalf("body %q", b)
		}
	}
	if m := most.Load(); m > 2 {
		t.Fatalf("%d connections dialed, limit 2", m)
	}
}

// TestTransportRefusesBadHeaders: a request whose header would split the
// message is not sent.
func TestTransportRefusesBadHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the request reached the server: %v", r.Header)
	}))
	defer srv.Close()
	tr := NewTransport(TransportOptions{})
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header["X-Evil"] = []string{"a\r\nX-Injected: 1"}
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("err %v, want the header refused", err)
	}
}

// idlePool fills tr's pool for srv with n idle kept-alive connections:
// n requests held by the handler until all n are in, so each has its own.
func idlePool(t *testing.T, tr *Transport, url string, n int, arrived, release chan struct{}) {
	t.Helper()
	done := make(chan string, n)
	for range n {
		go func() {
			req, _ := http.NewRequest("GET", url, nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				done <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- string(b)
		}()
	}
	for range n {
		<-arrived
	}
	close(release)
	for range n {
		if b := <-done; b != "ok" {
			t.Fatalf("filling the pool: %q", b)
		}
	}
	p, _ := tr.hosts.Load(strings.TrimPrefix(url, "http://"))
	hp := p.(*hostPool)
	hp.mu.Lock()
	defer hp.mu.Unlock()
	if len(hp.idle) != n {
		t.Fatalf("%d idle connections, want %d", len(hp.idle), n)
	}
}

// blockingServer answers "ok" once release is closed, announcing each
// request on arrived.
func blockingServer() (srv *httptest.Server, arrived, release chan struct{}) {
	arrived, release = make(chan struct{}, 16), make(chan struct{})
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	}))
	return srv, arrived, release
}

// TestTransportServerClosedEveryIdleConnection: a server that closes all
// its idle connections at once (an app's graceful shutdown, a proxy's
// drain, an idle timeout) leaves the pool full of dead connections; the
// next request gets past all of them to a new one, not a failure per dead
// connection.
func TestTransportServerClosedEveryIdleConnection(t *testing.T) {
	srv, arrived, release := blockingServer()
	defer srv.Close()
	tr := NewTransport(TransportOptions{MaxIdlePerHost: 8})
	idlePool(t, tr, srv.URL, 4, arrived, release)
	srv.CloseClientConnections() // the listener stays: a new connection is served
	for i := range 3 {
		if code, body := get(t, tr, srv.URL); code != 200 || body != "ok" {
			t.Fatalf("request %d after the server closed its idle connections: %d %q", i, code, body)
		}
	}
}

// TestTransportServerGone: once the server has closed its idle
// connections and its listener (a terminating pod), a request fails as a
// dial failure (which a proxy retries on another endpoint: nothing
// reached the server), not as a connection the server reset.
func TestTransportServerGone(t *testing.T) {
	srv, arrived, release := blockingServer()
	tr := NewTransport(TransportOptions{MaxIdlePerHost: 8})
	idlePool(t, tr, srv.URL, 4, arrived, release)
	srv.Close() // closes the listener, then every connection
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a response from a closed server")
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("err %v (%T), want the dial's error", err, err)
	}
	if n := pools(tr); n != 0 {
		t.Fatalf("%d pools left holding dead connections", n)
	}
}
