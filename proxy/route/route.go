// Package route compiles Envoy v3 RouteConfiguration resources into immutable
// route tables and matches HTTP requests against them: virtual host selection
// by authority, then the first route of that virtual host whose conditions all
// hold. See README.md for the supported syntax and its behaviour.
package route

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weft-mesh/weft/proxy/filter"
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

// Route is a compiled route: match conditions and an action (a cluster
// action, a redirect or a direct response), with its filters and header edits.
type Route struct {
	// Name is the route's name (may be empty).
	Name string
	// VirtualHost is the name of the virtual host holding the route.
	VirtualHost string
	// Timeout bounds the whole upstream exchange, all attempts included; 0
	// means no timeout.
	Timeout time.Duration
	// Retry is the retry policy; nil means no retries.
	Retry *RetryPolicy
	// Mirrors are the request mirror policies.
	Mirrors []MirrorPolicy
	// HostRewrite is host_rewrite_literal: the upstream authority.
	HostRewrite string
	// Redirect, when set, answers every request with a redirect.
	Redirect *Redirect
	// Direct, when set, answers every request locally.
	Direct *DirectResponse
	// Filters is the route's HTTP filter chain, from typed_per_filter_config.
	Filters filter.Chain

	match         matcher
	single        WeightedCluster   // single-cluster action
	weighted      []WeightedCluster // weighted_clusters action
	total         uint64            // sum of weighted weights
	prefixRewrite *string
	regexRewrite  *regexRewrite
	hash          []hashPolicy
	reqMut        mutations // route, virtual host, route configuration
	respMut       mutations
}

// WeightedCluster is one target of a route: the cluster of a single-cluster
// action, or one of a weighted_clusters action.
type WeightedCluster struct {
	Name   string
	Weight uint32
	// RequestHeaders and ResponseHeaders are the target's own header edits
	// (weighted clusters only), applied before the route's.
	RequestHeaders, ResponseHeaders *HeaderMutation
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
	if err := contract.CheckFields(rc, "name", "virtual_hosts", "validate_clusters", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"); err != nil {
		return nil, err
	}
	rcReq, err := compileMutation(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("request_%w", err)
	}
	rcResp, err := compileMutation(rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("response_%w", err)
	}
	t := &Table{Name: rc.GetName(), exact: map[string]*VirtualHost{}}
	suffix := map[int]map[string]*VirtualHost{}
	prefix := map[int]map[string]*VirtualHost{}
	seen := map[string]bool{}
	for i, v := range rc.GetVirtualHosts() {
		vh, err := compileVirtualHost(v, rcReq, rcResp)
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

func compileVirtualHost(v *routev3.VirtualHost, rcReq, rcResp *HeaderMutation) (*VirtualHost, error) {
	if err := contract.CheckFields(v, "name", "domains", "routes", "request_headers_to_add",
		"request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"); err != nil {
		return nil, err
	}
	vhReq, err := compileMutation(v.GetRequestHeadersToAdd(), v.GetRequestHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("request_%w", err)
	}
	vhResp, err := compileMutation(v.GetResponseHeadersToAdd(), v.GetResponseHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("response_%w", err)
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
		rt.reqMut = append(rt.reqMut, levels(vhReq, rcReq)...)
		rt.respMut = append(rt.respMut, levels(vhResp, rcResp)...)
		vh.Routes = append(vh.Routes, rt)
	}
	return vh, nil
}

func compileRoute(r *routev3.Route) (*Route, error) {
	if err := contract.CheckFields(r, "name", "match", "route", "redirect", "direct_response", "metadata", "decorator",
		"typed_per_filter_config", "request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove"); err != nil {
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
	req, err := compileMutation(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("request_%w", err)
	}
	resp, err := compileMutation(r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("response_%w", err)
	}
	rt.reqMut, rt.respMut = levels(req), levels(resp)
	if rt.Filters, err = filter.Build(r.GetTypedPerFilterConfig()); err != nil {
		return nil, fmt.Errorf("typed_per_filter_config%w", err)
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		if err := compileAction(rt, a.Route); err != nil {
			return nil, fmt.Errorf("route.%w", err)
		}
	case *routev3.Route_Redirect:
		if rt.Redirect, err = compileRedirect(a.Redirect, &rt.match); err != nil {
			return nil, fmt.Errorf("redirect.%w", err)
		}
	case *routev3.Route_DirectResponse:
		d := a.DirectResponse
		if err := contract.CheckFields(d, "status", "body"); err != nil {
			return nil, fmt.Errorf("direct_response.%w", err)
		}
		if d.GetStatus() < 200 || d.GetStatus() >= 600 {
			return nil, fmt.Errorf("direct_response.status: %d not in [200, 600)", d.GetStatus())
		}
		rt.Direct = &DirectResponse{Status: int(d.GetStatus())}
		if b := d.GetBody(); b != nil {
			if err := contract.CheckFields(b, "inline_string", "inline_bytes"); err != nil {
				return nil, fmt.Errorf("direct_response.body.%w", err)
			}
			rt.Direct.Body = b.GetInlineString()
			if len(b.GetInlineBytes()) > 0 {
				rt.Direct.Body = string(b.GetInlineBytes())
			}
		}
	default:
		return nil, fmt.Errorf("action: one of route, redirect, direct_response required")
	}
	return rt, nil
}

func compileAction(rt *Route, a *routev3.RouteAction) error {
	if err := contract.CheckFields(a, "cluster", "weighted_clusters", "timeout", "retry_policy", "request_mirror_policies",
		"prefix_rewrite", "regex_rewrite", "host_rewrite_literal", "hash_policy"); err != nil {
		return err
	}
	if d := a.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return fmt.Errorf("timeout: invalid duration")
		}
		rt.Timeout = d.AsDuration()
	}
	switch {
	case a.GetCluster() != "":
		rt.single = WeightedCluster{Name: a.GetCluster(), Weight: 1}
	case a.GetWeightedClusters() != nil:
		wc := a.GetWeightedClusters()
		if err := contract.CheckFields(wc, "clusters", "total_weight", "runtime_key_prefix"); err != nil {
			return fmt.Errorf("weighted_clusters.%w", err)
		}
		for i, c := range wc.GetClusters() {
			if err := contract.CheckFields(c, "name", "weight", "request_headers_to_add", "request_headers_to_remove",
				"response_headers_to_add", "response_headers_to_remove"); err != nil {
				return fmt.Errorf("weighted_clusters.clusters[%d].%w", i, err)
			}
			if c.GetName() == "" {
				return fmt.Errorf("weighted_clusters.clusters[%d].name: empty", i)
			}
			req, err := compileMutation(c.GetRequestHeadersToAdd(), c.GetRequestHeadersToRemove())
			if err != nil {
				return fmt.Errorf("weighted_clusters.clusters[%d].request_%w", i, err)
			}
			resp, err := compileMutation(c.GetResponseHeadersToAdd(), c.GetResponseHeadersToRemove())
			if err != nil {
				return fmt.Errorf("weighted_clusters.clusters[%d].response_%w", i, err)
			}
			w := c.GetWeight().GetValue()
			rt.weighted = append(rt.weighted, WeightedCluster{Name: c.GetName(), Weight: w, RequestHeaders: req, ResponseHeaders: resp})
			rt.total += uint64(w)
		}
		if rt.total == 0 {
			return fmt.Errorf("weighted_clusters.clusters: weights must sum to more than 0")
		}
	default:
		return fmt.Errorf("cluster: one of cluster or weighted_clusters required")
	}
	if p := a.GetRetryPolicy(); p != nil {
		rp, err := compileRetryPolicy(p)
		if err != nil {
			return fmt.Errorf("retry_policy.%w", err)
		}
		rt.Retry = rp
	}
	for i, mp := range a.GetRequestMirrorPolicies() {
		m, err := compileMirror(mp)
		if err != nil {
			return fmt.Errorf("request_mirror_policies[%d].%w", i, err)
		}
		rt.Mirrors = append(rt.Mirrors, m)
	}
	if a.GetPrefixRewrite() != "" {
		if a.GetRegexRewrite() != nil {
			return fmt.Errorf("prefix_rewrite: exclusive with regex_rewrite")
		}
		if !validValue(a.GetPrefixRewrite()) {
			return fmt.Errorf("prefix_rewrite: invalid %q", a.GetPrefixRewrite())
		}
		pr := a.GetPrefixRewrite()
		rt.prefixRewrite = &pr
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		c, err := compileRegexRewrite(rr)
		if err != nil {
			return fmt.Errorf("regex_rewrite.%w", err)
		}
		rt.regexRewrite = c
	}
	if h := a.GetHostRewriteLiteral(); h != "" {
		if strings.ContainsAny(h, "/?# \t\r\n") || !validValue(h) {
			return fmt.Errorf("host_rewrite_literal: invalid host %q", h)
		}
		rt.HostRewrite = h
	}
	for i, hp := range a.GetHashPolicy() {
		p, err := compileHashPolicy(hp)
		if err != nil {
			return fmt.Errorf("hash_policy[%d].%w", i, err)
		}
		rt.hash = append(rt.hash, p)
	}
	return nil
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
	mc := matchCtx{r: r, ph: filter.PseudoHeaders{Authority: authority, Path: path, Query: r.URL.RawQuery}}
	for _, rt := range vh.Routes {
		if rt.match.matches(&mc) {
			return rt
		}
	}
	return nil
}

// Cluster returns the cluster to send one request to: the route's cluster, or
// for weighted_clusters one picked at random in proportion to the weights.
// It is "" for redirect and direct-response routes.
func (rt *Route) Cluster() string { return rt.Target().Name }

// Target picks the target of one request: the route's cluster, or for
// weighted_clusters one drawn at random in proportion to the weights. The
// result is shared and must not be modified.
func (rt *Route) Target() *WeightedCluster {
	if rt.weighted == nil {
		return &rt.single
	}
	return rt.targetAt(rand.Uint64N(rt.total))
}

func (rt *Route) clusterAt(x uint64) string { return rt.targetAt(x).Name }

func (rt *Route) targetAt(x uint64) *WeightedCluster {
	for i := range rt.weighted {
		w := &rt.weighted[i]
		if x < uint64(w.Weight) {
			return w
		}
		x -= uint64(w.Weight)
	}
	return &rt.weighted[len(rt.weighted)-1]
}

// Clusters lists the route's targets: one with weight 1 for a single-cluster
// action, else the weighted clusters as configured. Empty for redirect and
// direct-response routes.
func (rt *Route) Clusters() []WeightedCluster {
	if rt.weighted == nil {
		if rt.single.Name == "" {
			return nil
		}
		return []WeightedCluster{rt.single}
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
