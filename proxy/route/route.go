// Package route compiles Envoy v3 RouteConfiguration resources into immutable
// route tables and matches HTTP requests against them: virtual host selection
// by authority, then the first route of that virtual host whose conditions all
// hold. See README.md for the supported syntax and its behaviour.
package route

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Table is a compiled RouteConfiguration. It is immutable and safe for
// concurrent use.
type Table struct {
	// Name is the RouteConfiguration's name.
	Name string
	// VirtualHosts in configuration order.
	VirtualHosts []*VirtualHost

	exact  map[string]*VirtualHost
	suffix []wildGroup // "*.foo.com": longest suffix first
	prefix []wildGroup // "foo.*": longest prefix first
	any    *VirtualHost
}

// wildGroup holds the wildcard domains whose fixed part has length n.
type wildGroup struct {
	n int
	m map[string]*VirtualHost
}

// VirtualHost is a compiled virtual host.
type VirtualHost struct {
	// Name is the virtual host's name, e.g. "catalog.default.svc.cluster.local:8080".
	Name string
	// Domains as configured.
	Domains []string
	// Routes in match order: the first match wins.
	Routes []*Route
}

// Route is a compiled route: match conditions and a cluster action.
type Route struct {
	// Name is the route's name (may be empty).
	Name string
	// VirtualHost is the name of the virtual host holding the route.
	VirtualHost string
	// Timeout bounds the whole upstream exchange; 0 means no timeout.
	Timeout time.Duration

	match    matcher
	cluster  string            // single-cluster action
	weighted []WeightedCluster // weighted_clusters action
	total    uint64            // sum of weighted weights
}

// WeightedCluster is one target of a weighted_clusters action.
type WeightedCluster struct {
	Name   string
	Weight uint32
}

// Compile validates rc and builds its Table. Errors name the route
// configuration and the offending field path.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) {
	t, err := compileTable(rc)
	if err != nil {
		return nil, fmt.Errorf("route config %q: %w", rc.GetName(), err)
	}
	return t, nil
}

func compileTable(rc *routev3.RouteConfiguration) (*Table, error) {
	if err := checkFields(rc, "name", "virtual_hosts", "validate_clusters"); err != nil {
		return nil, err
	}
	t := &Table{Name: rc.GetName(), exact: map[string]*VirtualHost{}}
	suffix := map[int]map[string]*VirtualHost{}
	prefix := map[int]map[string]*VirtualHost{}
	seen := map[string]bool{}
	for i, v := range rc.GetVirtualHosts() {
		vh, err := compileVirtualHost(v)
		if err != nil {
			return nil, fmt.Errorf("virtual_hosts[%d] (%s).%w", i, v.GetName(), err)
		}
		t.VirtualHosts = append(t.VirtualHosts, vh)
		for j, d := range v.GetDomains() {
			field := fmt.Sprintf("virtual_hosts[%d] (%s).domains[%d]", i, v.GetName(), j)
			d = strings.ToLower(d)
			if seen[d] {
				return nil, fmt.Errorf("%s: duplicate domain %q", field, d)
			}
			seen[d] = true
			switch {
			case d == "":
				return nil, fmt.Errorf("%s: empty", field)
			case d == "*":
				t.any = vh
			case strings.Count(d, "*") > 1:
				return nil, fmt.Errorf("%s: %q has more than one wildcard", field, d)
			case strings.HasPrefix(d, "*"):
				addWild(suffix, d[1:], vh)
			case strings.HasSuffix(d, "*"):
				addWild(prefix, d[:len(d)-1], vh)
			case strings.Contains(d, "*"):
				return nil, fmt.Errorf("%s: %q: wildcard must be first or last", field, d)
			default:
				t.exact[d] = vh
			}
		}
	}
	t.suffix = sortWild(suffix)
	t.prefix = sortWild(prefix)
	return t, nil
}

func addWild(m map[int]map[string]*VirtualHost, fixed string, vh *VirtualHost) {
	if m[len(fixed)] == nil {
		m[len(fixed)] = map[string]*VirtualHost{}
	}
	m[len(fixed)][fixed] = vh
}

func sortWild(m map[int]map[string]*VirtualHost) []wildGroup {
	var out []wildGroup
	for n, g := range m {
		out = append(out, wildGroup{n: n, m: g})
	}
	slices.SortFunc(out, func(a, b wildGroup) int { return b.n - a.n })
	return out
}

func compileVirtualHost(v *routev3.VirtualHost) (*VirtualHost, error) {
	if err := checkFields(v, "name", "domains", "routes"); err != nil {
		return nil, err
	}
	if v.GetName() == "" {
		return nil, fmt.Errorf("name: empty")
	}
	if len(v.GetDomains()) == 0 {
		return nil, fmt.Errorf("domains: empty")
	}
	vh := &VirtualHost{Name: v.GetName(), Domains: v.GetDomains()}
	for i, r := range v.GetRoutes() {
		rt, err := compileRoute(r)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].%w", i, err)
		}
		rt.VirtualHost = vh.Name
		vh.Routes = append(vh.Routes, rt)
	}
	return vh, nil
}

func compileRoute(r *routev3.Route) (*Route, error) {
	if err := checkFields(r, "name", "match", "route", "metadata", "decorator"); err != nil {
		return nil, err
	}
	if r.GetMatch() == nil {
		return nil, fmt.Errorf("match: required")
	}
	m, err := compileMatch(r.GetMatch())
	if err != nil {
		return nil, fmt.Errorf("match.%w", err)
	}
	rt := &Route{Name: r.GetName(), match: m}
	a := r.GetRoute()
	if a == nil {
		return nil, fmt.Errorf("route: required")
	}
	if err := checkFields(a, "cluster", "weighted_clusters", "timeout"); err != nil {
		return nil, fmt.Errorf("route.%w", err)
	}
	if d := a.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, fmt.Errorf("route.timeout: invalid duration")
		}
		rt.Timeout = d.AsDuration()
	}
	switch {
	case a.GetCluster() != "":
		rt.cluster = a.GetCluster()
	case a.GetWeightedClusters() != nil:
		wc := a.GetWeightedClusters()
		if err := checkFields(wc, "clusters", "total_weight", "runtime_key_prefix"); err != nil {
			return nil, fmt.Errorf("route.weighted_clusters.%w", err)
		}
		for i, c := range wc.GetClusters() {
			if err := checkFields(c, "name", "weight"); err != nil {
				return nil, fmt.Errorf("route.weighted_clusters.clusters[%d].%w", i, err)
			}
			if c.GetName() == "" {
				return nil, fmt.Errorf("route.weighted_clusters.clusters[%d].name: empty", i)
			}
			w := c.GetWeight().GetValue()
			rt.weighted = append(rt.weighted, WeightedCluster{Name: c.GetName(), Weight: w})
			rt.total += uint64(w)
		}
		if rt.total == 0 {
			return nil, fmt.Errorf("route.weighted_clusters.clusters: weights must sum to more than 0")
		}
	default:
		return nil, fmt.Errorf("route.cluster: one of cluster or weighted_clusters required")
	}
	return rt, nil
}

// Route returns the first route matching r, whose authority is the given one,
// or nil when no virtual host or no route matches.
func (t *Table) Route(r *http.Request, authority string) *Route {
	vh := t.VirtualHost(authority)
	if vh == nil {
		return nil
	}
	return vh.Route(r, authority)
}

// VirtualHost selects the virtual host for authority, Envoy's way: exact
// domain, then suffix wildcards (longest first), then prefix wildcards
// (longest first). The authority is tried as given, then without its port;
// the "*" domain is the last resort.
func (t *Table) VirtualHost(authority string) *VirtualHost {
	host := lower(authority)
	if vh := t.lookup(host); vh != nil {
		return vh
	}
	if h, ok := stripPort(host); ok {
		if vh := t.lookup(h); vh != nil {
			return vh
		}
	}
	return t.any
}

func (t *Table) lookup(host string) *VirtualHost {
	if vh := t.exact[host]; vh != nil {
		return vh
	}
	for _, g := range t.suffix {
		if len(host) > g.n {
			if vh := g.m[host[len(host)-g.n:]]; vh != nil {
				return vh
			}
		}
	}
	for _, g := range t.prefix {
		if len(host) > g.n {
			if vh := g.m[host[:g.n]]; vh != nil {
				return vh
			}
		}
	}
	return nil
}

// Route returns the first route of vh matching r, or nil.
func (vh *VirtualHost) Route(r *http.Request, authority string) *Route {
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	mc := matchCtx{r: r, authority: authority, path: path}
	for _, rt := range vh.Routes {
		if rt.match.matches(&mc) {
			return rt
		}
	}
	return nil
}

// Cluster returns the cluster to send one request to: the route's cluster, or
// for weighted_clusters one picked at random in proportion to the weights.
func (rt *Route) Cluster() string {
	if rt.weighted == nil {
		return rt.cluster
	}
	return rt.clusterAt(rand.Uint64N(rt.total))
}

func (rt *Route) clusterAt(x uint64) string {
	for _, w := range rt.weighted {
		if x < uint64(w.Weight) {
			return w.Name
		}
		x -= uint64(w.Weight)
	}
	return rt.weighted[len(rt.weighted)-1].Name
}

// Clusters lists the route's targets: one with weight 1 for a single-cluster
// action, else the weighted clusters as configured.
func (rt *Route) Clusters() []WeightedCluster {
	if rt.weighted == nil {
		return []WeightedCluster{{Name: rt.cluster, Weight: 1}}
	}
	return slices.Clone(rt.weighted)
}

// lower returns s lower-cased, allocating only when s has upper-case letters.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// stripPort removes a trailing ":port" from host, handling "[v6]:port".
func stripPort(host string) (string, bool) {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.LastIndexByte(host, ']') > i {
		return host, false
	}
	if strings.IndexByte(host, ':') != i && !strings.HasPrefix(host, "[") {
		return host, false // bare IPv6 address, no port
	}
	return host[:i], true
}
