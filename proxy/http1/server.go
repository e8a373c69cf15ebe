package http1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ServerOptions tune a Server. Zero values pick the defaults noted.
type ServerOptions struct {
	Limits Limits
	// ReadHeaderTimeout bounds reading a request head (default 30s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a connection idle between requests (default 5m).
	IdleTimeout time.Duration
	// ErrorLog receives handler panics and refused requests (default: discarded).
	ErrorLog *log.Logger
	// Fallback receives a connection whose next request this codec does
	// not serve: HTTP/2 with prior knowledge ("PRI * HTTP/2.0"), and
	// CONNECT. The connection replays the bytes already read. Without a
	// Fallback such requests are refused.
	Fallback func(net.Conn)
}

// Server serves HTTP/1.1 connections with a purpose-made codec: one
// goroutine per connection, reading, handling and writing each request in
// turn, with buffers kept per connection and a handful of allocations per
// request. It is what a proxy's listener needs (every method, streaming
// bodies both ways, trailers, Flush, Hijack), not a general web server.
type Server struct {
	h    http.Handler
	opts ServerOptions

	mu       sync.Mutex
	conns    map[*conn]struct{}
	held     int  // connections on their way (Hold)
	closed   bool // Shutdown is over, or Close was called: no new connection
	shutdown atomic.Bool
}

// NewServer returns a Server of h.
func NewServer(h http.Handler, o ServerOptions) *Server {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.ErrorLog == nil {
		o.ErrorLog = log.New(io.Discard, "", 0)
	}
	return &Server{h: h, opts: o, conns: map[*conn]struct{}{}}
}

// Connection states.
const (
	stateNew    int32 = iota // accepted, no request begun yet
	stateIdle                // between requests
	stateActive              // reading or serving a request
)

// firstRequestGrace is how long Shutdown waits for a new connection's
// first request (net/http's figure). A client that has just connected has
// its request on the way: closing the connection under it would fail that
// request as a reset, which the client cannot tell from one the server
// acted on, while an idle kept-alive connection the client finds closed is
// safe to send on again.
const firstRequestGrace = 5 * time.Second

// bufSize is the size of a connection's read and write buffers: a
// request head and a small response fit; larger bodies bypass them.
const bufSize = 4 << 10

var (
	readerPool sync.Pool
	writerPool sync.Pool
)

func getReader(r io.Reader) *bufio.Reader {
	if v := readerPool.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufSize)
}

func getWriter(w io.Writer) *bufio.Writer {
	if v := writerPool.Get(); v != nil {
		bw := v.(*bufio.Writer)
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, bufSize)
}

// ServeConn serves requests on c until the client or a request closes
// it, Shutdown, or a protocol error. ctx is the connection's base context;
// requests carry it with http.LocalAddrContextKey set, and it is cancelled
// when the connection ends (or, during a slow request, when the client is
// seen to have gone). A *tls.Conn must be handshaken already: its state
// is every request's r.TLS.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	s.ServeConnLimits(ctx, c, nil)
}

// ServeConnLimits is ServeConn with the connection's own request head
// limits (nil: the Server's), as a listener whose configuration sets them
// per connection needs.
func (s *Server) ServeConnLimits(ctx context.Context, c net.Conn, l *Limits) {
	cc := &conn{srv: s, rwc: c, remote: c.RemoteAddr().String(), limits: s.opts.Limits, since: time.Now()}
	if l != nil {
		cc.limits = *l
	}
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		cc.tlsState = &st
	}
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	cc.ctx, cc.cancel = context.WithCancel(ctx)
	cc.tmpl = *(&http.Request{}).WithContext(cc.ctx)
	if !s.track(cc) {
		c.Close()
		cc.cancel()
		return
	}
	cc.serve()
}

// Hold tells s that a connection is on its way to ServeConn (a listener
// handshaking it): Shutdown does not end before release is called, so the
// connection is served (its first request, then closed) even if Shutdown
// began meanwhile. Call release once ServeConn has returned, or when the
// connection will not come.
func (s *Server) Hold() (release func()) {
	s.mu.Lock()
	s.held++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.held--
			s.mu.Unlock()
		})
	}
}

// track adds c to the served connections unless s is closed; a connection
// that comes during Shutdown is new, so it makes its first request.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown closes idle connections, lets active ones finish their request
// and new ones make their first (up to firstRequestGrace), closing each
// after its answer, and waits for every connection to end or ctx to be
// done, when the remaining ones are closed and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Store(true)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle(time.Now()) == 0 {
			return nil // closeIdle closed s
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// closeIdle closes the connections between requests, and the new ones
// that made no request within firstRequestGrace, and returns how many
// connections there were and are on their way. When there are none it
// closes s to new ones.
func (s *Server) closeIdle(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns)+s.held == 0 {
		s.closed = true
		return 0
	}
	for c := range s.conns {
		switch c.state.Load() {
		case stateIdle:
			c.rwc.Close()
		case stateNew:
			if now.Sub(c.since) >= firstRequestGrace {
				c.rwc.Close()
			}
		}
	}
	return len(s.conns) + s.held
}

// Close closes every connection at once.
func (s *Server) Close() {
	s.shutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.rwc.Close()
	}
}

// conn is one served connection.
type conn struct {
	srv      *Server
	rwc      net.Conn
	limits   Limits // request heads and trailers
	cr       connReader
	br       *bufio.Reader
	bw       *bufio.Writer
	ctx      context.Context
	cancel   context.CancelFunc
	tmpl     http.Request // carries ctx into every request
	remote   string
	tlsState *tls.ConnectionState
	head     []byte
	w        response
	state    atomic.Int32
	since    time.Time // accepted
	hijacked bool

	// The watch notices a client that leaves during a slow request (see
	// arm).
	watch     *time.Timer
	watchDone chan struct{}
	armed     bool
}

// connReader is what the buffered reader reads: the connection, after a
// byte the watch may have read ahead.
type connReader struct {
	c       net.Conn
	pending bool
	b       byte
	err     error // the watch saw the connection end
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.pending && len(p) > 0 {
		p[0], r.pending = r.b, false
		return 1, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	return r.c.Read(p)
}

// maxDrain is how much of an unread request body is read to keep the
// connection (net/http reads 256 KiB).
const maxDrain = 256 << 10

// watchAfter is how long a request may run before the connection is
// watched for the client going away.
const watchAfter = 10 * time.Millisecond

var aLongTimeAgo = time.Unix(1, 0)

func (c *conn) serve() {
	c.cr.c = c.rwc
	c.br = getReader(&c.cr)
	c.bw = getWriter(c.rwc)
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			c.srv.opts.ErrorLog.Printf("http1: panic serving %s: %v", c.remote, err)
		}
		c.cancel()
		c.srv.untrack(c)
		c.disarm()
		if !c.hijacked {
			c.rwc.Close()
			c.br.Reset(nil)
			readerPool.Put(c.br)
			c.bw.Reset(nil)
			writerPool.Put(c.bw)
		}
	}()
	o := &c.srv.opts
	for {
		if c.br.Buffered() == 0 {
			_ = c.rwc.SetReadDeadline(time.Now().Add(o.IdleTimeout))
			if _, err := c.br.Peek(1); err != nil {
				return
			}
		}
		// A request that arrived is served even during Shutdown; the
		// connection closes after its answer.
		c.state.Store(stateActive)
		_ = c.rwc.SetReadDeadline(time.Now().Add(o.ReadHeaderTimeout))
		head, lines, err := readHead(c.br, c.head, c.limits, true)
		c.head = head[:0]
		if err != nil {
			var he *Error
			if errors.As(err, &he) {
				c.refuse(he)
			}
			return
		}
		if isPreface(head) || hasMethod(head, "CONNECT") {
			c.fallback(head)
			return
		}
		q := new(request)
		f, err := parseRequest(string(head), lines, &c.tmpl, q)
		if err != nil {
			var he *Error
			if errors.As(err, &he) {
				c.refuse(he)
			}
			return
		}
		_ = c.rwc.SetReadDeadline(time.Time{})
		if !c.serveRequest(q, f) {
			return
		}
		c.state.Store(stateIdle)
	}
}

// serveRequest runs the handler for q and completes its response. It
// reports whether the connection may carry another request.
func (c *conn) serveRequest(q *request, f framing) bool {
	r := &q.r
	r.RemoteAddr, r.TLS = c.remote, c.tlsState
	var body *bodyReader
	if f.chunked || f.length > 0 {
		body = &bodyReader{br: c.br, remaining: f.length, chunked: f.chunked, limits: c.limits}
		if _, ok := r.Header["Trailer"]; ok && f.chunked {
			r.Trailer = http.Header{}
			body.trailer = r.Trailer
		}
		if q.expect {
			body.onFirstRead = c.send100
		}
		r.Body = body
	}
	w := &c.w
	w.reset(c, q)
	if body == nil && c.br.Buffered() == 0 {
		c.arm()
	}
	c.srv.h.ServeHTTP(w, r)
	if c.hijacked {
		return false
	}
	c.disarm()
	if body != nil {
		var he *Error
		if errors.As(body.failure(), &he) && !w.wroteHeader {
			// The body broke the framing and the handler answered
			// nothing: the client gets the refusal.
			c.refuse(he)
			return false
		}
	}
	if err := w.finish(); err != nil {
		return false
	}
	keep := q.keep && !w.closeAfter && c.cr.err == nil
	if body != nil && !body.finish(maxDrain) {
		keep = false
	}
	if !keep || c.srv.shutdown.Load() {
		_ = c.bw.Flush()
		return false
	}
	// Pipelined requests already read are answered before flushing.
	if c.br.Buffered() == 0 {
		if c.bw.Flush() != nil {
			return false
		}
	}
	return true
}

// send100 sends the interim response a client that expects 100-continue
// waits for before its body.
func (c *conn) send100() {
	if c.w.wroteHeader {
		return
	}
	_, _ = c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	_ = c.bw.Flush()
}

// arm starts the watch for this request: if it runs longer than
// watchAfter, the connection is read (one byte, given back to the next
// request) so that a client that closed it cancels the request's context,
// as net/http's background read does for every request.
func (c *conn) arm() {
	c.armed = true
	if c.watch == nil {
		c.watchDone = make(chan struct{}, 1)
		c.watch = time.AfterFunc(watchAfter, c.watchConn)
		return
	}
	c.watch.Reset(watchAfter)
}

func (c *conn) watchConn() {
	var b [1]byte
	n, err := c.rwc.Read(b[:])
	if n == 1 {
		c.cr.b, c.cr.pending = b[0], true
	} else if err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			c.cr.err = err
			c.cancel()
		}
	}
	c.watchDone <- struct{}{}
}

// disarm stops the watch, waiting for a read it started to end.
func (c *conn) disarm() {
	if !c.armed {
		return
	}
	c.armed = false
	if c.watch.Stop() {
		return
	}
	select {
	case <-c.watchDone:
		return
	default:
	}
	_ = c.rwc.SetReadDeadline(aLongTimeAgo)
	<-c.watchDone
	_ = c.rwc.SetReadDeadline(time.Time{})
}

// refuse answers a request the codec refuses, as net/http does: the
// status, "Connection: close", then the connection is closed after the
// client's remaining bytes are read for a while (so that a reset cannot
// destroy the answer).
func (c *conn) refuse(e *Error) {
	c.srv.opts.ErrorLog.Printf("http1: refused a request from %s: %s", c.remote, e.Reason)
	text := http.StatusText(e.Status)
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%d %s: %s",
		e.Status, text, len(text)+len(e.Reason)+6, e.Status, text, e.Reason)
	if c.bw.Flush() != nil {
		return
	}
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.CopyN(io.Discard, c.rwc, maxDrain)
}

// fallback hands the connection, replaying head and what is buffered
// after it, to ServerOptions.Fallback.
func (c *conn) fallback(head []byte) {
	fb := c.srv.opts.Fallback
	if fb == nil {
		c.refuse(&Error{Status: http.StatusNotImplemented, Reason: "request not supported"})
		return
	}
	_ = c.rwc.SetReadDeadline(time.Time{})
	buffered, _ := c.br.Peek(c.br.Buffered())
	prefix := make([]byte, 0, len(head)+len(buffered)+1)
	prefix = append(prefix, head...)
	prefix = append(prefix, buffered...)
	c.hijacked = true
	c.srv.untrack(c)
	fb(&replayConn{Conn: c.rwc, prefix: prefix})
}

func isPreface(head []byte) bool { return string(head[:min(len(head), 16)]) == "PRI * HTTP/2.0\r\n" }

func hasMethod(head []byte, m string) bool {
	return len(head) > len(m) && string(head[:len(m)]) == m && head[len(m)] == ' '
}

// replayConn reads prefix before the connection.
type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn returns the connection under the replay.
func (c *replayConn) NetConn() net.Conn { return c.Conn }
