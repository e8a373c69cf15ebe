package listener

import (
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

	"github.com/weft-mesh/weft/proxy/http1"
)

// ServerOptions tunes a Server. Zero values pick the defaults noted.
type ServerOptions struct {
	// ReadHeaderTimeout bounds reading request headers (default 30s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (default 5m).
	IdleTimeout time.Duration
	// ErrorLog receives net/http's connection-level errors (default: discarded).
	ErrorLog *log.Logger
	// ConnContext, when set, derives each connection's base context
	// (http.Server.ConnContext): requests on the connection carry it.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
}

// Server serves one listener's socket. HTTP/1.1 is served by the proxy's
// own codec (proxy/http1): one goroutine per connection reading, handling
// and writing each request in turn. HTTP/2 is served by net/http: h2c with
// prior knowledge (what gRPC clients speak; the codec hands such a
// connection over with the bytes it read) and h2 over TLS when ALPN picks
// it; so is CONNECT. An HTTP/1.1 "Upgrade: h2c" request is answered over
// HTTP/1.1, which RFC 9113 permits (it deprecates that upgrade).
// Connections the socket hands over as *tls.Conn, or behind the HTTP
// listener's guard (see Dispatch), are handshaken on their own goroutine;
// their requests carry r.TLS. Request heads are bounded by the guard's
// limits (the listener's max_request_headers_kb and max_headers_count),
// else Envoy's defaults: beyond them a request gets 431 and the
// connection is closed.
type Server struct {
	name   string
	ln     net.Listener
	o      ServerOptions
	h1     *http1.Server
	srv    *http.Server
	h2     *connQueue // connections for srv
	active atomic.Int64
	served chan struct{}
}

// Listen binds addr and starts serving h on it in the background.
func Listen(name, addr string, h http.Handler, o ServerOptions) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listener %q: bind %s: %w", name, addr, err)
	}
	return Serve(name, ln, h, o), nil
}

// Serve starts serving h on an already bound socket in the background.
func Serve(name string, ln net.Listener, h http.Handler, o ServerOptions) *Server {
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = 30 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.ErrorLog == nil {
		o.ErrorLog = log.New(io.Discard, "", 0)
	}
	s := &Server{name: name, ln: ln, o: o, served: make(chan struct{}), h2: newConnQueue(ln.Addr())}
	protos := new(http.Protocols)
	protos.SetHTTP1(true) // CONNECT, handed over by the codec
	protos.SetHTTP2(true) // over TLS, when ALPN picks h2
	protos.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{
		Handler:           counting{s: s, h: h},
		Protocols:         protos,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		ErrorLog:          o.ErrorLog,
		// HTTP/2 requests are checked against the listener's own limit
		// (at most this) by the handler.
		MaxHeaderBytes: MaxRequestHeadersKBLimit << 10,
		ConnContext:    chainConnContext(guardContext, o.ConnContext),
	}
	s.h1 = http1.NewServer(counting{s: s, h: h}, http1.ServerOptions{
		Limits:            http1.Limits{MaxHeaderBytes: DefaultMaxRequestHeadersKB << 10, MaxHeaders: DefaultMaxHeadersCount},
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		ErrorLog:          o.ErrorLog,
		Fallback:          s.h2.deliver,
	})
	go func() { _ = s.srv.Serve(s.h2) }()
	go func() {
		defer close(s.served)
		s.accept()
	}()
	return s
}

// accept serves every connection of the socket until it is closed.
func (s *Server) accept() {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.h2.Close()
				return
			}
			// Temporary failure such as EMFILE: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			time.Sleep(delay)
			continue
		}
		delay = 0
		// Held from here: a drain that begins while the connection is
		// handshaken still serves its first request.
		release := s.h1.Hold()
		go func() {
			defer release()
			s.serveConn(c)
		}()
	}
}

// serveConn handshakes a TLS connection, then serves it with the codec,
// or with net/http when ALPN chose h2. The codec enforces HTTP/1.1 framing
// and a guarded connection's limits itself.
func (s *Server) serveConn(c net.Conn) {
	var limits *http1.Limits
	var handshake func() error
	var state func() *tls.ConnectionState
	switch tc := c.(type) {
	case *guardConn:
		handshake, state = tc.handshake, tc.tlsState
		limits = &http1.Limits{MaxHeaderBytes: tc.limits.bytes(), MaxHeaders: tc.limits.count()}
	case *tls.Conn:
		handshake = tc.Handshake
		state = func() *tls.ConnectionState { st := tc.ConnectionState(); return &st }
	case *net.TCPConn:
		_ = tc.SetNoDelay(true)
	}
	if handshake != nil {
		_ = c.SetDeadline(time.Now().Add(s.o.ReadHeaderTimeout))
		if err := handshake(); err != nil {
			s.o.ErrorLog.Printf("listener %q: TLS handshake with %s: %v", s.name, c.RemoteAddr(), err)
			c.Close()
			return
		}
		_ = c.SetDeadline(time.Time{})
		if st := state(); st != nil && st.NegotiatedProtocol == "h2" {
			s.h2.deliver(c)
			return
		}
	}
	ctx := guardContext(context.Background(), c)
	if s.o.ConnContext != nil {
		ctx = s.o.ConnContext(ctx, c)
	}
	s.h1.ServeConnLimits(ctx, c, limits)
}

// Name returns the listener's name.
func (s *Server) Name() string { return s.name }

// Addr returns the bound address (useful when binding port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Active returns the number of requests being served.
func (s *Server) Active() int64 { return s.active.Load() }

// Shutdown stops accepting at once, asks HTTP/2 clients to go away, closes
// idle connections and waits for in-flight requests to finish or ctx to end,
// in which case the remaining connections are closed forcibly.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopAccepting()
	<-s.served // every accepted connection is held or served
	errc := make(chan error, 1)
	go func() { errc <- s.h1.Shutdown(ctx) }()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // StopAccepting closed it already
	}
	err = errors.Join(err, <-errc)
	for err == nil && s.active.Load() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err != nil {
		_ = s.srv.Close()
		s.h1.Close()
		return fmt.Errorf("listener %q: drain: %w", s.name, err)
	}
	return nil
}

// StopAccepting closes the listening socket at once, freeing the port;
// connections already accepted are served until Shutdown.
func (s *Server) StopAccepting() {
	_ = s.ln.Close()
	s.h2.Close()
}

// connQueue is the net.Listener of the net/http server: it accepts the
// connections the codec hands over.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

// deliver hands c to the net/http server, or closes it when the server
// is gone.
func (q *connQueue) deliver(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.closed:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: q.addr, Err: net.ErrClosed}
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// counting tracks in-flight requests, including those on HTTP/2 connections
// that http.Server.Shutdown does not wait for.
type counting struct {
	s *Server
	h http.Handler
}

func (c counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.s.active.Add(1)
	defer c.s.active.Add(-1)
	if g := guardOf(r.Context()); g != nil {
		if r.TLS == nil {
			r.TLS = g.tlsState() // handshaken by the guard, not net/http
		}
		if r.ProtoMajor == 2 && !g.h2WithinLimits(w, r) {
			return
		}
	}
	c.h.ServeHTTP(w, r)
}

// chainConnContext runs the guard's ConnContext, then the
// listener's own (the captured connection's original destination), so
// both see every connection.
func chainConnContext(first, then func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	if then == nil {
		return first
	}
	return func(ctx context.Context, c net.Conn) context.Context {
		return then(first(ctx, c), c)
	}
}
