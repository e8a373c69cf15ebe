package server

import (
	"fmt"
	"slices"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/weft-mesh/weft/xds/resource"
)

// DeltaAggregatedResources serves one proxy over incremental ADS: the same
// stream life as StreamAggregatedResources (authentication, admission,
// certificates, make-before-break order, ACK/NACK bookkeeping), but each
// response carries only the resources that changed since what the proxy
// holds, and the names of those it should drop. A change to one cluster
// sends one cluster.
func (s *Server) DeltaAggregatedResources(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	var first *discovery.DeltaDiscoveryRequest
	c, err := s.open(stream.Context(), func() (n *core.Node, err error) {
		first, err = stream.Recv()
		return first.GetNode(), err
	})
	if err != nil {
		return err
	}
	c.send = func(t string, target *resource.Set) error { return c.sendDelta(stream, t, target) }
	return c.run(stream.Context(), func() { c.handleDelta(first) }, func() (request, error) {
		req, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return func() { c.handleDelta(req) }, nil
	})
}

// handleDelta records what an incremental request says: a first
// subscription (with what the proxy already holds, after a reconnect), a
// change of subscription, an ACK or a NACK.
func (c *conn) handleDelta(req *discovery.DeltaDiscoveryRequest) {
	t := req.GetTypeUrl()
	st, ok := c.types[t]
	if !ok {
		c.log.Debug("xds request for unsupported type ignored", "type", t)
		return
	}
	if !st.subscribed {
		st.subscribed = true
		st.names = nil
		if sub := req.GetResourceNamesSubscribe(); isNamed(t) && len(sub) > 0 && !slices.Contains(sub, "*") {
			st.names = resource.Intern(sub)
		}
		// What the proxy says it holds (after a reconnect) is the base the
		// first response is the difference from.
		if have := req.GetInitialResourceVersions(); len(have) > 0 {
			var stubs []*resource.Resource
			for n, v := range have {
				stubs = append(stubs, resource.Stub(n, v))
			}
			st.sent = resource.NewSet(stubs)
			st.acked = st.sent
		}
		delete(c.targets, t)
	} else if st.names != nil && (len(req.GetResourceNamesSubscribe()) > 0 || len(req.GetResourceNamesUnsubscribe()) > 0) {
		names := append(slices.Clone(st.names.List()), req.GetResourceNamesSubscribe()...)
		drop := req.GetResourceNamesUnsubscribe()
		names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(drop, n) })
		st.names = resource.Intern(names)
		// The proxy forgets what it unsubscribed from: a later
		// subscription must send it again.
		if len(drop) > 0 {
			for _, s := range []**resource.Set{&st.sent, &st.acked} {
				if *s != nil {
					*s = resource.Filter(*s, st.names)
				}
			}
		}
		delete(c.targets, t)
	}
	switch nonce := req.GetResponseNonce(); {
	case nonce == "":
	case nonce != st.sentNonce:
		// Reply to a response we have since superseded; xDS says ignore it.
	case req.GetErrorDetail() != nil:
		c.nack(t, req.GetErrorDetail().GetMessage())
	default:
		c.ack(t)
	}
	c.s.seen(c.nodeID)
}

// sendDelta sends what turns what the proxy holds into target. When
// nothing differs (the same resources under another version) nothing is
// sent, except the first response of a subscription, which the proxy
// waits for even when it is empty.
func (c *conn) sendDelta(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, t string, target *resource.Set) error {
	st := c.types[t]
	d := resource.Compare(st.base(), target)
	if d.Empty() && st.sentNonce != "" {
		if st.acked == st.sent {
			st.acked = target
		}
		st.sentVer, st.sent = target.Version(), target
		return nil
	}
	nonce := c.nextNonce()
	resp := &deltaResponse{version: target.Version(), typeURL: t, nonce: nonce, removed: d.Removed}
	if st.base() == nil {
		resp.resources = setResources(target, t, true) // everything: share the set's encoding
	} else {
		resp.resources = encodeResources(d, t, true, func() []*resource.Resource { return d.Changed })
	}
	if err := stream.SendMsg(resp); err != nil {
		return fmt.Errorf("send %s %s to %s: %w", shortType(t), target.Version(), c.nodeID, err)
	}
	c.sent(t, nonce, target)
	c.log.Debug("xds sent", "type", shortType(t), "version", target.Version(), "nonce", nonce, "changed", len(d.Changed), "removed", len(d.Removed))
	return nil
}
