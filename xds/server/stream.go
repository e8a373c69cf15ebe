package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/resource"
	"github.com/weft-mesh/weft/xds/translate"
)

// pushOrder is the make-before-break order of the contract: secrets
// before the clusters and listeners whose TLS uses them.
var pushOrder = []string{SecretType, translate.ClusterType, translate.EndpointType, translate.ListenerType, translate.RouteType}

// typeState is one resource type on one stream.
type typeState struct {
	subscribed bool
	// names is the subscription of a type asked for by name (interned:
	// proxies asking for the same names share one); nil is a wildcard.
	names     *resource.Names
	sentNonce string // "" until something was sent on this stream
	sentVer   string // version of the target the last response was for
	// sent is the target the last response brings the proxy to; acked is
	// what the proxy held after its last ACK. A NACKed response leaves the
	// proxy at acked.
	sent, acked *resource.Set
	replied     bool // the proxy ACKed or NACKed sentNonce
	nacked      bool // ... and it was a NACK
}

// base is what the proxy holds, or will once it takes what is in flight.
func (st *typeState) base() *resource.Set {
	if st.nacked {
		return st.acked
	}
	return st.sent
}

// conn is one ADS stream, state of the world or delta. Fields above mu
// belong to the stream's goroutine; those below are read by Connections
// and Acked.
type conn struct {
	s           *Server
	meta        *node.Meta
	principal   Principal // who the stream authenticated as
	nodeID      string
	seq         uint64
	connID      string
	connectedAt time.Time
	log         *slog.Logger
	// send writes one response of type t bringing the proxy to target.
	send func(t string, target *resource.Set) error

	desired *translate.Output
	genErr  string // why the newest model could not be generated; "" when it was
	// Clusters (and their assignments) the proxy was sent but the desired
	// state dropped. They stay in CDS/EDS until the proxy has replied to
	// the LDS and RDS that stop routing to them: the "break" half of
	// make-before-break runs as a second CDS round.
	retainedClusters []*resource.Resource
	retainedCLAs     []*resource.Resource
	types            map[string]*typeState
	targets          map[string]*resource.Set // memo of target, cleared when its inputs change
	nonce            uint64

	// SDS: the SPIFFE ID issued to, the secrets to send (ROOTCA, default)
	// and the renewal timer, which signals renewCh.
	identity   string
	secrets    *resource.Set
	certExpiry time.Time
	renewTimer *time.Timer
	renewCh    chan struct{}

	pushCh  chan struct{}
	pushMu  sync.Mutex
	pending pushRequest // pushes not yet taken by the stream, merged

	mu       sync.Mutex
	acked    map[string]ackedState
	lastNack string
	sync     SyncStatus
}

type ackedState struct {
	version string
	res     *resource.Set
}

// request is one request from the proxy, to be handled on the stream's
// goroutine.
type request func()

// open authenticates a new stream, reads its first request with first
// (which returns the request's node) and checks that proxy against the
// credential it presented and the admission policy.
func (s *Server) open(ctx context.Context, first func() (*core.Node, error)) (*conn, error) {
	principal, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	n, err := first()
	if err != nil {
		return nil, err
	}
	meta, err := node.Parse(n)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "first request: %v", err)
	}
	if err := principal.Covers(meta); err != nil {
		s.log.Warn("xds proxy refused: identity not covered by its credential", "node", meta.ID(), "peer", peerAddr(ctx), "err", err)
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	if err := s.admit(meta); err != nil {
		s.log.Warn("xds proxy not admitted", "node", meta.ID(), "peer", peerAddr(ctx), "err", err)
		return nil, err
	}
	c := &conn{
		s: s, meta: meta, principal: principal, nodeID: meta.ID(), connectedAt: time.Now(),
		pushCh:  make(chan struct{}, 1),
		renewCh: make(chan struct{}, 1),
		types:   map[string]*typeState{},
		targets: map[string]*resource.Set{},
		acked:   map[string]ackedState{},
		secrets: resource.Empty,
	}
	if s.opts.Issuer != nil {
		if c.identity, err = Identity(s.opts.TrustDomain, meta); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "first request: %v", err)
		}
	}
	for _, t := range pushOrder {
		c.types[t] = &typeState{}
	}
	return c, nil
}

// StreamAggregatedResources serves one proxy over state-of-the-world ADS:
// it authenticates the stream, admits the proxy, issues its certificate,
// and then keeps its resources current until the stream ends.
func (s *Server) StreamAggregatedResources(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	var first *discovery.DiscoveryRequest
	c, err := s.open(stream.Context(), func() (n *core.Node, err error) {
		first, err = stream.Recv()
		return first.GetNode(), err
	})
	if err != nil {
		return err
	}
	c.send = func(t string, target *resource.Set) error { return c.sendSotW(stream, t, target) }
	return c.run(stream.Context(), func() { c.handle(first) }, func() (request, error) {
		req, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return func() { c.handle(req) }, nil
	})
}

// run serves a stream until it ends: it issues the certificate, generates
// the proxy's resources, takes the first request, then sends what is due
// after every request, push and renewal. recv reads the next request.
func (c *conn) run(ctx context.Context, first request, recv func() (request, error)) error {
	s := c.s
	s.add(c)
	defer s.remove(c)
	c.log = s.log.With("node", c.nodeID, "conn", c.connID)
	c.log.Info("xds connected")
	defer c.log.Info("xds disconnected")
	if err := c.issue(); err != nil {
		c.log.Error("xds certificate not issued; closing the stream", "err", err)
		return status.Error(codes.Unavailable, err.Error())
	}
	defer c.stopRenew()

	reqs := make(chan request)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	// The first configuration is a proxy's largest: it shares the push
	// throttle, so a crowd reconnecting at once holds a bounded amount in
	// flight.
	release := s.throttle()
	if err := c.regenerate(); err != nil {
		release()
		return err
	}
	first()
	err := c.advance()
	release()
	if err != nil {
		return err
	}
	for {
		if err := c.advance(); err != nil {
			return err
		}
		c.publishSync()
		select {
		case req := <-reqs:
			req()
		case <-c.pushCh:
			if err := c.push(); err != nil {
				return err
			}
		case <-c.renewCh:
			if err := c.stillAdmitted(); err != nil {
				return err
			}
			c.renew()
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// push takes the pushes queued for the stream: a full push regenerates;
// an endpoint push does only when the proxy has one of the hosts'
// clusters. Regeneration and sending run under the server's push
// throttle.
func (c *conn) push() error {
	c.pushMu.Lock()
	req := c.pending
	c.pending = pushRequest{}
	c.pushMu.Unlock()
	if !req.full && c.desired != nil && !c.watchesAny(req.hosts) {
		return nil
	}
	release := c.s.throttle()
	defer release()
	if err := c.regenerate(); err != nil {
		return err
	}
	if err := c.advance(); err != nil {
		return err
	}
	c.publishSync()
	return nil
}

func (c *conn) watchesAny(hosts map[string]bool) bool {
	for h := range hosts {
		if c.desired.WatchesHost(h) {
			return true
		}
	}
	return false
}

// queue merges a push into the stream's pending one and wakes the stream.
func (c *conn) queue(req pushRequest) {
	c.pushMu.Lock()
	c.pending.merge(req)
	c.pushMu.Unlock()
	select {
	case c.pushCh <- struct{}{}:
	default: // already woken; it will take the merged push
	}
}

// info snapshots the connection for Connections.
func (c *conn) info() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	acked := make(map[string]string, len(c.acked))
	for t, a := range c.acked {
		acked[t] = a.version
	}
	return ConnInfo{ID: c.nodeID, ConnID: c.connID, Meta: c.meta, ConnectedAt: c.connectedAt, Acked: acked, LastNack: c.lastNack, Sync: c.sync}
}

// peerAddr is the remote address of a stream, for logs.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// regenerate replaces the desired state; on a generation error the
// previous one stays. It first asks whether the proxy is still admitted:
// the error it returns (PermissionDenied) ends the stream.
func (c *conn) regenerate() error {
	if err := c.stillAdmitted(); err != nil {
		return err
	}
	out, err := c.s.gen.Generate(c.meta, c.desired)
	if err != nil {
		c.log.Error("xds generate failed; keeping previous resources", "err", err)
		c.genErr = err.Error()
		return nil
	}
	if err := out.Validate(); err != nil {
		c.log.Error("xds generated invalid resources; push skipped", "err", err)
		c.genErr = fmt.Sprintf("revision %d: invalid resources: %v", out.Revision, err)
		return nil
	}
	c.genErr = ""
	// Anything the proxy holds that the new state drops is retained until
	// the new routes are in place.
	if sent := c.types[translate.ClusterType].sent; sent != nil && sent.Version() != out.Clusters.Version() {
		for _, name := range resource.Compare(sent, out.Clusters).Removed {
			if slices.ContainsFunc(c.retainedClusters, func(r *resource.Resource) bool { return r.Name == name }) {
				continue
			}
			c.retainedClusters = append(c.retainedClusters, sent.Get(name))
			if c.desired != nil {
				if cla := c.desired.Endpoints.Get(name); cla != nil {
					c.retainedCLAs = append(c.retainedCLAs, cla)
				}
			}
		}
	}
	c.retainedClusters = slices.DeleteFunc(c.retainedClusters, func(r *resource.Resource) bool { return out.Clusters.Has(r.Name) })
	c.retainedCLAs = slices.DeleteFunc(c.retainedCLAs, func(r *resource.Resource) bool { return out.Clusters.Has(r.Name) })
	c.desired = out
	clear(c.targets)
	return nil
}

// handle records what a state-of-the-world request says: a new
// subscription, an ACK or a NACK.
func (c *conn) handle(req *discovery.DiscoveryRequest) {
	st, ok := c.types[req.GetTypeUrl()]
	if !ok {
		c.log.Debug("xds request for unsupported type ignored", "type", req.GetTypeUrl())
		return
	}
	t := req.GetTypeUrl()
	switch {
	case req.GetResponseNonce() == "":
		// A (re)subscription: answer it even if the version is unchanged.
		st.subscribed = true
		c.subscribe(t, req.GetResourceNames())
		st.sentNonce, st.sentVer, st.sent, st.acked, st.replied, st.nacked = "", "", nil, nil, false, false
	case req.GetResponseNonce() != st.sentNonce:
		// Reply to a response we have since superseded; xDS says ignore it.
	case req.GetErrorDetail() != nil:
		c.nack(t, req.GetErrorDetail().GetMessage())
	default:
		c.ack(t)
	}
	if req.GetResponseNonce() != "" && req.GetResponseNonce() == st.sentNonce && (isNamed(t) || st.names != nil || len(req.GetResourceNames()) > 0) {
		c.subscribe(t, req.GetResourceNames())
	}
	c.s.seen(c.nodeID)
}

// subscribe sets the names a type is asked for by (none: a wildcard).
// Envoy asks for listeners and clusters by wildcard, gRPC by name.
func (c *conn) subscribe(t string, names []string) {
	st := c.types[t]
	var n *resource.Names
	switch {
	case len(names) == 0:
	case st.names != nil && slices.Equal(st.names.List(), names):
		n = st.names // the usual case: the same (sorted) names again
	default:
		n = resource.Intern(names)
	}
	if n != st.names {
		st.names = n
		delete(c.targets, t)
	}
}

func (c *conn) ack(t string) {
	st := c.types[t]
	st.replied, st.nacked, st.acked = true, false, st.sent
	c.mu.Lock()
	c.acked[t] = ackedState{version: st.sentVer, res: st.sent}
	c.mu.Unlock()
}

func (c *conn) nack(t, msg string) {
	st := c.types[t]
	st.replied, st.nacked = true, true
	line := fmt.Sprintf("%s %s: %s", shortType(t), st.sentVer, msg)
	c.mu.Lock()
	c.lastNack = line
	c.mu.Unlock()
	c.log.Warn("xds NACK", "type", shortType(t), "version", st.sentVer, "error", msg)
}

// isNamed reports whether a proxy may subscribe to t by resource name
// (Envoy asks for EDS, RDS and SDS resources by name).
func isNamed(t string) bool {
	return t == translate.EndpointType || t == translate.RouteType || t == SecretType
}

// advance sends, in push order, every subscribed type whose target version
// differs from what this stream last sent it. Every other type waits until
// the proxy has replied to the SDS that clusters' and listeners' TLS uses,
// LDS and RDS until it has replied to the CDS they may depend on; once it
// has replied to those too, clusters nothing routes to any more are
// dropped in a second CDS/EDS round.
func (c *conn) advance() error {
	if c.desired == nil {
		return nil
	}
	for round := 0; round < 2; round++ {
		for _, t := range pushOrder {
			st := c.types[t]
			if !st.subscribed {
				continue
			}
			if t != SecretType && !c.settled(SecretType) {
				continue
			}
			if (t == translate.ListenerType || t == translate.RouteType) && (!c.settled(translate.ClusterType) || !c.endpointsFollow()) {
				continue
			}
			target := c.target(t)
			if st.sentNonce != "" && target.Version() == st.sentVer {
				continue // sent already: in flight, ACKed, or NACKed and not to be repeated
			}
			if st.sentNonce != "" && !st.nacked && resource.Compare(st.sent, target).Empty() {
				// The same resources under another version (a set layered
				// differently): nothing to send.
				if st.acked == st.sent {
					st.acked = target
				}
				st.sentVer, st.sent = target.Version(), target
				continue
			}
			if err := c.send(t, target); err != nil {
				return err
			}
		}
		if len(c.retainedClusters) == 0 || !c.settled(translate.ListenerType) || !c.settled(translate.RouteType) {
			return nil
		}
		c.log.Debug("xds removing clusters no longer routed to", "count", len(c.retainedClusters))
		c.retainedClusters, c.retainedCLAs = nil, nil
		delete(c.targets, translate.ClusterType)
		delete(c.targets, translate.EndpointType)
	}
	return nil
}

// settled reports whether the proxy has replied to the current target of
// type t (an unsubscribed type has nothing to wait for, except CDS, which
// every Envoy-like proxy subscribes to first).
func (c *conn) settled(t string) bool {
	st := c.types[t]
	if !st.subscribed {
		// gRPC asks for clusters only once routes name them.
		return t != translate.ClusterType || c.meta.GRPC()
	}
	return st.sentNonce != "" && st.replied && st.sentVer == c.target(t).Version()
}

// endpointsFollow reports whether the proxy holds the endpoints of every
// EDS cluster it was sent: its EDS subscription names each of them and it
// has replied to the current EDS. A proxy asks for a new cluster's
// endpoints only after it took the CDS, so without this wait a route sent
// on the CDS ACK could reach the proxy before the endpoints of a cluster
// it names, and requests would fail with no healthy upstream (UH). A proxy
// not subscribed to EDS yet (the first configuration) is not waited for:
// it holds back its first configuration until it is complete. Nor is a
// gRPC client: it asks for clusters only once routes name them, and holds
// its calls until their endpoints arrive.
//
// Callers have checked that the proxy took the current CDS, so its EDS
// clusters are those of the current output (the retained ones it held
// before): one question about two shared sets, answered once for every
// stream of a bundle.
func (c *conn) endpointsFollow() bool {
	st := c.types[translate.EndpointType]
	if !st.subscribed || c.meta.GRPC() {
		return true
	}
	if !c.settled(translate.EndpointType) {
		return false
	}
	if st.names == nil {
		return true // a wildcard subscription gets every assignment
	}
	return resource.FirstMissing(c.desired.Endpoints, st.names) == ""
}

// target returns the resources of type t the proxy should hold now.
func (c *conn) target(t string) *resource.Set {
	if s, ok := c.targets[t]; ok {
		return s
	}
	var s *resource.Set
	switch t {
	case SecretType:
		s = c.secrets
	case translate.ClusterType:
		s = resource.Layer(c.desired.Clusters, c.retainedClusters)
	case translate.EndpointType:
		s = resource.Layer(c.desired.Endpoints, c.retainedCLAs)
	default:
		s = c.desired.ByType(t)
	}
	if names := c.types[t].names; names != nil {
		s = resource.Filter(s, names)
	}
	c.targets[t] = s
	return s
}

// sendSotW sends a state-of-the-world response. Types subscribed to by
// name (EDS, RDS) get only what changed since the proxy's last state: for
// them a response updates the resources it carries and leaves the others.
func (c *conn) sendSotW(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer, t string, target *resource.Set) error {
	st := c.types[t]
	nonce := c.nextNonce()
	resp := &sotwResponse{version: target.Version(), typeURL: t, nonce: nonce}
	n := 0
	if isNamed(t) && st.names != nil && st.base() != nil {
		d := resource.Compare(st.base(), target)
		resp.resources, n = encodeResources(d, t, false, func() []*resource.Resource { return d.Changed }), len(d.Changed)
	} else {
		resp.resources, n = setResources(target, t, false), target.Len()
	}
	if err := stream.SendMsg(resp); err != nil {
		return fmt.Errorf("send %s %s to %s: %w", shortType(t), target.Version(), c.nodeID, err)
	}
	c.sent(t, nonce, target)
	c.log.Debug("xds sent", "type", shortType(t), "version", target.Version(), "nonce", nonce, "resources", n)
	return nil
}

func (c *conn) nextNonce() string {
	c.nonce++
	return strconv.FormatUint(c.nonce, 10)
}

// sent records that a response for target went out with nonce.
func (c *conn) sent(t, nonce string, target *resource.Set) {
	st := c.types[t]
	st.sentNonce, st.sentVer, st.sent, st.replied, st.nacked = nonce, target.Version(), target, false, false
}

// shortType turns a type URL into SDS/CDS/EDS/LDS/RDS for logs.
func shortType(t string) string {
	switch t {
	case SecretType:
		return "SDS"
	case translate.ClusterType:
		return "CDS"
	case translate.EndpointType:
		return "EDS"
	case translate.ListenerType:
		return "LDS"
	case translate.RouteType:
		return "RDS"
	}
	return t
}
