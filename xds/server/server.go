// Package server is weft's ADS server: State-of-the-World xDS over one
// gRPC stream per proxy, with make-before-break ordering, per-proxy
// versions and ACK/NACK bookkeeping. It also authenticates and admits
// proxies, and delivers each one's certificate and the mesh trust bundle
// as SDS secrets on the same stream, re-issuing the certificate at half
// its lifetime.
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
	"github.com/weft-mesh/weft/xds/translate"
)

// SecretType is the type URL of SDS secrets, pushed before every other type.
const SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// Generator produces the resources for one proxy from the current model.
// It is called concurrently from every connection's goroutine.
type Generator interface {
	Generate(p *node.Meta) (*translate.Resources, error)
}

// Push coalescing: a burst of Push calls becomes one regeneration once the
// burst has been quiet for pushDebounce, but never later than pushMaxDelay
// after the first call, so a steady trickle of changes cannot starve
// proxies (the contract promises delivery within 1s).
const (
	pushDebounce = 20 * time.Millisecond
	pushMaxDelay = 100 * time.Millisecond
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
	return &Server{gen: gen, log: o.Log, opts: o, conns: map[uint64]*conn{}, streams: map[string]int{}, lastSeen: map[string]time.Time{}}
}

// Register registers the AggregatedDiscoveryService on g.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s)
}

// Push tells the server the model changed; every connection regenerates
// its resources shortly after and sends whatever differs.
func (s *Server) Push(reason string) {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	now := time.Now()
	if s.pendingSince.IsZero() {
		s.pendingSince = now
	}
	if len(s.pendingWhy) < 8 {
		s.pendingWhy = append(s.pendingWhy, reason)
	}
	delay := min(pushDebounce, max(pushMaxDelay-now.Sub(s.pendingSince), 0))
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
	why, since := s.pendingWhy, s.pendingSince
	s.pendingSince, s.pendingWhy = time.Time{}, nil
	s.pushMu.Unlock()

	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.log.Debug("xds push", "reasons", why, "waited", time.Since(since), "connections", len(conns))
	for _, c := range conns {
		select {
		case c.pushCh <- struct{}{}:
		default: // a push is already queued for this connection; it will read the newest model
		}
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
	defer c.mu.Unlock()
	a, ok := c.acked[typeURL]
	if !ok {
		return "", nil, false
	}
	if typeURL == SecretType {
		return a.version, redactAll(a.res), true
	}
	return a.version, append([]proto.Message(nil), a.res...), true
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
