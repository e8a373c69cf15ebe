package server

import (
	"fmt"

	"github.com/weft-mesh/weft/xds/resource"
	"github.com/weft-mesh/weft/xds/translate"
)

// publishSync records, for Connections, how far the proxy has taken the
// newest configuration generated for it. The stream's goroutine calls it
// after every step, so it reads the stream's own state without locks.
func (c *conn) publishSync() {
	st := SyncStatus{}
	if c.desired != nil {
		st.Revision = c.desired.Revision
	}
	st.State, st.Detail = c.syncState()
	c.mu.Lock()
	defer c.mu.Unlock()
	st.SyncedRevision = c.sync.SyncedRevision
	if st.State == Synced && st.Revision > st.SyncedRevision {
		st.SyncedRevision = st.Revision
	}
	c.sync = st
}

// syncState says whether the proxy holds everything generated for it:
// every type it subscribes to ACKed at its current target, and a
// subscription to every endpoint set and route table the target needs (a
// proxy asks for a new route table only after ACKing the listener that
// names it, so an ACKed LDS alone does not mean the routes are in place).
func (c *conn) syncState() (state, detail string) {
	if c.genErr != "" {
		return Pending, "newest configuration not generated: " + c.genErr
	}
	if c.desired == nil {
		return Pending, "no configuration generated yet"
	}
	for _, t := range pushOrder {
		st := c.types[t]
		missing := c.unrequested(t)
		switch {
		case !st.subscribed && t == translate.ClusterType:
			return Pending, "not subscribed to CDS yet"
		case !st.subscribed && missing != "":
			return Pending, fmt.Sprintf("not subscribed to %s yet (needs %s)", shortType(t), missing)
		case !st.subscribed:
			continue
		case st.sentNonce == "" || st.sentVer != c.target(t).Version():
			return Pending, shortType(t) + " not sent yet"
		case !st.replied:
			return Pending, fmt.Sprintf("%s %s sent, not ACKed yet", shortType(t), st.sentVer)
		case st.nacked:
			c.mu.Lock()
			defer c.mu.Unlock()
			return NACKed, c.lastNack
		case missing != "":
			return Pending, fmt.Sprintf("has not asked for %s %s yet", shortType(t), missing)
		}
	}
	return Synced, ""
}

// unrequested returns the first endpoint set (EDS) or route table (RDS)
// the desired state needs that the proxy has not subscribed to by name
// ("" when none is missing, or the subscription is a wildcard).
func (c *conn) unrequested(t string) string {
	var need *resource.Set
	switch t {
	case translate.EndpointType:
		need = resource.Layer(c.desired.Endpoints, c.retainedCLAs)
		if c.types[translate.ClusterType].names != nil {
			// Clusters asked for by name (gRPC): only their endpoints are
			// needed (an assignment is named as its cluster).
			need = resource.Filter(need, resource.Intern(c.target(translate.ClusterType).Names()))
		}
	case translate.RouteType:
		need = c.desired.Routes
		if c.types[translate.ListenerType].names != nil {
			// Listeners asked for by name (gRPC): only their route tables,
			// named as they are.
			need = resource.Filter(need, resource.Intern(c.target(translate.ListenerType).Names()))
		}
	default:
		return ""
	}
	st := c.types[t]
	if st.subscribed && st.names == nil {
		return "" // a wildcard subscription: everything is sent
	}
	if need.Len() == 0 {
		return ""
	}
	if st.names == nil {
		first := ""
		need.Range(func(r *resource.Resource) bool { first = r.Name; return false })
		return first
	}
	return resource.FirstMissing(need, st.names)
}
