package server

import (
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/translate"
)

// setAt is set with the snapshot at model revision rev.
func (g *fakeGen) setAt(rev int64, services ...string) {
	g.set(services...)
	s := g.snap.Load()
	var objs []*config.Object
	for _, k := range []config.Kind{config.KindServiceEntry, config.KindGateway} {
		objs = append(objs, s.Objects(k)...)
	}
	g.snap.Store(model.Build(rev, objs))
}

func syncOf(t *testing.T, s *Server) SyncStatus {
	t.Helper()
	conns := s.Connections()
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	return conns[0].Sync
}

func waitSync(t *testing.T, s *Server, what string, ok func(SyncStatus) bool) SyncStatus {
	t.Helper()
	var last SyncStatus
	waitFor(t, what, func() bool {
		conns := s.Connections()
		if len(conns) != 1 {
			return false
		}
		last = conns[0].Sync
		return ok(last)
	})
	return last
}

// ackUntil reads and ACKs what the server sends until ok holds for the
// one connection's sync status (a resubscription, as settle sends, would
// itself make the proxy pending again).
func (c *client) ackUntil(s *Server, what string, ok func(SyncStatus) bool) {
	c.t.Helper()
	deadline := time.Now().Add(responseWait)
	for time.Now().Before(deadline) {
		if conns := s.Connections(); len(conns) == 1 && ok(conns[0].Sync) {
			return
		}
		if r := c.next(10 * time.Millisecond); r != nil {
			c.ack(r)
		}
	}
	c.t.Fatalf("%s: not within %v of reading and ACKing", what, responseWait)
}

// A proxy's sync status follows the model revision: pending until it has
// ACKed every type generated for the revision, synced after, and NACKed
// (with the proxy's message) when it rejects part of it; the newest fully
// ACKed revision stays known through a later pending or NACKed one.
func TestSyncStatusFollowsRevisions(t *testing.T) {
	gen := &fakeGen{}
	gen.setAt(7, "catalog")
	s, addr := start(t, gen)
	c := dial(t, addr, sidecar("web"))
	c.subscribeAll()
	first := c.next(time.Second)
	if first == nil {
		t.Fatal("no response")
	}
	if st := syncOf(t, s); st.State != Pending || st.SyncedRevision != 0 {
		t.Errorf("before any ACK: %+v, want pending, nothing synced", st)
	}
	c.ack(first)
	c.ackUntil(s, "revision 7 synced", func(st SyncStatus) bool {
		return st.State == Synced && st.Revision == 7 && st.SyncedRevision == 7
	})

	// Revision 8 changes clusters, endpoints and routes: hold back the
	// RDS ACK and the proxy is pending at 8, synced at 7.
	gen.setAt(8, "catalog", "reviews")
	s.Push("reviews added")
	var rds *discovery.DiscoveryResponse
	for rds == nil {
		r := c.next(time.Second)
		if r == nil {
			t.Fatal("no RDS push")
		}
		if r.TypeUrl == translate.RouteType {
			rds = r
			continue
		}
		c.ack(r)
	}
	st := waitSync(t, s, "revision 8 waiting for RDS", func(st SyncStatus) bool {
		return st.Revision == 8 && strings.Contains(st.Detail, "RDS")
	})
	if st.State != Pending || st.SyncedRevision != 7 {
		t.Errorf("RDS unACKed: %+v, want pending on RDS, synced at 7", st)
	}
	c.ack(rds)
	waitSync(t, s, "revision 8 synced", func(st SyncStatus) bool { return st.State == Synced && st.SyncedRevision == 8 })

	// Revision 9's routes are refused.
	gen.setAt(9, "catalog", "reviews", "ratings")
	s.Push("ratings added")
	for {
		r := c.next(time.Second)
		if r == nil {
			t.Fatal("no RDS push")
		}
		if r.TypeUrl == translate.RouteType {
			c.nack(r, rds.VersionInfo)
			break
		}
		c.ack(r)
	}
	st = waitSync(t, s, "revision 9 NACKed", func(st SyncStatus) bool { return st.State == NACKed })
	if st.Revision != 9 || st.SyncedRevision != 8 || !strings.Contains(st.Detail, "unsupported field") {
		t.Errorf("NACK: %+v", st)
	}
}

// A proxy that ACKed its listeners but has not asked for the route table
// they name is not synced: its routes are not in place yet.
func TestSyncStatusWaitsForRouteSubscription(t *testing.T) {
	gen := &fakeGen{}
	gen.setAt(3, "catalog")
	s, addr := start(t, gen)
	c := dial(t, addr, sidecar("web"))
	for _, typ := range pushOrder {
		req := &discovery.DiscoveryRequest{TypeUrl: typ}
		if typ == translate.RouteType {
			req.ResourceNames = []string{"not-yet"}
		}
		c.send(req)
	}
	// ACK everything, keeping the RDS subscription to a table it does not need.
	var lastRDS *discovery.DiscoveryResponse
	for r := c.next(time.Second); r != nil; r = c.next(200 * time.Millisecond) {
		req := &discovery.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce}
		if r.TypeUrl == translate.RouteType {
			req.ResourceNames, lastRDS = []string{"not-yet"}, r
		}
		c.send(req)
	}
	st := waitSync(t, s, "all types answered", func(st SyncStatus) bool { return strings.Contains(st.Detail, "RDS outbound") })
	if st.State != Pending || st.SyncedRevision != 0 {
		t.Errorf("route table not asked for: %+v, want pending", st)
	}
	if lastRDS == nil {
		t.Fatal("no RDS response to the first subscription")
	}
	c.send(&discovery.DiscoveryRequest{TypeUrl: translate.RouteType, VersionInfo: lastRDS.VersionInfo,
		ResponseNonce: lastRDS.Nonce, ResourceNames: []string{translate.OutboundRoute}})
	// ACK up to the answer to that subscription, keeping it in every RDS ACK.
	for {
		r := c.next(responseWait)
		if r == nil {
			t.Fatal("no RDS answer to the route table subscription")
		}
		req := &discovery.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce}
		if r.TypeUrl == translate.RouteType {
			req.ResourceNames = []string{translate.OutboundRoute}
		}
		c.send(req)
		if r.TypeUrl == translate.RouteType {
			break
		}
	}
	waitSync(t, s, "synced once the route table is asked for and ACKed", func(st SyncStatus) bool {
		return st.State == Synced && st.SyncedRevision == 3
	})
}
