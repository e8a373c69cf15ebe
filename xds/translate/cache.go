package translate

import (
	"sync"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// itemCache keeps generated pieces across snapshots, keyed by exactly
// what they are made of: model values (a *model.Service, a
// *config.Object) stay the same pointers while their stored objects are
// unchanged, and model.Epochs number everything else. An entry unused for
// a whole snapshot is dropped at the next one (two generations).
type itemCache struct {
	mu       sync.Mutex
	cur, old map[any]any
}

func newItemCache() *itemCache { return &itemCache{cur: map[any]any{}, old: map[any]any{}} }

// rotate starts a new generation: what the last snapshot used survives
// one more.
func (c *itemCache) rotate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.old, c.cur = c.cur, make(map[any]any, len(c.cur))
}

func (c *itemCache) get(k any) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	if v, ok := c.old[k]; ok {
		c.cur[k] = v
		return v, true
	}
	return nil, false
}

func (c *itemCache) put(k, v any) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if have, ok := c.cur[k]; ok {
		return have // another proxy's generation got there first: keep one value
	}
	c.cur[k] = v
	return v
}

// clusterKey identifies an outbound cluster and its assignment: the
// service (its endpoints' identities are the SANs a client accepts), the
// port and subset, the DestinationRule a client of the scope sees, and the
// PeerAuthentications (which endpoints take mTLS).
type clusterKey struct {
	flavor flavor
	svc    *model.Service
	port   uint32
	subset string
	dr     *config.Object
	peer   uint64
	td     string
	down   string // the endpoints' sidecars that are down (Options.ProxyDown)
}

// clusterItem is a generated outbound cluster, its assignment (nil for
// ORIGINAL_DST), the hash policy routes to it must carry, and the
// problems met making it.
type clusterItem struct {
	name       string
	eds        string // the assignment an EDS cluster asks for; "" for another type
	hash       *route.RouteAction_HashPolicy
	problems   []string
	clusterRes *madeResource // nil when the flavor cannot use the cluster (gRPC and ORIGINAL_DST)
	claRes     *madeResource // nil when the cluster has no assignment
}

// routesKey identifies the routes of one service port's virtual host: the
// VirtualService (nil: the default route), the host and port, what route
// generation reads of other services (model.Epochs.Hosts), and the hash
// policies of the destinations, which depend on the client's
// DestinationRules only when some rule hashes consistently.
type routesKey struct {
	flavor flavor
	vs     *config.Object
	host   string
	port   uint32
	hosts  uint64
	hashNS string
	rules  uint64
}

type routesItem struct {
	routes   []*route.Route
	problems []string
	errs     []error // the routes' own checks, made once
}
