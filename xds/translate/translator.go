package translate

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/resource"
)

// flavor is the kind of proxy a generation is for: what it shares with
// proxies of the same flavor, namespace and Sidecar is generated once.
type flavor int

const (
	flavorLocal    flavor = iota // sidecar reached through HTTP_PROXY (`weft run`)
	flavorCaptured               // sidecar whose traffic the capture rules redirect (pods)
	flavorRouter                 // gateway
	flavorGRPC                   // proxyless gRPC application
)

func flavorOf(p *node.Meta) flavor {
	switch {
	case p.Type == node.Router:
		return flavorRouter
	case p.GRPC():
		return flavorGRPC
	case p.Captured():
		return flavorCaptured
	}
	return flavorLocal
}

// Translator generates the resources of many proxies from a succession of
// snapshots, generating what they share once: per snapshot, one bundle of
// outbound clusters, assignments, route tables (and a captured sidecar's
// outbound listeners) per flavor, namespace and Sidecar; across snapshots,
// each cluster, assignment and virtual host's routes for as long as what
// they are made of is unchanged. Only a proxy's own listeners (its
// inbound side, a gateway's servers) are generated per proxy, and reused
// from its previous Output while their inputs are unchanged. Safe for
// concurrent use.
type Translator struct {
	opts  Options
	items *itemCache

	mu       sync.Mutex
	snap     *model.Snapshot
	down     uint64 // Options.DownEpoch when snap's bundles were begun
	bundles  map[bundleKey]*bundleSlot
	prevSnap *model.Snapshot
	prevDown uint64
	last     map[bundleKey]*bundle // bundles of prevSnap, for reuse
}

type bundleKey struct {
	flavor  flavor
	ns      string
	sidecar *config.Object
}

type bundleSlot struct {
	once sync.Once
	b    *bundle
}

// bundle is what every proxy of one bundleKey gets alike.
type bundle struct {
	key                                    bundleKey
	cparts                                 *clustersPart
	rparts                                 *routesPart
	clusters, endpoints, listeners, routes *resource.Set
	hashes                                 map[string]*route.RouteAction_HashPolicy
	hosts                                  map[string]bool   // services with clusters here
	addrs                                  map[string]string // listener address -> name
	rds                                    []routeRef        // route tables the listeners ask for
	errs                                   []error
	registryOnly                           bool
}

// NewTranslator returns a Translator with options o.
func NewTranslator(o Options) *Translator {
	if o.TrustDomain == "" {
		o.TrustDomain = ca.DefaultTrustDomain
	}
	return &Translator{opts: o, items: newItemCache(), bundles: map[bundleKey]*bundleSlot{}}
}

// Output is everything one proxy should have, as shared, encoded sets.
type Output struct {
	Clusters, Endpoints, Listeners, Routes *resource.Set
	// Revision is the model revision the output was generated from.
	Revision int64

	bundle  *bundle
	own     *ownPart
	ownRefs []error // the own part's references into the bundle
}

// ownPart is what was generated for the proxy alone, and from what.
type ownPart struct {
	key       ownKey
	listeners []*resource.Resource
	clusters  []*resource.Resource
	routes    []*resource.Resource
	rds       []routeRef
	addrs     [][2]string // listener, address
	eds       [][2]string // cluster, assignment
	errs      []error
}

// routeRef is a listener's RDS reference to a route table.
type routeRef struct{ listener, routes string }

func routeRefs(ls map[string]*listener.Listener) []routeRef {
	var out []routeRef
	for _, n := range sortedKeys(ls) {
		for _, rds := range rdsNames(ls[n]) {
			out = append(out, routeRef{n, rds})
		}
	}
	return out
}

// ownKey is what a sidecar's own resources are made of besides its
// metadata: the policies selecting it, the services it serves (found by
// its addresses), and the services' shapes.
type ownKey struct {
	meta     *node.Meta
	epochs   model.Epochs // only the fields the flavor reads
	services []*model.Service
}

// ByType returns the set of one type URL, or nil for an unknown type.
func (o *Output) ByType(typeURL string) *resource.Set {
	switch typeURL {
	case ClusterType:
		return o.Clusters
	case EndpointType:
		return o.Endpoints
	case ListenerType:
		return o.Listeners
	case RouteType:
		return o.Routes
	}
	return nil
}

// Validate reports every problem of the output, as Resources.Validate
// does; the shared part's are found once per bundle. The listeners' route
// tables are looked up in the output's Routes as they are now.
func (o *Output) Validate() error {
	errs := append(append(append([]error(nil), o.bundle.errs...), o.own.errs...), o.ownRefs...)
	for _, refs := range [][]routeRef{o.bundle.rds, o.own.rds} {
		for _, ref := range refs {
			if !o.Routes.Has(ref.routes) {
				errs = append(errs, missingRoutes(ref.listener, ref.routes))
			}
		}
	}
	return errors.Join(errs...)
}

// WatchesHost reports whether the proxy has the clusters of service host,
// so a change to its endpoints concerns it.
func (o *Output) WatchesHost(host string) bool { return o.bundle.hosts[host] }

// Resources returns the output as messages keyed by name: the proxy's
// view for tests and tools, copies the caller may change (the generated
// messages are shared by every proxy and snapshot that uses them).
func (o *Output) Resources() *Resources {
	r := newResources()
	r.Revision = o.Revision
	o.Clusters.Range(func(x *resource.Resource) bool { r.Clusters[x.Name] = clone(x).(*cluster.Cluster); return true })
	o.Endpoints.Range(func(x *resource.Resource) bool {
		r.Endpoints[x.Name] = clone(x).(*endpoint.ClusterLoadAssignment)
		return true
	})
	o.Listeners.Range(func(x *resource.Resource) bool { r.Listeners[x.Name] = clone(x).(*listener.Listener); return true })
	o.Routes.Range(func(x *resource.Resource) bool { r.Routes[x.Name] = clone(x).(*route.RouteConfiguration); return true })
	for _, err := range append(append(append([]error(nil), o.bundle.errs...), o.own.errs...), o.ownRefs...) {
		r.problems = append(r.problems, err.Error())
	}
	return r
}

// Generate returns proxy p's output for snapshot s. prev, the proxy's
// previous output (or nil), lets its own part be reused when unchanged.
func (t *Translator) Generate(s *model.Snapshot, p *node.Meta, prev *Output) *Output {
	f := flavorOf(p)
	var scope *model.Scope
	if f == flavorRouter {
		scope = s.DefaultScope(p.Namespace)
	} else {
		scope = s.ScopeFor(p.Namespace, p.Labels)
	}
	b := t.bundle(s, bundleKey{flavor: f, ns: p.Namespace, sidecar: scope.Sidecar}, scope)
	own := t.own(s, p, b, scope, prev)
	out := &Output{Revision: s.Revision, bundle: b, own: own, ownRefs: ownRefErrors(own, b)}
	out.Clusters = resource.Layer(b.clusters, own.clusters)
	out.Endpoints = b.endpoints
	out.Listeners = resource.Layer(b.listeners, own.listeners)
	out.Routes = resource.Layer(b.routes, own.routes)
	if f == flavorLocal && p.Outbound == "" {
		// No outbound listener asks for the outbound route table.
		out.Routes = resource.Layer(resource.Empty, own.routes)
	}
	return out
}

// bundle returns the shared part for key in snapshot s, generating it on
// first use.
func (t *Translator) bundle(s *model.Snapshot, key bundleKey, scope *model.Scope) *bundle {
	down := t.downEpoch()
	t.mu.Lock()
	var slot *bundleSlot
	var last *bundle
	switch {
	case s == t.snap && down == t.down:
		slot = t.bundles[key]
		if slot == nil {
			slot = &bundleSlot{}
			t.bundles[key] = slot
		}
		last = t.last[key]
	case s == t.prevSnap && down == t.prevDown:
		// A proxy still on the snapshot before the current one: serve it
		// what was built then, or build without sharing.
		last = t.last[key]
		t.mu.Unlock()
		if last != nil {
			return last
		}
		return t.buildBundle(s, down, key, scope, nil)
	default:
		t.advance(s, down)
		slot = &bundleSlot{}
		t.bundles[key] = slot
		last = t.last[key]
	}
	t.mu.Unlock()
	slot.once.Do(func() { slot.b = t.buildBundle(s, down, key, scope, last) })
	return slot.b
}

// downEpoch is Options.DownEpoch's, 0 without one.
func (t *Translator) downEpoch() uint64 {
	if t.opts.DownEpoch == nil {
		return 0
	}
	return t.opts.DownEpoch()
}

// advance makes s, with proxy health at epoch down, the current
// generation. Callers hold t.mu.
func (t *Translator) advance(s *model.Snapshot, down uint64) {
	built := map[bundleKey]*bundle{}
	for k, slot := range t.bundles {
		if slot.b != nil {
			built[k] = slot.b
		}
	}
	// Keep bundles of keys the last snapshot did not use, for a while.
	for k, b := range t.last {
		if _, ok := built[k]; !ok && t.snap != nil {
			built[k] = b
		}
	}
	t.prevSnap, t.prevDown, t.last = t.snap, t.down, built
	t.snap, t.down, t.bundles = s, down, map[bundleKey]*bundleSlot{}
	t.items.rotate()
}

// newGenerator returns a generator for p reading s within scope.
func (t *Translator) newGenerator(s *model.Snapshot, p *node.Meta, scope *model.Scope) *generator {
	return &generator{s: s, p: p, r: newResources(), opts: t.opts, hashes: map[string]*route.RouteAction_HashPolicy{},
		items: t.items, scope: scope, made: map[proto.Message]*madeResource{}}
}

// splitHostPort is net.SplitHostPort for node addresses.
func splitHostPort(hostport string) (host, port string, err error) {
	return net.SplitHostPort(hostport)
}

// own generates (or reuses from prev) what proxy p has alone.
func (t *Translator) own(s *model.Snapshot, p *node.Meta, b *bundle, scope *model.Scope, prev *Output) *ownPart {
	key, cacheable := ownKeyOf(s, p)
	if cacheable && prev != nil && prev.own != nil && prev.own.key.equal(key) {
		return prev.own
	}
	g := t.newGenerator(s, p, scope)
	g.hashes = b.hashes
	switch flavorOf(p) {
	case flavorLocal:
		g.localSidecar()
	case flavorCaptured:
		g.capturedOwn()
	case flavorRouter:
		g.gateway()
	case flavorGRPC:
		// Everything a gRPC application gets is shared.
	}
	g.headerLimits()
	own := &ownPart{key: key}
	own.listeners = g.set(g.r.Listeners, nil).Items()
	own.clusters = g.set(g.r.Clusters, nil).Items()
	own.routes = g.set(g.r.Routes, nil).Items()
	for n := range g.r.Endpoints {
		g.r.problem("node %s: own assignment %q is not supported", p.ID(), n)
	}
	own.errs = append(g.errs(), g.listenerRefErrors(map[string]string{}, nil)...)
	for _, n := range sortedKeys(g.r.Listeners) {
		if a := listenerAddress(g.r.Listeners[n]); a != "" {
			own.addrs = append(own.addrs, [2]string{n, a})
		}
	}
	for _, n := range sortedKeys(g.r.Clusters) {
		if svc, ok := edsName(g.r.Clusters[n]); ok {
			own.eds = append(own.eds, [2]string{n, svc})
		}
	}
	own.rds = routeRefs(g.r.Listeners)
	return own
}

// ownRefErrors checks a proxy's own part against its bundle: its
// listeners' addresses must be free, its EDS clusters' assignments there.
func ownRefErrors(own *ownPart, b *bundle) []error {
	var errs []error
	for _, a := range own.addrs {
		if other, dup := b.addrs[a[1]]; dup && other != a[0] {
			errs = append(errs, fmt.Errorf("listener %q: address %s already used by listener %q", a[0], a[1], other))
		}
	}
	for _, e := range own.eds {
		if !b.endpoints.Has(e[1]) {
			errs = append(errs, missingAssignment(e[0], e[1]))
		}
	}
	return errs
}

// ownKeyOf returns what a sidecar's own part depends on; gateways depend
// on most of the configuration and are few, so they are not cached.
func ownKeyOf(s *model.Snapshot, p *node.Meta) (ownKey, bool) {
	if p.Type != node.Sidecar {
		return ownKey{}, false
	}
	e := s.Epochs()
	key := ownKey{meta: p, epochs: model.Epochs{Hosts: e.Hosts, PeerAuth: e.PeerAuth, Security: e.Security}}
	addrs := []string{p.IP}
	if host, _, err := splitHostPort(p.Inbound); err == nil && host != p.IP {
		addrs = append(addrs, host)
	}
	for _, a := range addrs {
		key.services = append(key.services, s.ServicesAt(a)...)
	}
	return key, true
}

func (k ownKey) equal(o ownKey) bool {
	return k.meta == o.meta && k.epochs == o.epochs && slices.Equal(k.services, o.services)
}

// madeResource is a resource made once, with the problems its own checks
// found.
type madeResource struct {
	res  *resource.Resource
	errs []error
	keep [][]*route.Route // what a recipe key names by address (sharedRouteTable)
}

// resourceOf returns msg encoded as a resource and checked on its own,
// once per message: a message from an item cache carries the resource
// made with it (see cachedResource).
func (g *generator) resourceOf(name string, msg proto.Message) *madeResource {
	if m, ok := g.made[msg]; ok {
		return m
	}
	var m *madeResource
	switch rc, ok := msg.(*route.RouteConfiguration); {
	case ok && g.shared:
		m = g.sharedRouteTable(name, rc)
	case g.shared:
		m = compactResource(name, msg)
	default:
		m = makeResource(name, msg)
	}
	g.made[msg] = m
	return m
}

// makeResource encodes and checks msg.
func makeResource(name string, msg proto.Message) *madeResource {
	return encodeResource(name, msg, selfErrors(msg))
}

// compactResource is makeResource keeping the encoding only (see
// resource.Compact): for what bundles share.
func compactResource(name string, msg proto.Message) *madeResource {
	m := makeResource(name, msg)
	m.res = m.res.Compact()
	return m
}

// encodeResource encodes msg, whose own problems are errs.
func encodeResource(name string, msg proto.Message, errs []error) *madeResource {
	m := &madeResource{errs: errs}
	res, err := resource.New(name, msg)
	if err != nil {
		m.errs = append(m.errs, err)
		res = resource.Stub(name, "unencodable")
	}
	m.res = res
	return m
}

func selfErrors(msg proto.Message) []error {
	switch m := msg.(type) {
	case *listener.Listener:
		return listenerErrors(m)
	case *route.RouteConfiguration:
		return routeErrors(m)
	case *cluster.Cluster:
		return clusterErrors(m)
	case *endpoint.ClusterLoadAssignment:
		return assignmentErrors(m)
	}
	return []error{fmt.Errorf("unexpected resource %T", msg)}
}

// set turns generated messages into a set, giving back last when its
// contents are the same (so proxies compare sets by pointer, for free).
func (g *generator) set(msgs any, last *resource.Set) *resource.Set {
	var items []*resource.Resource
	add := func(name string, m proto.Message) {
		mr := g.resourceOf(name, m)
		items = append(items, mr.res)
		g.resErrs = append(g.resErrs, mr.errs...)
		if name != resourceName(m) {
			g.resErrs = append(g.resErrs, fmt.Errorf("%s %q: stored under key %q", kindName(m), resourceName(m), name))
		}
	}
	switch ms := msgs.(type) {
	case map[string]*cluster.Cluster:
		each(ms, add)
	case map[string]*endpoint.ClusterLoadAssignment:
		each(ms, add)
	case map[string]*listener.Listener:
		each(ms, add)
	case map[string]*route.RouteConfiguration:
		each(ms, add)
	}
	s := resource.NewSet(items)
	if last != nil && sameContents(last, s) {
		return last
	}
	return resource.Canonical(s)
}

func sameContents(a, b *resource.Set) bool {
	if a.Len() != b.Len() {
		return false
	}
	ai, bi := a.Items(), b.Items()
	for i := range ai {
		if ai[i] != bi[i] && (ai[i].Name != bi[i].Name || ai[i].Version != bi[i].Version) {
			return false
		}
	}
	return true
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
	}
	return ""
}

func kindName(m proto.Message) string {
	switch m.(type) {
	case *cluster.Cluster:
		return "cluster"
	case *endpoint.ClusterLoadAssignment:
		return "cluster load assignment"
	case *listener.Listener:
		return "listener"
	case *route.RouteConfiguration:
		return "route configuration"
	}
	return "resource"
}

// errs returns the problems generation met and the resources' own
// checks found, in a stable order.
func (g *generator) errs() []error {
	var out []error
	for _, p := range g.r.problems {
		out = append(out, errors.New(p))
	}
	sort.SliceStable(g.resErrs, func(i, j int) bool { return g.resErrs[i].Error() < g.resErrs[j].Error() })
	return append(out, g.resErrs...)
}

// clusterRefErrors checks what Envoy would refuse between the clusters
// and assignments of a clusters part: an EDS cluster without its
// assignment, an assignment without its EDS cluster.
func clusterRefErrors(items []*clusterItem, fixed map[string]*cluster.Cluster, endpoints *resource.Set) []error {
	var errs []error
	eds := map[string]bool{}
	for _, it := range items {
		if it.clusterRes == nil {
			continue
		}
		if it.eds != "" {
			eds[it.name] = true
			if !endpoints.Has(it.eds) {
				errs = append(errs, missingAssignment(it.name, it.eds))
			}
		}
	}
	for _, n := range sortedKeys(fixed) {
		if svc, ok := edsName(fixed[n]); ok {
			eds[n] = true
			if !endpoints.Has(svc) {
				errs = append(errs, missingAssignment(n, svc))
			}
		}
	}
	endpoints.Range(func(r *resource.Resource) bool {
		if !eds[r.Name] {
			errs = append(errs, orphanAssignment(r.Name))
		}
		return true
	})
	return errs
}

// listenerRefErrors checks that the generated listeners' addresses are
// unique, recording them in addrs; with shared (a bundle's listener
// addresses), a proxy's own listeners must not take one of those either.
func (g *generator) listenerRefErrors(addrs, shared map[string]string) []error {
	var errs []error
	for _, n := range sortedKeys(g.r.Listeners) {
		a := listenerAddress(g.r.Listeners[n])
		if a == "" {
			continue
		}
		other, dup := addrs[a]
		if !dup {
			other, dup = shared[a]
		}
		if dup && other != n {
			errs = append(errs, fmt.Errorf("listener %q: address %s already used by listener %q", n, a, other))
			continue
		}
		addrs[a] = n
	}
	return errs
}

func clone(r *resource.Resource) proto.Message { return proto.Clone(r.Message()) }

func each[M proto.Message](ms map[string]M, f func(string, proto.Message)) {
	for n, m := range ms {
		f(n, m)
	}
}
