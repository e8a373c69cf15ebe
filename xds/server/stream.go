package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/translate"
)

// pushOrder is the make-before-break order of the contract: secrets
// before the clusters and listeners whose TLS uses them.
var pushOrder = []string{SecretType, translate.ClusterType, translate.EndpointType, translate.ListenerType, translate.RouteType}

// typeState is one resource type on one stream.
type typeState struct {
	subscribed bool
	names      []string // EDS/RDS names asked for; empty means all
	sentNonce  string   // "" until something was sent on this stream
	sentVer    string
	sentRes    []proto.Message
	replied    bool // the proxy ACKed or NACKed sentNonce
	nacked     bool // ... and it was a NACK
}

type ackedState struct {
	version string
	res     []proto.Message
}

// conn is one ADS stream. Fields above mu belong to the stream's goroutine;
// those below are read by Connections and Acked.
type conn struct {
	s           *Server
	stream      discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	meta        *node.Meta
	principal   Principal // who the stream authenticated as
	nodeID      string
	seq         uint64
	connID      string
	connectedAt time.Time
	pushCh      chan struct{}
	log         *slog.Logger

	desired *translate.Resources
	genErr  string // why the newest model could not be generated; "" when it was
	// Clusters (and their assignments) the proxy was sent but the desired
	// state dropped. They stay in CDS/EDS until the proxy has replied to
	// the LDS and RDS that stop routing to them: the "break" half of
	// make-before-break runs as a second CDS round.
	retainedClusters map[string]*cluster.Cluster
	retainedCLAs     map[string]*endpoint.ClusterLoadAssignment
	types            map[string]*typeState
	nonce            uint64

	// SDS: the SPIFFE ID issued to, the secrets to send (ROOTCA, default)
	// and the renewal timer, which signals renewCh.
	identity   string
	secrets    []proto.Message
	certExpiry time.Time
	renewTimer *time.Timer
	renewCh    chan struct{}

	mu       sync.Mutex
	acked    map[string]ackedState
	lastNack string
	sync     SyncStatus
}

// StreamAggregatedResources serves one proxy: it authenticates the
// stream, admits the proxy, issues its certificate, and then keeps its
// resources current until the stream ends.
func (s *Server) StreamAggregatedResources(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	principal := Principal{Mesh: true, Subject: "anyone"}
	if auth := s.opts.Authenticate; auth != nil {
		var err error
		if principal, err = auth(stream.Context()); err != nil {
			s.log.Warn("xds stream refused", "peer", peerAddr(stream), "err", err)
			return err
		}
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	meta, err := node.Parse(first.GetNode())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "first request: %v", err)
	}
	if err := principal.Covers(meta); err != nil {
		s.log.Warn("xds proxy refused: identity not covered by its credential", "node", meta.ID(), "peer", peerAddr(stream), "err", err)
		return status.Error(codes.PermissionDenied, err.Error())
	}
	if err := s.admit(meta); err != nil {
		s.log.Warn("xds proxy not admitted", "node", meta.ID(), "peer", peerAddr(stream), "err", err)
		return err
	}
	c := &conn{
		s: s, stream: stream, meta: meta, principal: principal, nodeID: meta.ID(), connectedAt: time.Now(),
		pushCh:           make(chan struct{}, 1),
		renewCh:          make(chan struct{}, 1),
		retainedClusters: map[string]*cluster.Cluster{},
		retainedCLAs:     map[string]*endpoint.ClusterLoadAssignment{},
		types:            map[string]*typeState{},
		acked:            map[string]ackedState{},
	}
	if s.opts.Issuer != nil {
		if c.identity, err = Identity(s.opts.TrustDomain, meta); err != nil {
			return status.Errorf(codes.InvalidArgument, "first request: %v", err)
		}
	}
	for _, t := range pushOrder {
		c.types[t] = &typeState{}
	}
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

	ctx := stream.Context()
	reqs := make(chan *discovery.DiscoveryRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
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

	if err := c.regenerate(); err != nil {
		return err
	}
	c.handle(first)
	for {
		if err := c.advance(); err != nil {
			return err
		}
		c.publishSync()
		select {
		case req := <-reqs:
			c.handle(req)
		case <-c.pushCh:
			if err := c.regenerate(); err != nil {
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
func peerAddr(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) string {
	if p, ok := peer.FromContext(stream.Context()); ok && p.Addr != nil {
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
	res, err := c.s.gen.Generate(c.meta)
	if err != nil {
		c.log.Error("xds generate failed; keeping previous resources", "err", err)
		c.genErr = err.Error()
		return nil
	}
	if err := res.Validate(); err != nil {
		c.log.Error("xds generated invalid resources; push skipped", "err", err)
		c.genErr = fmt.Sprintf("revision %d: invalid resources: %v", res.Revision, err)
		return nil
	}
	c.genErr = ""
	// Anything the proxy holds that the new state drops is retained until
	// the new routes are in place.
	for _, m := range c.types[translate.ClusterType].sentRes {
		cl := m.(*cluster.Cluster)
		if _, ok := res.Clusters[cl.GetName()]; ok {
			continue
		}
		if _, ok := c.retainedClusters[cl.GetName()]; ok {
			continue
		}
		c.retainedClusters[cl.GetName()] = cl
		if c.desired != nil {
			if cla, ok := c.desired.Endpoints[cl.GetName()]; ok {
				c.retainedCLAs[cl.GetName()] = cla
			}
		}
	}
	for name := range c.retainedClusters {
		if _, ok := res.Clusters[name]; ok {
			delete(c.retainedClusters, name)
			delete(c.retainedCLAs, name)
		}
	}
	c.desired = res
	return nil
}

// handle records what a request says: a new subscription, an ACK or a NACK.
func (c *conn) handle(req *discovery.DiscoveryRequest) {
	st, ok := c.types[req.GetTypeUrl()]
	if !ok {
		c.log.Debug("xds request for unsupported type ignored", "type", req.GetTypeUrl())
		return
	}
	switch {
	case req.GetResponseNonce() == "":
		// A (re)subscription: answer it even if the version is unchanged.
		st.subscribed, st.names = true, req.GetResourceNames()
		st.sentNonce, st.sentVer, st.sentRes, st.replied, st.nacked = "", "", nil, false, false
	case req.GetResponseNonce() != st.sentNonce:
		// Reply to a response we have since superseded; xDS says ignore it.
	case req.GetErrorDetail() != nil:
		st.replied, st.nacked = true, true
		msg := fmt.Sprintf("%s %s: %s", shortType(req.GetTypeUrl()), st.sentVer, req.GetErrorDetail().GetMessage())
		c.mu.Lock()
		c.lastNack = msg
		c.mu.Unlock()
		c.log.Warn("xds NACK", "type", shortType(req.GetTypeUrl()), "version", st.sentVer, "error", req.GetErrorDetail().GetMessage())
	default:
		st.replied, st.nacked = true, false
		c.mu.Lock()
		c.acked[req.GetTypeUrl()] = ackedState{version: st.sentVer, res: st.sentRes}
		c.mu.Unlock()
	}
	if req.GetResponseNonce() == st.sentNonce && isNamed(req.GetTypeUrl()) {
		st.names = req.GetResourceNames()
	}
	c.s.mu.Lock()
	c.s.lastSeen[c.nodeID] = time.Now()
	c.s.mu.Unlock()
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
			res := c.target(t)
			ver := version(res)
			if st.sentNonce != "" && ver == st.sentVer {
				continue // sent already: in flight, ACKed, or NACKed and not to be repeated
			}
			if err := c.send(t, ver, res); err != nil {
				return err
			}
		}
		if len(c.retainedClusters) == 0 || !c.settled(translate.ListenerType) || !c.settled(translate.RouteType) {
			return nil
		}
		c.log.Debug("xds removing clusters no longer routed to", "count", len(c.retainedClusters))
		clear(c.retainedClusters)
		clear(c.retainedCLAs)
	}
	return nil
}

// settled reports whether the proxy has replied to the current target of
// type t (an unsubscribed type has nothing to wait for, except CDS, which
// every proxy subscribes to first).
func (c *conn) settled(t string) bool {
	st := c.types[t]
	if !st.subscribed {
		return t != translate.ClusterType
	}
	return st.sentNonce != "" && st.replied && st.sentVer == version(c.target(t))
}

// endpointsFollow reports whether the proxy holds the endpoints of every
// EDS cluster it was sent: its EDS subscription names each of them and it
// has replied to the current EDS. A proxy asks for a new cluster's
// endpoints only after it took the CDS, so without this wait a route sent
// on the CDS ACK could reach the proxy before the endpoints of a cluster
// it names, and requests would fail with no healthy upstream (UH). A proxy
// not subscribed to EDS yet (the first configuration) is not waited for:
// it holds back its first configuration until it is complete.
func (c *conn) endpointsFollow() bool {
	st := c.types[translate.EndpointType]
	if !st.subscribed {
		return true
	}
	if !c.settled(translate.EndpointType) {
		return false
	}
	if len(st.names) == 0 {
		return true // a wildcard subscription gets every assignment
	}
	asked := make(map[string]bool, len(st.names))
	for _, n := range st.names {
		asked[n] = true
	}
	for _, m := range c.types[translate.ClusterType].sentRes {
		if cl := m.(*cluster.Cluster); cl.GetType() == cluster.Cluster_EDS && !asked[cl.GetName()] {
			return false
		}
	}
	return true
}

// target returns the resources of type t to be sent now, sorted by name.
func (c *conn) target(t string) []proto.Message {
	d := c.desired
	switch t {
	case SecretType:
		return filterNames(c.secrets, c.types[t].names)
	case translate.ClusterType:
		out := d.ByType(t)
		for _, cl := range c.retainedClusters {
			out = append(out, cl)
		}
		return sortByName(out)
	case translate.EndpointType:
		out := d.ByType(t)
		for _, cla := range c.retainedCLAs {
			out = append(out, cla)
		}
		return filterNames(sortByName(out), c.types[t].names)
	case translate.RouteType:
		return filterNames(d.ByType(t), c.types[t].names)
	default:
		return d.ByType(t)
	}
}

func (c *conn) send(t, ver string, res []proto.Message) error {
	c.nonce++
	nonce := strconv.FormatUint(c.nonce, 10)
	resp := &discovery.DiscoveryResponse{VersionInfo: ver, TypeUrl: t, Nonce: nonce}
	for _, m := range res {
		a := &anypb.Any{}
		if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
			return status.Errorf(codes.Internal, "marshal %s %s: %v", shortType(t), resourceName(m), err)
		}
		resp.Resources = append(resp.Resources, a)
	}
	if err := c.stream.Send(resp); err != nil {
		return fmt.Errorf("send %s %s to %s: %w", shortType(t), ver, c.nodeID, err)
	}
	st := c.types[t]
	st.sentNonce, st.sentVer, st.sentRes, st.replied, st.nacked = nonce, ver, res, false, false
	c.log.Debug("xds sent", "type", shortType(t), "version", ver, "nonce", nonce, "resources", len(res))
	return nil
}

// version is a short hash of the resources' deterministic encoding, so the
// same resources always get the same version, across streams and restarts.
func version(res []proto.Message) string {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, m := range res {
		b, err := opts.Marshal(m)
		if err != nil {
			// Unreachable for generated Envoy messages; fold the error in so
			// the version still changes with the input.
			b = []byte(err.Error())
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func resourceName(m proto.Message) string {
	switch v := m.(type) {
	case *cluster.Cluster:
		return v.GetName()
	case *endpoint.ClusterLoadAssignment:
		return v.GetClusterName()
	case *listener.Listener:
		return v.GetName()
	case *route.RouteConfiguration:
		return v.GetName()
	case *tlsv3.Secret:
		return v.GetName()
	}
	return ""
}

func sortByName(res []proto.Message) []proto.Message {
	sort.SliceStable(res, func(i, j int) bool { return resourceName(res[i]) < resourceName(res[j]) })
	return res
}

// filterNames keeps the resources named in names; empty names keeps all.
func filterNames(res []proto.Message, names []string) []proto.Message {
	if len(names) == 0 {
		return res
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := res[:0:0]
	for _, m := range res {
		if want[resourceName(m)] {
			out = append(out, m)
		}
	}
	return out
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
