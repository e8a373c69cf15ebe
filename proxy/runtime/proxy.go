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
	servers map[lkey]*server
	closed  bool
	drains  sync.WaitGroup
	// queues are the hand-off queues of the servers that bind no socket
	// (listeners with bind_to_port false, and destination-port groups),
	// read per connection by steering; replaced whole under mu.
	queues atomic.Pointer[map[lkey]*handoff]
}

// bound is a serving socket: listener.Server (HTTP) or tcpproxy.Server.
type bound interface {
	Name() string
	Addr() net.Addr
	Active() int64
	StopAccepting()
	Shutdown(ctx context.Context) error
}

// server is a served listener (or destination-port group) and its handler.
type server struct {
	bound
	addr    string // configured address, the listener's identity with its key, kind and socket
	tcp     bool
	socket  bool                    // binds a socket; else takes connections from queue
	queue   *handoff                // nil when socket
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
	if opts.Server.ConnContext == nil {
		opts.Server.ConnContext = withOriginalDst
	}
	p := &Proxy{opts: opts, log: opts.Log, servers: map[lkey]*server{}, observed: opts.Tap != nil || opts.OnRequest != nil}
	p.queues.Store(&map[lkey]*handoff{})
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
	if s := p.servers[lkey{name: name}]; s != nil {
		return s.Addr()
	}
	return nil
}

// Listeners returns the address of every listener being served, by name
// (a destination-port group is served as part of its listener).
func (p *Proxy) Listeners() map[string]net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]net.Addr, len(p.servers))
	for k, s := range p.servers {
		if k.port == 0 {
			out[k.name] = s.Addr()
		}
	}
	return out
}

// Update makes c the current Config. Listeners new in c (by name, address,
// kind, HTTP or TCP, and whether they bind a socket) are bound first; if
// one cannot bind, nothing changes and the error is returned (the xDS
// client NACKs it). Then c is swapped in atomically: new requests and
// connections use it while in-flight ones finish on the Config they
// started with. c's secrets are published just before the swap: the next
// TLS handshake uses them, open connections go on. Listeners absent from c
// stop accepting at once and drain in the background. Listeners unchanged
// keep their sockets, and pick the filter chain of each new connection
// from c (a TLS mode change needs no rebind). A listener's
// destination-port groups, and listeners with bind_to_port false, are
// served the same way without a socket: their connections are handed to
// them (see steering). Finally the cluster state of clusters and
// transports c no longer uses is released.
func (p *Proxy) Update(c *Config) error {
	if c == nil {
		return errors.New("runtime: update with nil config")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("runtime: proxy is shut down")
	}
	started := map[lkey]*server{}
	err := c.units(func(k lkey, l *Listener) error {
		socket := k.port == 0 && l.BindToPort
		old := p.servers[k]
		if old != nil && old.addr == l.Address && old.tcp == l.tcp() && old.socket == socket {
			return nil
		}
		if old != nil && old.socket && socket && old.addr == l.Address {
			// Same address, other kind: free the port first. The old
			// listener is retired below either way.
			old.StopAccepting()
		}
		s, err := p.bind(k, l, socket)
		if err != nil {
			return err
		}
		started[k] = s
		return nil
	})
	if err != nil {
		for _, s := range started {
			p.retire(s, nil)
		}
		return err
	}
	p.publishQueues(started)
	c.store.Publish(c.secrets)
	old := p.cur.Swap(c)
	for k, s := range p.servers {
		if l := c.lookup(k); l == nil || started[k] != nil {
			p.retire(s, old)
			delete(p.servers, k)
		}
	}
	for k, s := range p.servers {
		if s.tcp && started[k] == nil {
			p.closeRefused(k, s, c.lookup(k))
		}
	}
	for k, s := range started {
		p.servers[k] = s
		kind := "http"
		if s.tcp {
			kind = "tcp"
		}
		args := []any{"name", k.name, "address", s.Addr().String(), "kind", kind}
		if k.port != 0 {
			args = append(args, "destination_port", k.port)
		}
		if !s.socket {
			args = append(args, "bound", false)
		}
		p.log.Info("listener started", args...)
	}
	p.publishQueues(nil)
	p.state.Retain(c.Clusters())
	return nil
}

// publishQueues makes the hand-off queues of the current servers, and of
// started (which replace servers of the same key), what steering finds.
func (p *Proxy) publishQueues(started map[lkey]*server) {
	m := map[lkey]*handoff{}
	for k, s := range p.servers {
		if s.queue != nil {
			m[k] = s.queue
		}
	}
	for k, s := range started {
		if s.queue != nil {
			m[k] = s.queue
		}
	}
	p.queues.Store(&m)
}

// closeRefused closes the open connections of TCP listener s that l's
// filter chains no longer admit, e.g. plaintext ones after the listener
// became STRICT. (HTTP listeners close such a connection at its next
// request, see handler.ServeHTTP.)
func (p *Proxy) closeRefused(k lkey, s *server, l *Listener) {
	ts, ok := s.bound.(*tcpproxy.Server)
	if !ok || l == nil {
		return
	}
	n := ts.CloseIf(func(c net.Conn) bool {
		_, isTLS := c.(*tls.Conn)
		return !l.Selector.Admits(isTLS)
	})
	if n > 0 {
		p.log.Info("closed connections the new filter chains refuse", "listener", k.name, "destination_port", k.port, "count", n)
	}
}

// bind starts serving listener (or port group) l under key k: on a socket
// it binds (or was handed, Options.Sockets) when socket is set, else on a
// hand-off queue. Every connection goes through listener.Dispatch, which
// picks its filter chain (TLS or plaintext) from the Config current when
// it arrives; a listener that steers sees it first (see steering).
func (p *Proxy) bind(k lkey, l *Listener, socket bool) (*server, error) {
	s := &server{addr: l.Address, tcp: l.tcp(), socket: socket}
	var ln net.Listener
	if socket {
		if p.opts.Sockets != nil {
			ln = p.opts.Sockets(l.Address)
		}
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", l.Address); err != nil {
				return nil, fmt.Errorf("listener %q: bind %s: %w", l.Name, l.Address, err)
			}
		}
	} else {
		s.queue = newHandoff(l.Address)
		ln = s.queue
	}
	var th *tcpHandler
	var hh *handler
	if s.tcp {
		th = &tcpHandler{p: p, key: k}
		s.retired = &th.retired
	} else {
		hh = &handler{p: p, key: k}
		s.retired = &hh.retired
	}
	current := p.current(k, l, s.retired)
	if k.port == 0 && l.steers() {
		ln = &steering{Listener: ln, p: p, current: current}
	}
	ln = listener.Dispatch(ln, func() *listener.Selector {
		if u := current(); u != nil {
			return u.Selector
		}
		return nil
	})
	if s.tcp {
		s.bound = tcpproxy.ServeListener(l.Name, ln, th.serve)
	} else {
		s.bound = listener.Serve(l.Name, ln, hh, p.opts.Server)
	}
	return s, nil
}

// current returns how the server of key k finds its listener for a new
// connection: in the current Config, else (the listener being drained) in
// the Config it was last part of, else (bound, not yet swapped in) initial,
// from the Config that bound it. nil means the connection is closed.
func (p *Proxy) current(k lkey, initial *Listener, retired *atomic.Pointer[Config]) func() *Listener {
	return func() *Listener {
		if cfg := p.cur.Load(); cfg != nil {
			if l := cfg.lookup(k); l != nil {
				return l
			}
		}
		if cfg := retired.Load(); cfg != nil {
			return cfg.lookup(k)
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
	p.servers = map[lkey]*server{}
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
