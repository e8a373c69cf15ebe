package runtime

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

	"github.com/weft-mesh/weft/proxy/listener"
)

// Options configures a Proxy. Zero values pick the defaults noted.
type Options struct {
	// Log receives lifecycle messages (default: discarded).
	Log *slog.Logger
	// OnRequest, when set, is called once per request with its result, for
	// access logs and telemetry. It runs on the request's goroutine and must
	// not retain the Result. When nil, no Result is built.
	OnRequest func(*Result)
	// ConnectTimeout bounds dialing an upstream endpoint (default 10s).
	ConnectTimeout time.Duration
	// MaxIdleConnsPerHost is the idle upstream connections kept per endpoint
	// (default 256).
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes idle upstream connections (default 90s).
	IdleConnTimeout time.Duration
	// DrainTimeout bounds how long a removed listener waits for its in-flight
	// requests before closing them (default 30s).
	DrainTimeout time.Duration
	// Server tunes the listeners' HTTP servers.
	Server listener.ServerOptions
}

// Proxy owns the listening sockets and the current Config.
type Proxy struct {
	opts Options
	log  *slog.Logger
	cur  atomic.Pointer[Config]
	h1   *http.Transport // HTTP/1.1 upstreams
	h2   *http.Transport // h2c upstreams, for gRPC

	mu      sync.Mutex // guards servers, closed; serializes Update/Shutdown
	servers map[string]*server
	closed  bool
	drains  sync.WaitGroup
}

// server is a bound listener and its handler.
type server struct {
	*listener.Server
	addr string // configured address, the listener's identity with its name
	h    *handler
}

// New returns a Proxy with no listeners; call Update to serve a Config.
func New(opts Options) *Proxy {
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = 256
	}
	if opts.IdleConnTimeout <= 0 {
		opts.IdleConnTimeout = 90 * time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.Server.ErrorLog == nil {
		opts.Server.ErrorLog = slog.NewLogLogger(opts.Log.Handler(), slog.LevelDebug)
	}
	p := &Proxy{opts: opts, log: opts.Log, servers: map[string]*server{}}
	p.h1, p.h2 = newTransports(opts)
	return p
}

// Current returns the Config being served, nil before the first Update.
func (p *Proxy) Current() *Config { return p.cur.Load() }

// ListenerAddr returns the bound address of the named listener, or nil.
func (p *Proxy) ListenerAddr(name string) net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.servers[name]; s != nil {
		return s.Addr()
	}
	return nil
}

// Update makes c the current Config. Listeners new in c (by name and address)
// are bound first; if one cannot bind, nothing changes and the error is
// returned (the xDS client NACKs it). Then c is swapped in atomically: new
// requests use it while in-flight ones finish on the Config they started with.
// Listeners absent from c stop accepting at once and drain in the background.
// Listeners unchanged in name and address keep their sockets.
func (p *Proxy) Update(c *Config) error {
	if c == nil {
		return errors.New("runtime: update with nil config")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("runtime: proxy is shut down")
	}
	started := map[string]*server{}
	for _, l := range c.Listeners() {
		if s := p.servers[l.Name]; s != nil && s.addr == l.Address {
			continue
		}
		h := &handler{p: p, name: l.Name}
		ls, err := listener.Listen(l.Name, l.Address, h, p.opts.Server)
		if err != nil {
			for _, s := range started {
				p.retire(s, nil)
			}
			return err
		}
		started[l.Name] = &server{Server: ls, addr: l.Address, h: h}
	}
	old := p.cur.Swap(c)
	for name, s := range p.servers {
		if l := c.Listener(name); l == nil || l.Address != s.addr {
			p.retire(s, old)
			delete(p.servers, name)
		}
	}
	for name, s := range started {
		p.servers[name] = s
		p.log.Info("listener started", "name", name, "address", s.Addr().String())
	}
	return nil
}

// retire stops s accepting and drains it in the background. Requests still
// arriving on its open connections are served with last, the Config it was
// last part of, if the listener is gone from the current one.
func (p *Proxy) retire(s *server, last *Config) {
	s.h.retired.Store(last)
	s.StopAccepting()
	p.log.Info("listener draining", "name", s.Name(), "address", s.Addr().String(), "active", s.Active())
	p.drains.Add(1)
	go func() {
		defer p.drains.Done()
		ctx, cancel := context.WithTimeout(context.Background(), p.opts.DrainTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			p.log.Warn("listener drain incomplete", "name", s.Name(), "err", err)
		}
	}()
}

// Shutdown stops accepting on every listener and waits for in-flight requests
// to finish, or for ctx to end, in which case remaining connections are closed
// and ctx's error is returned. The Proxy cannot be updated afterwards.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	servers := p.servers
	p.servers = map[string]*server{}
	p.mu.Unlock()

	errs := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errs <- s.Shutdown(ctx) }()
	}
	var all []error
	for range servers {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	drained := make(chan struct{})
	go func() { p.drains.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		all = append(all, fmt.Errorf("draining removed listeners: %w", ctx.Err()))
	}
	p.h1.CloseIdleConnections()
	p.h2.CloseIdleConnections()
	return errors.Join(all...)
}
