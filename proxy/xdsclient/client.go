// Package xdsclient is the proxy's ADS client: one AggregatedDiscoveryService
// stream (Envoy v3) to the control plane that subscribes to secrets,
// clusters, endpoints, listeners and routes, hands every candidate
// resource set to an Apply callback (runtime.Compile and a swap), and ACKs
// or NACKs each response by the callback's verdict. It speaks incremental
// (delta) xDS, so a change to one cluster brings one cluster, and falls
// back to State of the World when the server does not serve delta (or
// when Options.SotW asks for it).
//
// The stream presents the proxy's join token as gRPC metadata
// "authorization: Bearer TOKEN", over TLS when Options.TLS is set.
//
// Until the first config is applied, the client ACKs but holds back sets
// that lack clusters, listeners, or the endpoints of an EDS cluster, so the
// first config it applies (and /ready) is whole, as Envoy's init manager
// does. Missing route configurations are the runtime's to report, with
// runtime.ErrIncomplete.
//
// It fails static: when the stream breaks the last applied config keeps
// serving, and the client reconnects with exponential backoff and jitter,
// re-subscribing with the last ACKed versions.
package xdsclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/proxy/runtime"
)

// Defaults for Options left zero.
const (
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 5 * time.Second
	// maxRecvMsgSize lifts gRPC's 4 MiB default: a State of the World
	// response carries every cluster or listener at once, which outgrows
	// 4 MiB in a large mesh.
	maxRecvMsgSize = 64 << 20
)

// Options configures a Client.
type Options struct {
	// Server is the control plane's ADS address, host:port.
	Server string
	// Node identifies this proxy; it is sent on the first request of every
	// stream. Build it with node.Meta.Node.
	Node *core.Node
	// Apply receives every candidate full resource set. Return nil when it
	// is serving, an error wrapping runtime.ErrIncomplete when it is valid
	// but waits for more resources (the response is ACKed), and any other
	// error to reject it (the response is NACKed, the previous set kept).
	// Apply is called from one goroutine at a time and must not retain or
	// modify the maps' messages beyond reading them.
	Apply func(*runtime.Resources) error
	// Log receives connection and ACK/NACK events; nil discards them.
	Log *slog.Logger
	// BackoffMin and BackoffMax bound the reconnect delay, which doubles
	// after each failed attempt and is jittered; zero means the defaults.
	BackoffMin, BackoffMax time.Duration
	// Token is the join token sent on every stream as gRPC metadata
	// "authorization: Bearer TOKEN"; empty sends none.
	Token string
	// TokenSource, when set, is called before every stream instead of
	// Token (a token file the kubelet rotates is read anew); an error
	// fails the attempt, which is retried with backoff.
	TokenSource func() (string, error)
	// TLS, when set, secures the connection (verify the control plane's
	// certificate against the mesh root); nil dials plaintext, for a
	// control plane on a loopback address.
	TLS *tls.Config
	// DialOptions are added to the gRPC dial, after the transport
	// credentials TLS selects.
	DialOptions []grpc.DialOption
	// SotW speaks State of the World only, never delta.
	SotW bool
	// OnNACK, when set, is called with the reason of every response the
	// client rejects, before the NACK is sent, from the stream's goroutine.
	OnNACK func(error)
}

// AckedType is what the client last ACKed for one resource type.
type AckedType struct {
	// Version is the version_info of the last ACKed response.
	Version string
	// Resources are the accepted resources of the type, sorted by name.
	// They are shared with the client: read them, never modify them.
	Resources []proto.Message
}

// Client is an ADS client. Create it with New and start it with Run.
type Client struct {
	opts Options
	log  *slog.Logger

	connected atomic.Bool

	// mu guards the fields below. Only the Run goroutine writes them; the
	// lock is for readers such as the admin server's config dump.
	mu       sync.Mutex
	res      *runtime.Resources // the ACKed state, every type
	versions map[string]string  // typeURL -> last ACKed version_info
	received map[string]bool    // typeURL -> a response was ever accepted
	edsNames []string           // EDS subscription, derived from res.Clusters
	rdsNames []string           // RDS subscription, derived from res.Listeners
	applied  bool               // Apply has succeeded at least once
	// rv holds, per type, the version of every resource held (delta), to
	// tell the server on reconnect what need not be sent again.
	rv map[string]map[string]string

	noDelta atomic.Bool // the server answered delta with Unimplemented
}

// New returns a Client; it does nothing until Run.
func New(opts Options) *Client {
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = DefaultBackoffMin
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = opts.BackoffMin
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		opts:     opts,
		log:      log.With("xds", opts.Server),
		res:      emptyResources(),
		versions: map[string]string{},
		received: map[string]bool{},
		rv:       map[string]map[string]string{},
	}
}

// Run keeps an ADS stream to the server until ctx is done, reconnecting with
// exponential backoff and jitter whenever the stream fails. It never
// touches the applied config when the stream breaks. It returns nil once
// ctx is done, and an error only when the options cannot work.
func (c *Client) Run(ctx context.Context) error {
	switch {
	case c.opts.Server == "":
		return errors.New("xdsclient: no server address")
	case c.opts.Node == nil:
		return errors.New("xdsclient: no node")
	case c.opts.Apply == nil:
		return errors.New("xdsclient: no Apply callback")
	}
	delay := c.opts.BackoffMin
	for {
		healthy, err := c.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if healthy {
			// The server answered on this stream, so the next failure is a
			// fresh incident rather than a continuing outage.
			delay = c.opts.BackoffMin
		}
		wait := jitter(delay)
		c.log.Warn("xds stream ended; keeping the current config", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if !healthy {
			delay = min(delay*2, c.opts.BackoffMax)
		}
	}
}

// jitter spreads reconnects of many proxies after a control plane restart
// over [d/2, d] so they do not arrive at once.
func jitter(d time.Duration) time.Duration {
	half := d / 2
	return half + rand.N(d-half+1)
}

// Connected reports whether an ADS stream is established now.
func (c *Client) Connected() bool { return c.connected.Load() }

// Acked returns, per type URL, the last ACKed version and resources. Types
// never received are absent. Secrets are redacted copies (sds.Redact): no
// private key leaves through here.
func (c *Client) Acked() map[string]AckedType {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]AckedType{}
	for _, t := range typeOrder {
		if !c.received[t] {
			continue
		}
		out[t] = AckedType{Version: c.versions[t], Resources: sortedMessages(c.res, t)}
	}
	return out
}

// stream runs one ADS stream until it fails or ctx is done. healthy reports
// whether the server sent at least one response on it.
func (c *Client) stream(ctx context.Context) (healthy bool, err error) {
	// A connection per stream keeps reconnect timing under our backoff;
	// a long-lived ClientConn would add gRPC's own (1 s to 120 s) backoff.
	creds := insecure.NewCredentials()
	if c.opts.TLS != nil {
		creds = credentials.NewTLS(c.opts.TLS.Clone())
	}
	dial := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgSize)),
	}, c.opts.DialOptions...)
	conn, err := grpc.NewClient(c.opts.Server, dial...)
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", c.opts.Server, err)
	}
	defer conn.Close()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tok := c.opts.Token
	if c.opts.TokenSource != nil {
		if tok, err = c.opts.TokenSource(); err != nil {
			return false, fmt.Errorf("token for %s: %w", c.opts.Server, err)
		}
	}
	if tok != "" {
		sctx = metadata.AppendToOutgoingContext(sctx, "authorization", "Bearer "+tok)
	}
	if !c.opts.SotW && !c.noDelta.Load() {
		healthy, err := c.deltaStream(sctx, conn)
		if healthy || status.Code(err) != codes.Unimplemented {
			return healthy, err
		}
		c.log.Info("xds server does not serve delta; using state of the world", "err", err)
		c.noDelta.Store(true)
	}
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("open ADS stream to %s: %w", c.opts.Server, err)
	}
	s := &session{c: c, st: st, nonces: map[string]string{}, sent: map[string][]string{}}
	if err := s.subscribeAll(); err != nil {
		return false, err
	}
	c.connected.Store(true)
	defer c.connected.Store(false)
	c.log.Info("xds stream established")

	for {
		resp, err := st.Recv()
		if err != nil {
			return healthy, fmt.Errorf("receive from %s: %w", c.opts.Server, err)
		}
		healthy = true
		if err := s.handle(resp); err != nil {
			return healthy, err
		}
	}
}

// session is the per-stream protocol state: nonces and subscriptions sent
// are meaningful only on the stream they belong to.
type session struct {
	c        *Client
	st       discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	nodeSent bool
	nonces   map[string]string   // typeURL -> last nonce received
	sent     map[string][]string // typeURL -> resource_names last sent
}

// subscribeAll opens every subscription at the start of a stream, with the
// last ACKed versions so the server can skip types that have not changed.
// Order follows make-before-break: clusters and endpoints before listeners
// and routes.
func (s *session) subscribeAll() error {
	c := s.c
	c.mu.Lock()
	eds, rds := c.edsNames, c.rdsNames
	c.mu.Unlock()
	for _, t := range typeOrder {
		if isNamed(t) && len(pick(t, eds, rds)) == 0 {
			// An empty first request for a named type is a legacy wildcard;
			// subscribe only once some cluster or listener asks for names.
			continue
		}
		if err := s.send(t, nil); err != nil {
			return err
		}
	}
	return nil
}

// send writes a request for typeURL carrying the current subscription, the
// last ACKed version and the last nonce seen; nack, if set, makes it a NACK.
func (s *session) send(typeURL string, nack error) error {
	c := s.c
	c.mu.Lock()
	req := &discovery.DiscoveryRequest{
		TypeUrl:       typeURL,
		VersionInfo:   c.versions[typeURL],
		ResponseNonce: s.nonces[typeURL],
	}
	if isNamed(typeURL) {
		req.ResourceNames = pick(typeURL, c.edsNames, c.rdsNames)
	}
	c.mu.Unlock()
	if !s.nodeSent {
		req.Node = c.opts.Node
	}
	if nack != nil {
		// INVALID_ARGUMENT (3) is what Envoy reports for a rejected config.
		req.ErrorDetail = status.New(codes.InvalidArgument, nack.Error()).Proto()
	}
	if err := s.st.Send(req); err != nil {
		return fmt.Errorf("send %s request: %w", shortType(typeURL), err)
	}
	s.nodeSent = true
	if isNamed(typeURL) {
		s.sent[typeURL] = req.ResourceNames
	}
	return nil
}

// resubscribe sends a request for a named type whose subscription changed
// since it was last sent on this stream.
func (s *session) resubscribe(typeURL string) error {
	c := s.c
	c.mu.Lock()
	names := pick(typeURL, c.edsNames, c.rdsNames)
	c.mu.Unlock()
	prev, ok := s.sent[typeURL]
	if !ok && len(names) == 0 {
		return nil // never subscribed, nothing to withdraw
	}
	if ok && slices.Equal(prev, names) {
		return nil
	}
	return s.send(typeURL, nil)
}

// handle processes one response: decode, build the candidate full set,
// apply it, ACK or NACK, then update the EDS/RDS subscriptions it implies.
func (s *session) handle(resp *discovery.DiscoveryResponse) error {
	c := s.c
	t := resp.GetTypeUrl()
	s.nonces[t] = resp.GetNonce()
	if !isKnown(t) {
		err := fmt.Errorf("unsupported resource type %q", t)
		c.nack(t, resp.GetVersionInfo(), err)
		return s.send(t, err)
	}

	c.mu.Lock()
	cand, changed, err := c.candidate(resp)
	c.mu.Unlock()
	if err == nil && changed {
		err = c.apply(t, cand)
	}
	if err != nil {
		c.nack(shortType(t), resp.GetVersionInfo(), err)
		return s.send(t, err)
	}

	c.mu.Lock()
	c.commit(t, resp.GetVersionInfo(), cand)
	c.mu.Unlock()
	c.log.Debug("xds ACK", "type", shortType(t), "version", resp.GetVersionInfo(), "resources", len(resp.GetResources()))
	if err := s.send(t, nil); err != nil {
		return err
	}
	// After the ACK: a new cluster or listener subscribes to its endpoints
	// or routes, and a removed one withdraws them.
	switch t {
	case typeCluster:
		return s.resubscribe(typeEndpoint)
	case typeListener:
		return s.resubscribe(typeRoute)
	}
	return nil
}

// nack reports a rejected response: logged, and handed to OnNACK.
func (c *Client) nack(typ, version string, err error) {
	c.log.Warn("xds NACK", "type", typ, "version", version, "err", err)
	if c.opts.OnNACK != nil {
		c.opts.OnNACK(err)
	}
}

// apply hands cand to the Apply callback once it can be a whole config, and
// turns runtime.ErrIncomplete into acceptance. It returns the error to NACK
// with, or nil.
func (c *Client) apply(t string, cand *runtime.Resources) error {
	c.mu.Lock()
	ready := c.applied || c.initialSetComplete(t, cand)
	c.mu.Unlock()
	if !ready {
		// Before the first config, a set without listeners or without the
		// endpoints of its clusters would report ready while it cannot
		// serve yet; ACK it and wait, as Envoy's init manager does.
		return nil
	}
	err := c.opts.Apply(cand)
	switch {
	case err == nil:
		c.mu.Lock()
		c.applied = true
		c.mu.Unlock()
		return nil
	case errors.Is(err, runtime.ErrIncomplete):
		c.log.Debug("xds config incomplete; waiting for more resources", "err", err)
		return nil
	default:
		return fmt.Errorf("apply: %w", err)
	}
}

// initialSetComplete reports whether cand, built from a response of type
// t, has what a first config needs: clusters and listeners received, and
// endpoints for every EDS cluster. Missing route configurations are the
// runtime's to report (ErrIncomplete). Callers hold c.mu.
func (c *Client) initialSetComplete(t string, cand *runtime.Resources) bool {
	for _, need := range []string{typeCluster, typeListener} {
		if !c.received[need] && t != need {
			return false
		}
	}
	for _, n := range edsNamesOf(cand.Clusters) {
		if _, ok := cand.Endpoints[n]; !ok {
			return false
		}
	}
	return true
}

// commit makes cand the ACKed state after a response of type t was
// accepted. Callers hold c.mu.
func (c *Client) commit(t, version string, cand *runtime.Resources) {
	c.res = cand
	c.versions[t] = version
	c.received[t] = true
	c.edsNames = edsNamesOf(cand.Clusters)
	// candidate already checked every listener, so this cannot fail here.
	c.rdsNames, _ = rdsNamesOf(cand.Listeners)
}
