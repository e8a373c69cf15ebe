package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/runtime"
)

// deltaStream runs one incremental ADS stream on conn until it fails.
// Every type is subscribed at once with the versions of the resources
// held, so after a reconnect the server sends only what changed meanwhile.
// healthy reports whether the server sent at least one response.
func (c *Client) deltaStream(ctx context.Context, conn *grpc.ClientConn) (healthy bool, err error) {
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return false, fmt.Errorf("open delta ADS stream to %s: %w", c.opts.Server, err)
	}
	s := &deltaSession{c: c, st: st, subs: map[string][]string{}}
	if err := s.subscribeAll(); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the stream; its status says why (an old
			// control plane: Unimplemented).
			_, err = st.Recv()
		}
		return false, err
	}
	c.connected.Store(true)
	defer c.connected.Store(false)
	for {
		resp, err := st.Recv()
		if err != nil {
			return healthy, fmt.Errorf("receive from %s: %w", c.opts.Server, err)
		}
		if !healthy {
			healthy = true
			c.log.Info("xds stream established", "protocol", "delta")
		}
		if err := s.handle(resp); err != nil {
			return healthy, err
		}
	}
}

// deltaSession is the per-stream state of an incremental stream.
type deltaSession struct {
	c        *Client
	st       discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	nodeSent bool
	subs     map[string][]string // EDS/RDS names subscribed on this stream
}

func (s *deltaSession) send(req *discovery.DeltaDiscoveryRequest) error {
	if !s.nodeSent {
		req.Node = s.c.opts.Node
	}
	if err := s.st.Send(req); err != nil {
		return fmt.Errorf("send %s request: %w", shortType(req.GetTypeUrl()), err)
	}
	s.nodeSent = true
	return nil
}

// subscribeAll opens every subscription in make-before-break order:
// secrets, clusters and listeners by wildcard, endpoints and routes by the
// names the clusters and listeners held ask for (once there are some).
func (s *deltaSession) subscribeAll() error {
	c := s.c
	c.mu.Lock()
	eds, rds := c.edsNames, c.rdsNames
	have := map[string]map[string]string{}
	for t, m := range c.rv {
		have[t] = maps.Clone(m)
	}
	c.mu.Unlock()
	for _, t := range typeOrder {
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: t, InitialResourceVersions: have[t]}
		if isNamed(t) {
			names := pick(t, eds, rds)
			if len(names) == 0 {
				continue // subscribed once a cluster or listener asks for names
			}
			req.ResourceNamesSubscribe = names
			s.subs[t] = names
		}
		if err := s.send(req); err != nil {
			return err
		}
	}
	return nil
}

// resubscribe tells the server how the EDS or RDS subscription changed.
func (s *deltaSession) resubscribe(t string) error {
	c := s.c
	c.mu.Lock()
	want := pick(t, c.edsNames, c.rdsNames)
	c.mu.Unlock()
	have := s.subs[t]
	var add, drop []string
	for _, n := range want {
		if !slices.Contains(have, n) {
			add = append(add, n)
		}
	}
	for _, n := range have {
		if !slices.Contains(want, n) {
			drop = append(drop, n)
		}
	}
	if len(add)+len(drop) == 0 {
		return nil
	}
	s.subs[t] = want
	return s.send(&discovery.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: drop})
}

// handle decodes one response, applies the candidate set it makes, ACKs or
// NACKs it, and updates the subscriptions it implies.
func (s *deltaSession) handle(resp *discovery.DeltaDiscoveryResponse) error {
	c := s.c
	t := resp.GetTypeUrl()
	nack := func(err error) error {
		c.nack(shortType(t), resp.GetSystemVersionInfo(), err)
		return s.send(&discovery.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce(),
			ErrorDetail: status.New(codes.InvalidArgument, err.Error()).Proto()})
	}
	if !isKnown(t) {
		return nack(fmt.Errorf("unsupported resource type %q", t))
	}
	c.mu.Lock()
	cand, changed, err := c.deltaCandidate(resp)
	c.mu.Unlock()
	if err == nil && changed {
		err = c.apply(t, cand)
	}
	if err != nil {
		return nack(err)
	}
	c.mu.Lock()
	c.commit(t, resp.GetSystemVersionInfo(), cand)
	rv := c.rv[t]
	if rv == nil {
		rv = map[string]string{}
		c.rv[t] = rv
	}
	for _, r := range resp.GetResources() {
		rv[r.GetName()] = r.GetVersion()
	}
	for _, n := range resp.GetRemovedResources() {
		delete(rv, n)
	}
	// Endpoints and routes of clusters and listeners that are gone go with
	// them (the server only says so for what is subscribed).
	for _, pair := range [][2]string{{typeEndpoint, ""}, {typeRoute, ""}} {
		if m := c.rv[pair[0]]; m != nil {
			keep := setOf(pick(pair[0], c.edsNames, c.rdsNames))
			for n := range m {
				if !keep[n] {
					delete(m, n)
				}
			}
		}
	}
	c.mu.Unlock()
	c.log.Debug("xds ACK", "type", shortType(t), "version", resp.GetSystemVersionInfo(), "resources", len(resp.GetResources()), "removed", len(resp.GetRemovedResources()))
	if err := s.send(&discovery.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}); err != nil {
		return err
	}
	switch t {
	case typeCluster:
		return s.resubscribe(typeEndpoint)
	case typeListener:
		return s.resubscribe(typeRoute)
	}
	return nil
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// deltaCandidate builds the full resource set that accepting resp would
// leave: the resources held, with those resp carries put in and those it
// removes taken out. changed is false when nothing would differ. Callers
// hold c.mu.
func (c *Client) deltaCandidate(resp *discovery.DeltaDiscoveryResponse) (cand *runtime.Resources, changed bool, err error) {
	t := resp.GetTypeUrl()
	anys := make([]*anypb.Any, len(resp.GetResources()))
	names := make([]string, len(resp.GetResources()))
	for i, r := range resp.GetResources() {
		if r.GetResource() == nil {
			return nil, false, fmt.Errorf("resources[%d] %q: no resource", i, r.GetName())
		}
		anys[i], names[i] = r.GetResource(), r.GetName()
	}
	cur := c.res
	cand = &runtime.Resources{Listeners: cur.Listeners, Routes: cur.Routes, Clusters: cur.Clusters, Endpoints: cur.Endpoints, Secrets: cur.Secrets}
	first := !c.received[t]
	removed := resp.GetRemovedResources()
	switch t {
	case typeSecret:
		cand.Secrets, changed, err = deltaApply(t, anys, names, removed, cur.Secrets, func() *tlsv3.Secret { return new(tlsv3.Secret) })
	case typeCluster:
		cand.Clusters, changed, err = deltaApply(t, anys, names, removed, cur.Clusters, func() *cluster.Cluster { return new(cluster.Cluster) })
		if err == nil {
			cand.Endpoints = keep(cur.Endpoints, edsNamesOf(cand.Clusters))
		}
	case typeListener:
		cand.Listeners, changed, err = deltaApply(t, anys, names, removed, cur.Listeners, func() *listener.Listener { return new(listener.Listener) })
		if err == nil {
			var rds []string
			if rds, err = rdsNamesOf(cand.Listeners); err == nil {
				cand.Routes = keep(cur.Routes, rds)
			}
		}
	case typeEndpoint:
		cand.Endpoints, changed, err = deltaApply(t, anys, names, removed, cur.Endpoints, func() *endpoint.ClusterLoadAssignment { return new(endpoint.ClusterLoadAssignment) })
		cand.Endpoints = keep(cand.Endpoints, c.edsNames)
	case typeRoute:
		cand.Routes, changed, err = deltaApply(t, anys, names, removed, cur.Routes, func() *route.RouteConfiguration { return new(route.RouteConfiguration) })
		cand.Routes = keep(cand.Routes, c.rdsNames)
	default:
		return nil, false, fmt.Errorf("unsupported resource type %q", t)
	}
	if err != nil {
		return nil, false, err
	}
	return cand, changed || first, nil
}

// deltaApply decodes a delta response's resources (each must be named as
// the Resource that carries it says) and lays them, and its removals, over
// cur.
func deltaApply[M named](t string, anys []*anypb.Any, names, removed []string, cur map[string]M, newM func() M) (map[string]M, bool, error) {
	got, err := decode(t, anys, newM)
	if err != nil {
		return nil, false, err
	}
	for i, n := range names {
		if _, ok := got[n]; !ok {
			return nil, false, fmt.Errorf("resources[%d]: named %q, but holds another %s", i, n, shortType(t))
		}
	}
	out := maps.Clone(cur)
	changed := false
	for n, v := range got {
		if old, ok := out[n]; !ok || !proto.Equal(old, v) {
			changed = true
		}
		out[n] = v
	}
	for _, n := range removed {
		if _, ok := out[n]; ok {
			changed = true
			delete(out, n)
		}
	}
	return out, changed, nil
}
