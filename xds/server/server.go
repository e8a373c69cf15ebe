// Package server is weft's ADS server: State-of-the-World and incremental
// (delta) xDS over one gRPC stream per proxy, with make-before-break
// ordering, per-proxy versions and ACK/NACK bookkeeping. It also
// authenticates and admits proxies, and delivers each one's certificate
// and the mesh trust bundle as SDS secrets on the same stream, re-issuing
// the certificate at half its lifetime.
//
// Resources arrive encoded and versioned (package resource), in sets many
// proxies share: a push compares versions and sends bytes encoded once.
// Pushes are debounced (a quiet period with a maximum delay, as Istio's
// PILOT_DEBOUNCE_AFTER and PILOT_DEBOUNCE_MAX), an endpoint-only push
// reaches only the proxies holding the changed services' clusters, and at
// most Options.PushConcurrency streams regenerate and send at once.
//
// It deliberately does not use go-control-plane's snapshot cache, which
// resends a NACKed version in a loop; here a NACKed version is never sent
// again and the next model change simply produces a new version.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/resource"
	"github.com/weft-mesh/weft/xds/translate"
)

// SecretType is the type URL of SDS secrets, pushed before every other type.
const SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// Generator produces the resources for one proxy from the current model.
// prev is what it produced for the same stream last time (nil at first),
// whose unchanged parts it may return again. It is called concurrently
// from every connection's goroutine.
type Generator interface {
	Generate(p *node.Meta, prev *translate.Output) (*translate.Output, error)
}

// Push coalescing defaults: a burst of pushes becomes one regeneration once
// the burst has been quiet for DefaultDebounceAfter, but never later than
// DefaultDebounceMax after its first push, so a steady trickle of changes
// cannot starve proxies (the contract promises delivery within 1s). Istio's
// PILOT_DEBOUNCE_AFTER and PILOT_DEBOUNCE_MAX are the same two settings
// (Istio's defaults, 100ms and 10s, favour fewer pushes over latency).
const (
	DefaultDebounceAfter = 20 * time.Millisecond
	DefaultDebounceMax   = 100 * time.Millisecond
	// DefaultPushConcurrency bounds the streams regenerating and sending
	// at once (Istio's PILOT_PUSH_THROTTLE), which bounds the memory a
	// push to thousands of proxies holds in flight.
	DefaultPushConcurrency = 100
)

// Issuer issues workload certificates; *ca.CA implements it.
type Issuer interface {
	// Issue returns a certificate for the SPIFFE ID id, valid for ttl.
	Issue(id string, ttl time.Duration) (*ca.SVID, error)
	// RootPEM returns the trust bundle peers are verified against.
	RootPEM() []byte
}

// Options configures a Server. The zero value serves every proxy, with no
// secrets.
type Options struct {
	// Log receives connection and push events; nil discards them. Tokens
	// and keys are never logged.
	Log *slog.Logger
	// Authenticate vets a stream before anything is read from it; its
	// error (a gRPC status, see TokenAuth) ends the stream. The Principal
	// it returns bounds the identity the proxy may claim (Principal.Covers).
	// nil accepts all, as a mesh-wide principal.
	Authenticate func(ctx context.Context) (Principal, error)
	// Admit decides whether a proxy may have configuration and a
	// certificate. It is asked when the stream starts and again at every
	// regeneration, so a proxy whose namespace leaves the mesh is
	// disconnected; a non-nil error ends the stream with PermissionDenied
	// and the error's text. nil admits every proxy.
	Admit func(*node.Meta) error
	// Revalidate asks, at every regeneration and certificate renewal,
	// whether a stream's principal still holds (say, its token was not
	// revoked); a non-nil error, a gRPC status, ends the stream. nil: a
	// principal holds for the stream's life.
	Revalidate func(Principal) error
	// Issuer signs the proxies' certificates (SDS secret "default") and
	// provides the trust bundle (secret "ROOTCA"). nil: SDS answers with
	// no secrets.
	Issuer Issuer
	// TrustDomain of the SPIFFE IDs issued; default ca.DefaultTrustDomain.
	TrustDomain string
	// CertTTL is the lifetime of issued certificates; default
	// ca.DefaultCertTTL. They are re-issued at half of it.
	CertTTL time.Duration
	// DebounceAfter and DebounceMax coalesce pushes (see
	// DefaultDebounceAfter); zero means the defaults.
	DebounceAfter, DebounceMax time.Duration
	// PushConcurrency bounds the streams regenerating and sending at
	// once; zero means DefaultPushConcurrency.
	PushConcurrency int
	// OnStream, when set, is called when a node's first stream starts
	// (connected true) and when its last stream ends (false), in order,
	// from the stream's goroutine. It must not block.
	OnStream func(nodeID string, connected bool)
}

// Server implements the AggregatedDiscoveryService.
type Server struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer

	gen  Generator
	log  *slog.Logger
	opts Options

	mu       sync.Mutex
	conns    map[uint64]*conn
	streams  map[string]int       // node ID -> open streams
	lastSeen map[string]time.Time // node ID -> last request or disconnect
	nextID   uint64

	pushMu       sync.Mutex
	pushTimer    *time.Timer
	pendingSince time.Time // zero: nothing pending
	pendingWhy   []string
	pendingPush  pushRequest
	pushSem      chan struct{}
}

// pushRequest is what a push is for: everything, or the endpoints of some
// services only.
type pushRequest struct {
	full  bool
	hosts map[string]bool // endpoint-only: the services whose endpoints changed
}

func (r *pushRequest) merge(o pushRequest) {
	r.full = r.full || o.full
	for h := range o.hosts {
		if r.hosts == nil {
			r.hosts = map[string]bool{}
		}
		r.hosts[h] = true
	}
}

// ConnInfo describes one connected proxy.
type ConnInfo struct {
	ID          string // node ID
	ConnID      string // unique per stream: a proxy that reconnects gets a new one
	Meta        *node.Meta
	ConnectedAt time.Time
	Acked       map[string]string // type URL -> last ACKed version
	LastNack    string            // "TYPE VERSION: message" of the last NACK, if any
	Sync        SyncStatus
}

// A proxy's sync states, for SyncStatus.State.
const (
	Synced  = "synced"  // the proxy ACKed everything generated for the revision
	Pending = "pending" // something generated for the revision is not ACKed yet
	NACKed  = "nacked"  // the proxy rejected part of the revision
)

// SyncStatus says how far a proxy has taken its configuration, in model
// revisions (the store revisions applies report): what `weft apply --wait`
// waits for.
type SyncStatus struct {
	// Revision is the model revision of the newest configuration generated
	// for the proxy; 0 before the first.
	Revision int64
	// State is Synced, Pending or NACKed, for Revision.
	State string
	// Detail says what is pending, or what the proxy rejected.
	Detail string
	// SyncedRevision is the newest revision the proxy ACKed in full: every
	// resource of every type it subscribes to, and a subscription to every
	// endpoint set and route table it needs.
	SyncedRevision int64
}

// New returns a server generating resources with gen.
func New(gen Generator, o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.TrustDomain == "" {
		o.TrustDomain = ca.DefaultTrustDomain
	}
	if o.CertTTL <= 0 {
		o.CertTTL = ca.DefaultCertTTL
	}
	if o.DebounceAfter <= 0 {
		o.DebounceAfter = DefaultDebounceAfter
	}
	if o.DebounceMax <= 0 {
		o.DebounceMax = DefaultDebounceMax
	}
	if o.PushConcurrency <= 0 {
		o.PushConcurrency = DefaultPushConcurrency
	}
	return &Server{gen: gen, log: o.Log, opts: o, conns: map[uint64]*conn{}, streams: map[string]int{}, lastSeen: map[string]time.Time{},
		pushSem: make(chan struct{}, o.PushConcurrency)}
}

// throttle waits for a push slot and returns its release.
func (s *Server) throttle() func() {
	s.pushSem <- struct{}{}
	return func() { <-s.pushSem }
}

// authenticate vets a stream with Options.Authenticate.
func (s *Server) authenticate(ctx context.Context) (Principal, error) {
	if s.opts.Authenticate == nil {
		return Principal{Mesh: true, Subject: "anyone"}, nil
	}
	p, err := s.opts.Authenticate(ctx)
	if err != nil {
		s.log.Warn("xds stream refused", "peer", peerAddr(ctx), "err", err)
	}
	return p, err
}

// seen records that the proxy was heard from.
func (s *Server) seen(nodeID string) {
	s.mu.Lock()
	s.lastSeen[nodeID] = time.Now()
	s.mu.Unlock()
}

// Register registers the AggregatedDiscoveryService on g, which must have
// been created with ServerOptions.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s)
}

// Push tells the server the model changed; every connection regenerates
// its resources shortly after and sends whatever differs.
func (s *Server) Push(reason string) { s.queuePush(reason, pushRequest{full: true}) }

// PushEndpoints tells the server that only the endpoints of hosts changed:
// the connections holding those services' clusters regenerate (cheaply:
// the rest is shared and unchanged) and send what differs, in practice
// their assignments (EDS).
func (s *Server) PushEndpoints(reason string, hosts []string) {
	req := pushRequest{hosts: map[string]bool{}}
	for _, h := range hosts {
		req.hosts[h] = true
	}
	s.queuePush(reason, req)
}

func (s *Server) queuePush(reason string, req pushRequest) {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	now := time.Now()
	if s.pendingSince.IsZero() {
		s.pendingSince = now
	}
	if len(s.pendingWhy) < 8 {
		s.pendingWhy = append(s.pendingWhy, reason)
	}
	s.pendingPush.merge(req)
	delay := min(s.opts.DebounceAfter, max(s.opts.DebounceMax-now.Sub(s.pendingSince), 0))
	if s.pushTimer == nil {
		s.pushTimer = time.AfterFunc(delay, s.flushPush)
	} else {
		s.pushTimer.Reset(delay)
	}
}

// flushPush runs when the debounce timer fires. A timer reset while this
// already runs fires once more and finds nothing pending, which is harmless.
func (s *Server) flushPush() {
	s.pushMu.Lock()
	if s.pendingSince.IsZero() {
		s.pushMu.Unlock()
		return
	}
	why, since, req := s.pendingWhy, s.pendingSince, s.pendingPush
	s.pendingSince, s.pendingWhy, s.pendingPush = time.Time{}, nil, pushRequest{}
	s.pushMu.Unlock()

	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.log.Debug("xds push", "reasons", why, "waited", time.Since(since), "connections", len(conns), "full", req.full, "hosts", len(req.hosts))
	for _, c := range conns {
		c.queue(req)
	}
}

// Connections lists the connected proxies, sorted by node ID.
func (s *Server) Connections() []ConnInfo {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	out := make([]ConnInfo, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.info())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].ConnectedAt.Before(out[j].ConnectedAt)
	})
	return out
}

// Acked returns the version and resources of typeURL that the proxy with
// nodeID last ACKed on its newest connection; ok is false if it is not
// connected or has ACKed nothing of that type. Secrets come back as
// copies with their private keys redacted (ca.Redact): this is what the
// API shows.
func (s *Server) Acked(nodeID, typeURL string) (version string, res []proto.Message, ok bool) {
	c := s.newestConn(nodeID)
	if c == nil {
		return "", nil, false
	}
	c.mu.Lock()
	a, ok := c.acked[typeURL]
	c.mu.Unlock()
	if !ok {
		return "", nil, false
	}
	var msgs []proto.Message
	if a.res != nil {
		a.res.Range(func(r *resource.Resource) bool { msgs = append(msgs, r.Message()); return true })
	}
	if typeURL == SecretType {
		return a.version, redactAll(msgs), true
	}
	return a.version, msgs, true
}

// LastSeen returns when the proxy was last heard from: now while it is
// connected, else the time its last stream ended (zero if never seen).
func (s *Server) LastSeen(nodeID string) time.Time {
	if s.newestConn(nodeID) != nil {
		return time.Now()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeen[nodeID]
}

func (s *Server) newestConn(nodeID string) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *conn
	for _, c := range s.conns {
		if c.nodeID == nodeID && (best == nil || c.seq > best.seq) {
			best = c
		}
	}
	return best
}

// add registers a new stream. The OnStream call happens under s.mu, so
// calls for one node arrive in the order its streams came and went.
func (s *Server) add(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	c.seq = s.nextID
	c.connID = fmt.Sprintf("%s-%d", c.nodeID, c.seq)
	s.conns[c.seq] = c
	s.lastSeen[c.nodeID] = time.Now()
	if s.streams[c.nodeID]++; s.streams[c.nodeID] == 1 && s.opts.OnStream != nil {
		s.opts.OnStream(c.nodeID, true)
	}
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c.seq)
	s.lastSeen[c.nodeID] = time.Now()
	if s.streams[c.nodeID]--; s.streams[c.nodeID] == 0 {
		delete(s.streams, c.nodeID)
		if s.opts.OnStream != nil {
			s.opts.OnStream(c.nodeID, false)
		}
	}
}
