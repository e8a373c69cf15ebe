package cluster

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/sds"
)

// StateOptions configures a State. Zero values pick the defaults noted.
type StateOptions struct {
	// Log receives outlier ejections and returns (default: discarded).
	Log *slog.Logger
	// MaxIdleConnsPerHost is the idle upstream connections kept per endpoint
	// (default 256).
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes idle upstream connections of clusters without
	// common_http_protocol_options.idle_timeout (default 90s).
	IdleConnTimeout time.Duration
	// RetireDelay is how long after a transport falls out of use its idle
	// connections are closed once more, catching those returned by requests
	// that were still in flight (default 30s).
	RetireDelay time.Duration
	// Secrets is where TLS transports read SDS certificates and trust
	// bundles at handshake time (default: a new, empty store).
	Secrets *sds.Store
}

// State is what outlives one compiled configuration, per proxy: for every
// cluster name its circuit-breaker counters and the outlier-detection state
// of its hosts (keyed by endpoint address), and the upstream transports,
// shared by every cluster with the same connection settings. It is safe for
// concurrent use.
type State struct {
	opts StateOptions
	log  *slog.Logger

	mu         sync.Mutex
	clusters   map[string]*shared
	transports map[HTTPSettings]*transport
}

// shared is the state of one cluster name.
type shared struct {
	name     string
	log      *slog.Logger
	requests atomic.Int64
	retries  atomic.Int64
	conns    atomic.Int64
	ejected  atomic.Int32  // hosts currently ejected
	gen      atomic.Uint64 // bumped on every ejection and return

	mu    sync.Mutex // guards hosts and ejection decisions
	hosts map[string]*host
}

// NewState returns an empty State.
func NewState(o StateOptions) *State {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 256
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	if o.RetireDelay <= 0 {
		o.RetireDelay = 30 * time.Second
	}
	if o.Secrets == nil {
		o.Secrets = sds.NewStore()
	}
	return &State{opts: o, log: o.Log, clusters: map[string]*shared{}, transports: map[HTTPSettings]*transport{}}
}

// Compile validates c and builds a Cluster attached to s: its counters,
// ejections and transport are those of any earlier cluster of the same name
// (and, for the transport, the same settings). For EDS clusters cla holds
// the endpoints (nil means none yet); for STATIC clusters cla is ignored and
// the inline load_assignment is used.
func (s *State) Compile(c *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) (*Cluster, error) {
	out, err := s.compile(c, cla)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	return out, nil
}

// attach connects a freshly compiled c to its shared state and transport.
func (s *State) attach(c *Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.clusters[c.Name]
	if sh == nil {
		sh = &shared{name: c.Name, log: s.log, hosts: map[string]*host{}}
		s.clusters[c.Name] = sh
	}
	c.shared = sh
	if c.Outlier != nil {
		c.hosts = make(map[string]*host, len(c.Endpoints))
		sh.mu.Lock()
		for _, e := range c.Endpoints {
			h := sh.hosts[e.Address]
			if h == nil {
				h = &host{addr: e.Address}
				sh.hosts[e.Address] = h
			}
			c.hosts[e.Address] = h
		}
		sh.mu.Unlock()
	}
	def := c.socketFor(nil)
	if i, ok := c.uniformSocket(); ok {
		// Every endpoint uses socket i (with auto mTLS, typically all
		// sidecars): the data path needs no per-endpoint lookup.
		def = i
	}
	c.transport = s.transportLocked(c, def)
	for _, e := range c.Endpoints {
		i, ok := c.epSocket[e]
		if !ok {
			i = c.socketFor(nil)
		}
		if i == def {
			continue
		}
		if c.epTrans == nil {
			c.epTrans = map[*lb.Endpoint]*transport{}
		}
		c.epTrans[e] = s.transportLocked(c, i)
	}
}

// transportLocked returns the shared transport of c's socket i.
func (s *State) transportLocked(c *Cluster, i int) *transport {
	key := c.settings(i)
	t := s.transports[key]
	if t == nil {
		t = newTransport(key, c.sockets[i].tls, s.opts)
		s.transports[key] = t
	}
	return t
}

// Secrets returns the store TLS transports read secrets from.
func (s *State) Secrets() *sds.Store { return s.opts.Secrets }

// Retain keeps the state of the clusters in live (the current
// configuration's) and drops the rest: counters and hosts of cluster names
// and addresses no longer present (returning ejected ones), and transports
// no cluster uses, whose idle connections are closed now and once more after
// RetireDelay. Clusters of older configurations keep working on what they
// hold.
func (s *State) Retain(live []*Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string]*Cluster{}
	used := map[HTTPSettings]bool{}
	for _, c := range live {
		names[c.Name] = c
		used[c.transport.settings] = true
		for _, t := range c.epTrans {
			used[t.settings] = true
		}
	}
	for name, sh := range s.clusters {
		c := names[name]
		if c == nil {
			delete(s.clusters, name)
			sh.dropHosts(nil)
			continue
		}
		sh.dropHosts(c.hosts)
	}
	for k, t := range s.transports {
		if !used[k] {
			delete(s.transports, k)
			t.retire(s.opts.RetireDelay)
		}
	}
}

// dropHosts forgets hosts not in keep, returning ejected ones.
func (sh *shared) dropHosts(keep map[string]*host) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for addr, h := range sh.hosts {
		if keep[addr] == h {
			continue
		}
		delete(sh.hosts, addr)
		h.removed = true
		if h.timer != nil {
			h.timer.Stop()
			h.timer = nil
		}
		if h.ejected.Load() {
			h.ejected.Store(false)
			sh.ejected.Add(-1)
			sh.gen.Add(1)
		}
	}
}

// Close stops ejection timers and closes the idle connections of every
// transport. Clusters compiled through s must not be used afterwards.
func (s *State) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range s.clusters {
		sh.dropHosts(nil)
	}
	for _, t := range s.transports {
		t.closeIdle()
	}
}
