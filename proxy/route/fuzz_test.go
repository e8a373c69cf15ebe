package route

import (
	"net/http"
	"net/url"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// FuzzCompileMatch compiles route configurations built from arbitrary domains,
// prefixes and regexes, and matches arbitrary requests against the ones that
// compile: neither may panic, and matching must be deterministic.
func FuzzCompileMatch(f *testing.F) {
	f.Add("*.example.com", "/api", `/items/[0-9]+`, "a+", "x.example.com:80", "/api/items/1", "v=1", "aa")
	f.Add("api.*", "", `(`, "", "API.internal", "", "", "")
	f.Add("*", "/", `.*`, `\d`, "[::1]:80", "/%zz", "%zz=%", "1")
	f.Fuzz(func(t *testing.T, domain, pfx, pathRe, hdrRe, authority, path, query, hdr string) {
		rc := &routev3.RouteConfiguration{Name: "fuzz", VirtualHosts: []*routev3.VirtualHost{{
			Name: "v", Domains: []string{domain}, Routes: []*routev3.Route{
				to("re", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(pathRe)},
					Headers: []*routev3.HeaderMatcher{{Name: "x-h", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
						StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regex(hdrRe)}}}}}}, "a"),
				to("pfx", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: pfx},
					QueryParameters: []*routev3.QueryParameterMatcher{{Name: "v", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{
						StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: hdr}, IgnoreCase: true}}}}}, "b"),
			}}}}
		tbl, err := Compile(rc)
		if err != nil {
			return
		}
		r := &http.Request{Method: "GET", URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{"X-H": {hdr}}}
		first := tbl.Route(r, authority)
		if again := tbl.Route(r, authority); again != first {
			t.Fatalf("non-deterministic match: %v then %v", first, again)
		}
	})
}
