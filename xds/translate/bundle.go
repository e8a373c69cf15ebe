package translate

import (
	"errors"
	"slices"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/resource"
)

// A bundle is built from two parts that change for different reasons:
// the clusters part (clusters, assignments, the hash policies routes
// carry) changes with services, endpoints, DestinationRules and
// PeerAuthentications; the routes part (route tables and, for captured
// sidecars, the outbound listeners) with services' shapes and
// VirtualServices. A new snapshot reuses the previous bundle's part whose
// inputs are unchanged, and patches the clusters part when only some
// services' endpoints changed, so an endpoint change does not look at the
// routes and a weight change does not look at the clusters.

// clustersPart is the clusters half of a bundle.
type clustersPart struct {
	epochs    model.Epochs     // the inputs' epochs (the fields it reads)
	down      uint64           // Options.DownEpoch it was made at
	services  []*model.Service // visible, by hostname
	rules     []*config.Object // the DestinationRule of each service, or nil
	perSvc    []svcPart        // what each service contributed
	clusters  *resource.Set
	endpoints *resource.Set
	hashes    map[string]*route.RouteAction_HashPolicy
	// fixed are the problems of the clusters of no service (a captured
	// sidecar's passthrough and black hole), refs those of references.
	fixed, refs []error
}

// errs returns every problem of the part.
func (cp *clustersPart) errs() []error {
	var out []error
	for _, p := range cp.perSvc {
		out = append(out, p.errs...)
	}
	return append(append(out, cp.fixed...), cp.refs...)
}

// svcPart is one service's clusters and assignments.
type svcPart struct {
	items               []*clusterItem
	clusters, endpoints []*resource.Resource
	errs                []error
}

// routesPart is the routes half of a bundle.
type routesPart struct {
	epochs    model.Epochs
	routes    *resource.Set
	listeners *resource.Set
	rds       []routeRef
	addrs     map[string]string
	errs      []error
}

func clusterEpochs(s *model.Snapshot) model.Epochs {
	e := s.Epochs()
	return model.Epochs{Hosts: e.Hosts, Rules: e.Rules, PeerAuth: e.PeerAuth, Scopes: e.Scopes}
}

func routeEpochs(s *model.Snapshot) model.Epochs {
	e := s.Epochs()
	out := model.Epochs{Hosts: e.Hosts, Routes: e.Routes, Scopes: e.Scopes}
	if s.HashesConsistently() {
		out.Rules = e.Rules // routes carry the rules' hash policies
	}
	return out
}

// buildBundle generates the shared part. last, the same key's bundle of
// an earlier snapshot, gives back what did not change.
func (t *Translator) buildBundle(s *model.Snapshot, down uint64, key bundleKey, scope *model.Scope, last *bundle) *bundle {
	rep := &node.Meta{Type: node.Sidecar, Namespace: key.ns}
	switch key.flavor {
	case flavorRouter:
		rep.Type = node.Router
	case flavorCaptured:
		rep.Interception = node.InterceptRedirect
	case flavorGRPC:
		rep.Generator = node.GeneratorGRPC
	}
	var lastC *clustersPart
	var lastR *routesPart
	if last != nil {
		lastC, lastR = last.cparts, last.rparts
	}
	cp := t.clustersPart(s, down, rep, scope, lastC)
	rp := t.routesPart(s, rep, scope, cp, lastR)
	b := &bundle{key: key, cparts: cp, rparts: rp, hosts: map[string]bool{}, registryOnly: scope.RegistryOnly(),
		clusters: cp.clusters, endpoints: cp.endpoints, listeners: rp.listeners, routes: rp.routes,
		addrs: rp.addrs, rds: rp.rds, hashes: cp.hashes}
	for _, svc := range cp.services {
		b.hosts[svc.Hostname] = true
	}
	b.errs = append(cp.errs(), rp.errs...)
	return b
}

// clustersPart returns the clusters half for scope, from last when its
// inputs are unchanged, patched when only some services' endpoints are.
func (t *Translator) clustersPart(s *model.Snapshot, down uint64, rep *node.Meta, scope *model.Scope, last *clustersPart) *clustersPart {
	cp := &clustersPart{epochs: clusterEpochs(s), down: down, services: s.VisibleServices(scope)}
	cp.rules = make([]*config.Object, len(cp.services))
	for i, svc := range cp.services {
		cp.rules[i] = s.DestinationRule(rep.Namespace, svc.Hostname)
	}
	// Proxy health marks endpoints: when it changed, the assignments are
	// made again (from the item cache, which knows which changed).
	if last != nil && last.epochs == cp.epochs && last.down == cp.down && slices.Equal(last.rules, cp.rules) && len(last.services) == len(cp.services) {
		if slices.Equal(last.services, cp.services) {
			return last
		}
		if p := t.patchClusters(s, rep, scope, cp, last); p != nil {
			return p
		}
	}
	g := t.newGenerator(s, rep, scope)
	g.shared = true
	cp.perSvc = make([]svcPart, len(cp.services))
	var clusters, endpoints []*resource.Resource
	var items []*clusterItem
	for i, svc := range cp.services {
		p := t.serviceClusters(g, svc, cp.rules[i])
		cp.perSvc[i] = p
		clusters, endpoints, items = append(clusters, p.clusters...), append(endpoints, p.endpoints...), append(items, p.items...)
	}
	var fixed map[string]*cluster.Cluster
	if rep.Captured() {
		f := t.newGenerator(s, rep, scope)
		f.capturedClusters()
		for _, n := range sortedKeys(f.r.Clusters) {
			m := compactResource(n, f.r.Clusters[n])
			clusters = append(clusters, m.res)
			cp.fixed = append(cp.fixed, m.errs...)
		}
		fixed = f.r.Clusters
	}
	cp.hashes = g.hashes
	cp.clusters = reuse(resource.NewSet(clusters), setOrNil(last, true))
	cp.endpoints = reuse(resource.NewSet(endpoints), setOrNil(last, false))
	cp.refs = clusterRefErrors(items, fixed, cp.endpoints)
	return cp
}

// reuse gives back last when s holds the same resources, else the
// canonical set of s's contents.
func reuse(s, last *resource.Set) *resource.Set {
	if last != nil && sameContents(last, s) {
		return last
	}
	return resource.Canonical(s)
}

func setOrNil(last *clustersPart, clusters bool) *resource.Set {
	switch {
	case last == nil:
		return nil
	case clusters:
		return last.clusters
	}
	return last.endpoints
}

// serviceClusters generates (or takes from the item cache) one
// service's clusters, adding their hash policies to g's.
func (t *Translator) serviceClusters(g *generator, svc *model.Service, dr *config.Object) svcPart {
	one := t.newGenerator(g.s, g.p, g.scope)
	one.serviceClusters(svc, dr)
	part := svcPart{items: one.clusterItems}
	for _, it := range one.clusterItems {
		for _, p := range it.problems {
			part.errs = append(part.errs, errors.New(p))
		}
		if it.clusterRes == nil {
			continue
		}
		part.clusters = append(part.clusters, it.clusterRes.res)
		part.errs = append(part.errs, it.clusterRes.errs...)
		if it.claRes != nil {
			part.endpoints = append(part.endpoints, it.claRes.res)
			part.errs = append(part.errs, it.claRes.errs...)
		}
	}
	for n, h := range one.hashes {
		g.hashes[n] = h
	}
	return part
}

// patchClusters makes the clusters half from last when the same services
// are visible and only some of them changed (endpoints): their clusters
// and assignments are regenerated and put in place of the old ones. nil
// when the names would change.
func (t *Translator) patchClusters(s *model.Snapshot, rep *node.Meta, scope *model.Scope, cp, last *clustersPart) *clustersPart {
	cp.perSvc = append([]svcPart(nil), last.perSvc...)
	cp.hashes = last.hashes
	clusters := last.clusters.Items()
	endpoints := last.endpoints.Items()
	g := t.newGenerator(s, rep, scope)
	for i, svc := range cp.services {
		if svc == last.services[i] {
			continue
		}
		if svc.Hostname != last.services[i].Hostname {
			return nil
		}
		old, part := last.perSvc[i], t.serviceClusters(g, svc, cp.rules[i])
		if !replaceAll(clusters, old.clusters, part.clusters) || !replaceAll(endpoints, old.endpoints, part.endpoints) {
			return nil
		}
		cp.perSvc[i] = part
	}
	// Same names, so the same references: the last part's findings stand.
	cp.clusters, cp.endpoints = resource.Canonical(resource.NewSet(clusters)), resource.Canonical(resource.NewSet(endpoints))
	cp.fixed, cp.refs = last.fixed, last.refs
	return cp
}

// replaceAll puts each of repl in place of the resource of the same name
// in items (sorted by name), which must hold one for every old one and
// only those: a patch never changes names.
func replaceAll(items, old, repl []*resource.Resource) bool {
	if len(old) != len(repl) {
		return false
	}
	for i, r := range repl {
		if old[i].Name != r.Name {
			return false
		}
		j, ok := slices.BinarySearchFunc(items, r.Name, func(x *resource.Resource, n string) int {
			switch {
			case x.Name < n:
				return -1
			case x.Name > n:
				return 1
			}
			return 0
		})
		if !ok {
			return false
		}
		items[j] = r
	}
	return true
}

// routesPart returns the routes half for scope, from last when its inputs
// are unchanged.
func (t *Translator) routesPart(s *model.Snapshot, rep *node.Meta, scope *model.Scope, cp *clustersPart, last *routesPart) *routesPart {
	rp := &routesPart{epochs: routeEpochs(s), addrs: map[string]string{}}
	if last != nil && last.epochs == rp.epochs {
		return last
	}
	g := t.newGenerator(s, rep, scope)
	g.shared = true
	g.hashes = cp.hashes
	switch {
	case rep.Type == node.Router:
	case rep.GRPC():
		g.grpcListeners()
	case rep.Captured():
		g.capturedShared()
	default:
		g.r.Routes[OutboundRoute] = g.outboundRoutes()
	}
	var lastRoutes, lastListeners *resource.Set
	if last != nil {
		lastRoutes, lastListeners = last.routes, last.listeners
	}
	g.headerLimits()
	rp.routes = g.set(g.r.Routes, lastRoutes)
	rp.listeners = g.set(g.r.Listeners, lastListeners)
	rp.errs = append(g.errs(), g.listenerRefErrors(rp.addrs, nil)...)
	rp.rds = routeRefs(g.r.Listeners)
	return rp
}
