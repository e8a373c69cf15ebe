package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"
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

// Server serves one listener's socket. HTTP/1.1 and h2c with prior knowledge
// (what gRPC clients speak) share the port; an HTTP/1.1 "Upgrade: h2c" request
// is answered over HTTP/1.1, which RFC 9113 permits (it deprecates that
// upgrade). Connections the socket hands over behind the HTTP/1.1 framing
// guard (see Dispatch) are checked as HTTP/1.1 is read; TLS ones are
// handshaken on their own goroutine and then speak HTTP/1.1 or, when ALPN
// picked it, h2; their requests carry r.TLS.
type Server struct {
	name   string
	ln     net.Listener
	srv    *http.Server
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
	s := &Server{name: name, ln: ln, served: make(chan struct{})}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true) // over TLS, when ALPN picks h2
	protos.SetUnencryptedHTTP2(true)
	s.srv = &http.Server{
		Handler:           counting{s: s, h: h},
		Protocols:         protos,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		ErrorLog:          o.ErrorLog,
		// The framing guard enforces the listener's own limit (at most
		// this) on HTTP/1.1; HTTP/2 requests are checked by the handler.
		MaxHeaderBytes: MaxRequestHeadersKBLimit << 10,
		ConnContext:    chainConnContext(guardContext, o.ConnContext),
		ConnState:      guardState,
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln) // returns when the listener is closed
	}()
	return s
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
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // StopAccepting closed it already
	}
	for err == nil && s.active.Load() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("listener %q: drain: %w", s.name, err)
	}
	<-s.served
	return nil
}

// StopAccepting closes the listening socket at once, freeing the port;
// connections already accepted are served until Shutdown.
func (s *Server) StopAccepting() { _ = s.ln.Close() }

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

// chainConnContext runs the framing guard's ConnContext, then the
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
