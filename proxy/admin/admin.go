// Package admin is the proxy's admin HTTP server, shaped after Envoy's so the
// same probes and tooling work: /ready, /healthz, /config_dump and
// /quitquitquit, plus the handlers the proxy adds (/stats/prometheus,
// /stats, /listeners), bound at the node's ADMIN_ADDRESS (loopback unless told
// otherwise). It refuses cross-origin requests and Host names that are not
// its own (see internal/hostguard).
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/internal/hostguard"
	"github.com/weft-mesh/weft/proxy/xdsclient"
)

// Source provides what the proxy last ACKed, per type URL. *xdsclient.Client
// implements it.
type Source interface {
	Acked() map[string]xdsclient.AckedType
}

// Options configures a Server.
type Options struct {
	// Address is where to listen, host:port; port 0 picks a free one.
	Address string
	// Listener, when set, is an already bound socket to serve instead of
	// binding Address.
	Listener net.Listener
	// Ready reports whether a complete config has been applied.
	Ready func() bool
	// Config is dumped by /config_dump; nil dumps empty configs.
	Config Source
	// Quit starts a graceful shutdown of the proxy; /quitquitquit calls it
	// once, after its response is written. Nil disables /quitquitquit.
	Quit func()
	// Log receives server errors; nil discards them.
	Log *slog.Logger
	// Handlers are more GET endpoints by path, such as /stats/prometheus.
	Handlers map[string]http.Handler
}

// Server is the admin HTTP server.
type Server struct {
	opts     Options
	log      *slog.Logger
	draining atomic.Bool
	quitOnce sync.Once

	mu   sync.Mutex
	srv  *http.Server
	addr string
}

// New returns a Server; Start binds it.
func New(opts Options) *Server {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: log}
}

// Start binds the admin address and serves in the background.
func (s *Server) Start() error {
	lis := s.opts.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", s.opts.Address); err != nil {
			return fmt.Errorf("admin: listen on %s: %w", s.opts.Address, err)
		}
	}
	srv := &http.Server{
		// Anything that can reach the port may use it (it has no
		// authentication, like Envoy's), so web pages must not: no
		// cross-origin requests, no names but the server's own (DNS
		// rebinding).
		Handler:           hostguard.New(lis.Addr().String(), hostOf(s.opts.Address)).Wrap(s.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.srv, s.addr = srv, lis.Addr().String()
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "addr", lis.Addr().String(), "err", err)
		}
	}()
	return nil
}

// hostOf returns the host of a configured host:port address.
func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// Addr returns the bound address, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops the server, waiting for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// SetDraining makes /ready answer 503 DRAINING, so load balancers and
// probes stop sending new work while the proxy drains.
func (s *Server) SetDraining() { s.draining.Store(true) }

// Handler returns the admin endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", s.ready)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "OK")
	})
	mux.HandleFunc("GET /config_dump", s.configDump)
	for path, h := range s.opts.Handlers {
		mux.Handle("GET "+path, h)
	}
	if s.opts.Quit != nil {
		mux.HandleFunc("POST /quitquitquit", s.quit)
	}
	return mux
}

// ready answers like Envoy's /ready: LIVE once serving, else the state.
func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	switch {
	case s.draining.Load():
		text(w, http.StatusServiceUnavailable, "DRAINING")
	case s.opts.Ready != nil && s.opts.Ready():
		text(w, http.StatusOK, "LIVE")
	default:
		text(w, http.StatusServiceUnavailable, "INITIALIZING")
	}
}

func (s *Server) quit(w http.ResponseWriter, _ *http.Request) {
	s.SetDraining()
	text(w, http.StatusOK, "OK")
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	// Asynchronously, so the caller gets its answer before the admin
	// server itself is shut down by the proxy.
	s.quitOnce.Do(func() { go s.opts.Quit() })
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body+"\n")
}
