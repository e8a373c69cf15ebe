package http1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve starts a Server of h on a loopback socket and returns its address.
func serve(t *testing.T, h http.Handler, o ServerOptions) string {
	t.Helper()
	s := NewServer(h, o)
	addr := listen(t, s)
	t.Cleanup(s.Close)
	return addr
}

// listen serves s's connections from a loopback socket (closed when the
// test ends) and returns its address.
func listen(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.ServeConn(context.Background(), c)
		}
	}()
	return ln.Addr().String()
}

// exchange writes raw to addr and returns everything the server sends
// until it closes the connection (or 5s pass).
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// echoBody answers with the request body.
var echoBody = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	w.Header().Set("X-Method", r.Method)
	w.Write(b)
})

// TestRefusals: what the codec refuses, each answered with its status and
// the connection closed, so nothing after it is read as a request.
func TestRefusals(t *testing.T) {
	addr := serve(t, echoBody, ServerOptions{})
	many := "GET / HTTP/1.1\r\nHost: a\r\n"
	for i := range 101 {
		many += "X-H" + strings.Repeat("x", i%5) + ": v\r\n"
	}
	for _, tc := range []struct {
		name, req string
		status    string
	}{
		{"content-length and transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
		{"transfer-encoding then content-length", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", "400"},
		{"transfer-encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"repeated content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "400"},
		{"conflicting content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "400"},
		{"content-length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", "400"},
		{"signed content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", "400"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", "400"},
		{"obs-fold of transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", "400"},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "400"},
		{"negative chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n", "400"},
		{"overlong chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\nabc\r\n0\r\n\r\n", "400"},
		{"chunk without its CRLF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", "400"},
		{"unsupported transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "501"},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", "400"},
		{"CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", "400"},
		{"space in a name", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", "400"},
		{"space before the colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", "400"},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", "400"},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", "400"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400"},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
		{"bad version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", "400"},
		{"HTTP/2 version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505"},
		{"control character in the target", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
		{"headers over 60 KiB", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 61<<10) + "\r\n\r\n", "431"},
		{"more than 100 headers", many + "\r\n", "431"},
		{"TLS to a plaintext port", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "400"},
		{"unsupported expectation", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", "417"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := exchange(t, addr, tc.req)
			if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+" ") {
				t.Fatalf("answer %q, want status %s", first(got), tc.status)
			}
			if strings.Count(got, "HTTP/1.1 ") != 1 || !strings.Contains(got, "Connection: close\r\n") {
				t.Fatalf("the refusal must be the only answer and close the connection: %q", got)
			}
		})
	}
}

func first(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// TestFraming: bodies by Content-Length and chunked (with extensions and
// trailers), pipelined requests, HTTP/1.0 keep-alive, HEAD, 100-continue.
func TestFraming(t *testing.T) {
	addr := serve(t, echoBody, ServerOptions{})
	got := exchange(t, addr, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"+
		"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\nde\r\n1\r\nf\r\n0\r\nX-T: 1\r\n\r\n"+
		"HEAD /c HTTP/1.1\r\nHost: a\r\n\r\n"+
		"GET /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(strings.NewReader(got))
	for i, want := range []struct{ method, body string }{{"POST", "abc"}, {"POST", "def"}, {"HEAD", ""}, {"GET", ""}} {
		req := &http.Request{Method: want.method}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("response %d: %v (all: %q)", i, err, got)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want.body || resp.Header.Get("X-Method") != want.method {
			t.Fatalf("response %d: %d %q %v, want 200 %q", i, resp.StatusCode, b, resp.Header, want.body)
		}
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Fatalf("bytes after the last response: %q", rest)
	}

	got = exchange(t, addr, "POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"+
		"GET / HTTP/1.0\r\n\r\n")
	if strings.Count(got, "HTTP/1.0 200 OK") != 2 || !strings.Contains(got, "Connection: keep-alive") {
		t.Fatalf("HTTP/1.0 keep-alive: %q", got)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
	br = bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	if line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim response %q, want 100 Continue", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "ok")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("body after 100-continue %q", b)
	}
}

// TestStreaming: a flushed response goes out chunked, each flush at once;
// trailers follow the last chunk; a short unflushed body gets a length.
func TestStreaming(t *testing.T) {
	step := make(chan struct{})
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/short" {
			io.WriteString(w, "short")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		<-step
		io.WriteString(w, "data: 2\n\n")
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	}), ServerOptions{})
	resp, err := http.Get("http://" + addr + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 {
		t.Fatalf("framing: length %d, transfer encoding %v; want chunked", resp.ContentLength, resp.TransferEncoding)
	}
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	if err != nil || string(buf[:n]) != "data: 1\n\n" {
		t.Fatalf("first event %q %v (before the handler went on)", buf[:n], err)
	}
	close(step)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "data: 2\n\n" {
		t.Fatalf("second event %q %v", rest, err)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("trailers %v, want Grpc-Status: 0", resp.Trailer)
	}
	resp, err = http.Get("http://" + addr + "/short")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ContentLength != 5 || string(b) != "short" || resp.Header.Get("Content-Type") == "" || resp.Header.Get("Date") == "" {
		t.Fatalf("short body: length %d %q, header %v", resp.ContentLength, b, resp.Header)
	}
}

// TestClientGone: a client that closes its connection during a slow
// request cancels the request's context.
func TestClientGone(t *testing.T) {
	cancelled := make(chan error, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cancelled <- r.Context().Err()
		case <-time.After(5 * time.Second):
			cancelled <- errors.New("not cancelled")
		}
	}), ServerOptions{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(2 * watchAfter)
	c.Close()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("request context: %v, want cancelled", err)
	}
}

// TestFallback: HTTP/2 prior knowledge is handed over with its bytes.
func TestFallback(t *testing.T) {
	got := make(chan string, 1)
	addr := serve(t, echoBody, ServerOptions{Fallback: func(c net.Conn) {
		b := make([]byte, 24)
		io.ReadFull(c, b)
		got <- string(b)
		c.Close()
	}})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	if s := <-got; s != "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
		t.Fatalf("fallback read %q", s)
	}
}

// TestShutdown: Shutdown closes idle connections at once, lets a request
// in flight finish (its answer says the connection closes), and returns
// when every connection has ended.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	}), ServerOptions{})
	addr := listen(t, s)
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, bufio.NewReader(c)
	}
	idle, idleR := dial()
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(idleR, nil)
	if err != nil || resp.Close {
		t.Fatalf("first answer: %v %v", resp, err)
	}
	io.ReadAll(resp.Body)
	busy, busyR := dial()
	defer busy.Close()
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	if _, err := idleR.ReadByte(); err == nil {
		t.Fatal("idle connection still open during Shutdown")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	resp, err = http.ReadResponse(busyR, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" || !resp.Close {
		t.Fatalf("in-flight answer %q, close %v; want done and close", b, resp.Close)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestShutdownServesFirstRequest: a connection accepted before Shutdown
// whose first request is still on the way is not closed as idle: the
// client has just connected and sent it, and a close would fail it as a
// reset (a kept-alive connection found closed is safe to send on again;
// a new one is not). The request is answered, with the connection's close.
func TestShutdownServesFirstRequest(t *testing.T) {
	s := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served") }), ServerOptions{})
	addr := listen(t, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	waitTracked(t, s)
	// Shutdown's pass over the connections, before the request arrives.
	s.shutdown.Store(true)
	if n := s.closeIdle(time.Now()); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the first request of a connection accepted before Shutdown: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "served" || !resp.Close {
		t.Fatalf("answer %q, close %v; want served and close", b, resp.Close)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// One that never sends is closed once the grace is over.
	s2 := NewServer(http.NotFoundHandler(), ServerOptions{})
	a, b2 := net.Pipe()
	defer a.Close()
	go s2.ServeConn(context.Background(), b2)
	waitTracked(t, s2)
	s2.shutdown.Store(true)
	s2.closeIdle(time.Now().Add(firstRequestGrace))
	a.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a new connection silent past the grace: read %v, want it closed", err)
	}
}

// waitTracked polls until s serves a connection.
func waitTracked(t *testing.T, s *Server) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n > 0 {
			return
		}
	}
	t.Fatal("the server never took the connection")
}

// TestShutdownWaitsForHeld: a connection a listener accepted and is still
// handshaking when Shutdown begins (Hold) is served, its first request
// answered with the connection's close, and Shutdown ends after it.
func TestShutdownWaitsForHeld(t *testing.T) {
	s := NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "served") }), ServerOptions{})
	release := s.Hold()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	for !s.shutdown.Load() {
		time.Sleep(time.Millisecond) // polling for Shutdown to have begun
	}
	client, server := net.Pipe()
	defer client.Close()
	client.SetDeadline(time.Now().Add(5 * time.Second))
	served := make(chan struct{})
	go func() {
		defer close(served)
		defer release()
		s.ServeConn(context.Background(), server)
	}()
	go io.WriteString(client, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatalf("a held connection during Shutdown: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "served" || !resp.Close {
		t.Fatalf("answer %q, close %v; want served and close", b, resp.Close)
	}
	<-served
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Once Shutdown is over, a connection is refused.
	c2, s2 := net.Pipe()
	defer c2.Close()
	go s.ServeConn(context.Background(), s2)
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a connection after Shutdown: read %v, want it closed", err)
	}
}
