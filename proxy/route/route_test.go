package route

import (
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func to(name string, m *routev3.RouteMatch, cluster string) *routev3.Route {
	return &routev3.Route{Name: name, Match: m, Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
	}}}
}

func prefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func regex(s string) *matcherv3.RegexMatcher { return &matcherv3.RegexMatcher{Regex: s} }

func testTable(t testing.TB) *Table {
	t.Helper()
	hdr := func(name string, sm *matcherv3.StringMatcher, invert bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, InvertMatch: invert,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
	}
	present := func(name string, p bool) *routev3.HeaderMatcher {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: p}}
	}
	rc := &routev3.RouteConfiguration{Name: "outbound", VirtualHosts: []*routev3.VirtualHost{
		{Name: "reviews:9080", Domains: []string{"reviews.default.svc.cluster.local:9080", "reviews:9080", "reviews"}, Routes: []*routev3.Route{
			to("jason", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: []*routev3.HeaderMatcher{hdr("end-user", exact("jason"), false)}}, "v2"),
			to("not-get", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: []*routev3.HeaderMatcher{hdr(":method", exact("GET"), true)}}, "writes"),
			to("exact", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, "exact"),
			to("ci", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/API/"},
				CaseSensitive: wrapperspb.Bool(false)}, "api"),
			to("regex", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`/items/[0-9]+`)}}, "items"),
			to("query", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/q"},
				QueryParameters: []*routev3.QueryParameterMatcher{
					{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
					{Name: "v", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{
						StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "2"}}}},
				}}, "query"),
			to("hdr-kinds", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/h"},
				Headers: []*routev3.HeaderMatcher{
					hdr("x-suffix", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "-end"}}, false),
					hdr("x-contains", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "MID"}, IgnoreCase: true}, false),
					hdr("x-re", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regex(`a+b`)}}, false),
					present("x-absent", false),
					hdr(":authority", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "reviews"}}, false),
				}}, "headers"),
			to("default", prefix("/"), "v1"),
			to("shadowed", prefix("/exact"), "never"),
		}},
		{Name: "wild-long", Domains: []string{"*.prod.example.com"}, Routes: []*routev3.Route{to("", prefix("/"), "wild-long")}},
		{Name: "wild-short", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{to("", prefix("/"), "wild-short")}},
		{Name: "prefix-wild", Domains: []string{"api.*"}, Routes: []*routev3.Route{to("", prefix("/"), "prefix-wild")}},
		{Name: "ported", Domains: []string{"catalog:8080"}, Routes: []*routev3.Route{to("", prefix("/"), "catalog-8080")}},
		{Name: "any", Domains: []string{"*"}, Routes: []*routev3.Route{to("", prefix("/only"), "any")}},
	}}
	tbl, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestMatch(t *testing.T) {
	tbl := testTable(t)
	tests := []struct {
		name, method, target, authority string
		hdr                             map[string]string
		want                            string // cluster, "" for no route
	}{
		{"default", "GET", "/", "reviews:9080", nil, "v1"},
		{"header exact", "GET", "/", "reviews:9080", map[string]string{"end-user": "jason"}, "v2"},
		{"header exact other value", "GET", "/", "reviews:9080", map[string]string{"end-user": "json"}, "v1"},
		{"inverted method", "POST", "/", "reviews:9080", nil, "writes"},
		{"first match wins", "GET", "/exact", "reviews:9080", nil, "exact"},
		{"path is exact", "GET", "/exact/more", "reviews:9080", nil, "v1"},
		{"path ignores query", "GET", "/exact?a=b", "reviews:9080", nil, "exact"},
		{"case-insensitive prefix", "GET", "/api/x", "reviews:9080", nil, "api"},
		{"regex full match", "GET", "/items/42", "reviews:9080", nil, "items"},
		{"regex anchored", "GET", "/items/42/x", "reviews:9080", nil, "v1"},
		{"query both", "GET", "/q?debug&v=2.1", "reviews:9080", nil, "query"},
		{"query escaped", "GET", "/q?debug=1&%76=2", "reviews:9080", nil, "query"},
		{"query value mismatch", "GET", "/q?debug&v=1", "reviews:9080", nil, "v1"},
		{"query missing", "GET", "/q?v=2", "reviews:9080", nil, "v1"},
		{"header kinds", "GET", "/h", "reviews:9080", map[string]string{"x-suffix": "the-end", "x-contains": "a-mid-b", "x-re": "aaab"}, "headers"},
		{"header present_match false", "GET", "/h", "reviews:9080", map[string]string{"x-suffix": "the-end", "x-contains": "a-mid-b", "x-re": "aaab", "x-absent": "1"}, "v1"},
		{"header regex is full", "GET", "/h", "reviews:9080", map[string]string{"x-suffix": "the-end", "x-contains": "mid", "x-re": "aaabc"}, "v1"},
		{"exact domain without port", "GET", "/", "reviews", nil, "v1"},
		{"domain case", "GET", "/", "REVIEWS:9080", nil, "v1"},
		{"port stripped when no match", "GET", "/", "reviews:1234", nil, "v1"},
		{"port kept when it matches", "GET", "/", "catalog:8080", nil, "catalog-8080"},
		{"port not stripped to other vhost", "GET", "/only", "catalog:9999", nil, "any"},
		{"longest suffix wildcard", "GET", "/", "a.prod.example.com", nil, "wild-long"},
		{"shorter suffix wildcard", "GET", "/", "a.dev.example.com", nil, "wild-short"},
		{"wildcard needs a label", "GET", "/only", "example.com", nil, "any"},
		{"suffix wildcard with port", "GET", "/", "a.example.com:443", nil, "wild-short"},
		{"prefix wildcard", "GET", "/", "api.internal", nil, "prefix-wild"},
		{"catch-all vhost", "GET", "/only/x", "unknown", nil, "any"},
		{"catch-all vhost no route", "GET", "/other", "unknown", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.hdr {
				r.Header.Set(k, v)
			}
			rt := tbl.Route(r, tt.authority)
			got := ""
			if rt != nil {
				got = rt.Cluster()
			}
			if got != tt.want {
				t.Errorf("cluster = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNoVirtualHost(t *testing.T) {
	tbl, err := Compile(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
		{Name: "a", Domains: []string{"a"}, Routes: []*routev3.Route{to("", prefix("/"), "a")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rt := tbl.Route(httptest.NewRequest("GET", "/", nil), "b"); rt != nil {
		t.Errorf("route = %+v, want none", rt)
	}
	if vh := tbl.VirtualHost("a:80"); vh == nil || vh.Name != "a" {
		t.Errorf("vhost for a:80 = %+v", vh)
	}
}

func TestWeightedSplit(t *testing.T) {
	tbl, err := Compile(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
		Name: "a", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match: prefix("/"),
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				Timeout: durationpb.New(3e9),
				ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
					Clusters: []*routev3.WeightedCluster_ClusterWeight{
						{Name: "v1", Weight: wrapperspb.UInt32(70)},
						{Name: "v2", Weight: wrapperspb.UInt32(30)},
						{Name: "never", Weight: wrapperspb.UInt32(0)},
					}}}}},
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	rt := tbl.VirtualHosts[0].Routes[0]
	if rt.Timeout != 3e9 || len(rt.Clusters()) != 3 {
		t.Errorf("route = %+v", rt)
	}
	const n, p = 2000, 0.7
	counts := map[string]int{}
	for range n {
		counts[rt.Cluster()]++
	}
	sigma := math.Sqrt(n * p * (1 - p))
	if d := math.Abs(float64(counts["v1"]) - n*p); d > 5*sigma {
		t.Errorf("v1 picked %d of %d, want %v ± %.0f", counts["v1"], n, n*p, 5*sigma)
	}
	if counts["v1"]+counts["v2"] != n {
		t.Errorf("counts = %v", counts)
	}
	// The boundaries of the picker are exact.
	for x, want := range map[uint64]string{0: "v1", 69: "v1", 70: "v2", 99: "v2"} {
		if got := rt.clusterAt(x); got != want {
			t.Errorf("clusterAt(%d) = %q, want %q", x, got, want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		vh   *routev3.VirtualHost
		want string
	}{
		{"no domains", &routev3.VirtualHost{Name: "v"}, "virtual_hosts[0] (v).domains: empty"},
		{"inner wildcard", &routev3.VirtualHost{Name: "v", Domains: []string{"a.*.com"}}, "domains[0]"},
		{"bad header regex", &routev3.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
			to("", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{
				Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regex("a(")}}}}}}, "c"),
		}}, "routes[0].match.headers[0].string_match.safe_regex.regex"},
		{"range match", &routev3.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
			to("", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{
				Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{}}}}, "c"),
		}}, "routes[0].match.headers[0].range_match: unsupported"},
		{"no path specifier", &routev3.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
			to("", &routev3.RouteMatch{}, "c"),
		}}, "routes[0].match.path_specifier"},
		{"retry policy", &routev3.VirtualHost{Name: "v", Domains: []string{"*"}, RetryPolicy: &routev3.RetryPolicy{}}, "virtual_hosts[0] (v).retry_policy: unsupported field"},
		{"zero weights", &routev3.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match: prefix("/"),
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
				WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a"}}}}}},
		}}}, "routes[0].route.weighted_clusters.clusters: weights"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(&routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{tt.vh}})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `route config "rc"`) {
				t.Errorf("err = %v, want mention of %q", err, tt.want)
			}
		})
	}
}

func TestStripPort(t *testing.T) {
	for in, want := range map[string]string{"a:80": "a", "a": "a", "[::1]:80": "[::1]", "[::1]": "[::1]", "::1": "::1"} {
		if got, _ := stripPort(in); got != want {
			t.Errorf("stripPort(%q) = %q, want %q", in, got, want)
		}
	}
}
