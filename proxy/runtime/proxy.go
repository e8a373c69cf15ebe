package runtime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/proxy/cluster"
	"github.com/weft-mesh/weft/proxy/listener"
	"github.com/weft-mesh/weft/proxy/sds"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

// Options configures a Proxy. Zero values pick the defaults noted.
type Options struct {
	// Log receives lifecycle messages (default: discarded).
	Log *slog.Logger
	// OnRequest, when set, is called once per request with its result, for
	// access logs and telemetry. It runs on the request's goroutine and must
	// not retain the Result. When nil, no Result is built.
	OnRequest func(*Result)
	// Tap, when set, observes every request and TCP connection for
	// telemetry (see Tap). When both Tap and OnRequest are nil no Result
	// is built and the data path does no telemetry work at all.
	Tap Tap
	// OnConnection, when set, is called once per TCP proxy connection when
	// it ends, with its bytes, duration and response flags (UF, UH, UO, NC).
	// It runs on the connection's goroutine and must not retain the Result.
	OnConnection func(*tcpproxy.Result)
	// ConnectTimeout bounds dialing an upstream endpoint with the shared h2c
	// transport (default 10s); clusters' own transports use the cluster's
	// connect_timeout.
	ConnectTimeout time.Duration
	// MaxIdleConnsPerHost is the idle upstream connections kept per endpoint
	// (default 256).
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes idle upstream connections of clusters without
	// an idle_timeout (default 90s).
	IdleConnTimeout time.Duration
	// DrainTimeout bounds how long a removed listener waits for its in-flight
	// requests, or TCP connections, before closing them (default 30s).
	DrainTimeout time.Duration
	// Server tunes the listeners' HTTP servers.
	Server listener.ServerOptions
	// Sockets, when set, hands out sockets bound before the proxy started,
	// by address: a listener the control plane asks for at such an address
	// uses it instead of binding anew. `weft run` picks its sidecar's ports
	// by binding them, and keeps them bound until here, so no other process
	// can take them in between.
	Sockets func(addr string) net.Listener
}

// Proxy owns the listening sockets and the current Config.
type Proxy struct {
	opts     Options
	observed bool // opts.Tap or opts.OnRequest is set
	log      *slog.Logger
	cur      atomic.Pointer[Config]
	h1       *http.Transport // HTTP/1.1 upstreams
	h2       *http.Transport // h2c upstreams, for gRPC
	// state outlives Configs: circuit-breaker counters, outlier ejections
	// and per-cluster transports (see Compile).
	state *cluster.State

	mu      sync.Mutex // guards servers, closed; serializes Update/Shutdown
	servers map[string]*server
	closed  bool
	drains  sync.WaitGroup
}

// bound is a serving socket: listener.Server (HTTP) or tcpproxy.Server.
type bound interface {
	Name() string
	Addr() net.Addr
	Active() int64
	StopAccepting()
	Shutdown(ctx context.Context) error
}

// server is a bound listener and its handler.
type server struct {
	bound
	addr    string // configured address, the listener's identity with its name and kind
	tcp     bool
	retired *atomic.Pointer[Config] // the handler's Config once the listener is gone
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
	p := &Proxy{opts: opts, log: opts.Log, servers: map[string]*server{}, observed: opts.Tap != nil || opts.OnRequest != nil}
	p.state = cluster.NewState(cluster.StateOptions{
		Log:                 opts.Log,
		MaxIdleConnsPerHost: opts.MaxIdleConnsPerHost,
		IdleConnTimeout:     opts.IdleConnTimeout,
		RetireDelay:         opts.DrainTimeout,
		Secrets:             sds.NewStore(),
	})
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

// Listeners returns the bound address of every listener being served, by
// name.
func (p *Proxy) Listeners() map[string]net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]net.Addr, len(p.servers))
	for name, s := range p.servers {
		out[name] = s.Addr()
	}
	return out
}

// Update makes c the current Config. Listeners new in c (by name, address
// and kind, HTTP or TCP) are bound first; if one cannot bind, nothing changes
// and the error is returned (the xDS client NACKs it). Then c is swapped in
// atomically: new requests and connections use it while in-flight ones finish
// on the Config they started with. c's secrets are published just before
// the swap: the next TLS handshake uses them, open connections go on.
// Listeners absent from c stop accepting at once and drain in the
// background. Listeners unchanged keep their sockets, and pick the filter
// chain of each new connection from c (a TLS mode change needs no rebind).
// Finally the cluster state of clusters and transports c no longer uses is
// released.
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
		old := p.servers[l.Name]
		if old != nil && old.addr == l.Address && old.tcp == (l.TCP != nil) {
			continue
		}
		if old != nil && old.addr == l.Address {
			// Same address, other kind: free the port first. The old
			// listener is retired below either way.
			old.StopAccepting()
		}
		s, err := p.bind(l)
		if err != nil {
			for _, s := range started {
				p.retire(s, nil)
			}
			return err
		}
		started[l.Name] = s
	}
	c.store.Publish(c.secrets)
	old := p.cur.Swap(c)
	for name, s := range p.servers {
		if l := c.Listener(name); l == nil || started[name] != nil {
			p.retire(s, old)
			delete(p.servers, name)
		}
	}
	for name, s := range p.servers {
		if s.tcp && started[name] == nil {
			p.closeRefused(name, s, c.Listener(name))
		}
	}
	for name, s := range started {
		p.servers[name] = s
		kind := "http"
		if s.tcp {
			kind = "tcp"
		}
		p.log.Info("listener started", "name", name, "address", s.Addr().String(), "kind", kind)
	}
	p.state.Retain(c.Clusters())
	return nil
}

// closeRefused closes the open connections of TCP listener s that l's
// filter chains no longer admit, e.g. plaintext ones after the listener
// became STRICT. (HTTP listeners close such a connection at its next
// request, see handler.ServeHTTP.)
func (p *Proxy) closeRefused(name string, s *server, l *Listener) {
	ts, ok := s.bound.(*tcpproxy.Server)
	if !ok || l == nil {
		return
	}
	n := ts.CloseIf(func(c net.Conn) bool {
		_, isTLS := c.(*tls.Conn)
		return !l.Selector.Admits(isTLS)
	})
	if n > 0 {
		p.log.Info("closed connections the new filter chains refuse", "listener", name, "count", n)
	}
}

// bind binds l's socket and starts serving it. Every connection goes
// through listener.Dispatch first, which picks its filter chain (TLS or
// plaintext) from the Config current when it arrives.
func (p *Proxy) bind(l *Listener) (*server, error) {
	var ln net.Listener
	if p.opts.Sockets != nil {
		ln = p.opts.Sockets(l.Address)
	}
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", l.Address); err != nil {
			return nil, fmt.Errorf("listener %q: bind %s: %w", l.Name, l.Address, err)
		}
	}
	if l.TCP != nil {
		h := &tcpHandler{p: p, name: l.Name}
		ln = listener.Dispatch(ln, p.selector(l, &h.retired))
		return &server{bound: tcpproxy.ServeListener(l.Name, ln, h.serve), addr: l.Address, tcp: true, retired: &h.retired}, nil
	}
	h := &handler{p: p, name: l.Name}
	ln = listener.Dispatch(ln, p.selector(l, &h.retired))
	return &server{bound: listener.Serve(l.Name, ln, h, p.opts.Server), addr: l.Address, retired: &h.retired}, nil
}

// selector returns how listener l's socket finds the filter chains of a
// new connection: in the current Config, else (the listener being drained)
// in the Config it was last part of, else (bound, not yet swapped in) in
// the Config that bound it.
func (p *Proxy) selector(l *Listener, retired *atomic.Pointer[Config]) func() *listener.Selector {
	name, initial := l.Name, l.Selector
	return func() *listener.Selector {
		if cfg := p.cur.Load(); cfg != nil {
			if l := cfg.listeners[name]; l != nil {
				return l.Selector
			}
		}
		if cfg := retired.Load(); cfg != nil {
			if l := cfg.listeners[name]; l != nil {
				return l.Selector
			}
			return nil
		}
		return initial
	}
}

// retire stops s accepting and drains it in the background. Requests and
// connections still arriving on it are served with last, the Config it was
// last part of, if the listener is gone from the current one.
func (p *Proxy) retire(s *server, last *Config) {
	s.retired.Store(last)
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
	p.state.Close()
	return errors.Join(all...)
}
