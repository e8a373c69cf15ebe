package route

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// BenchmarkRouteMatch matches requests against a table of 50 virtual hosts
// with 5 routes each, shaped like weft's sidecar outbound route config.
func BenchmarkRouteMatch(b *testing.B) {
	rc := &routev3.RouteConfiguration{Name: "outbound"}
	for i := range 50 {
		svc := fmt.Sprintf("svc%d", i)
		fqdn := svc + ".default.svc.cluster.local"
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    fqdn + ":8080",
			Domains: []string{fqdn + ":8080", svc + ":8080", svc + ".default:8080", svc + ".default.svc:8080"},
			Routes: []*routev3.Route{
				to("user", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
					Headers: []*routev3.HeaderMatcher{{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
						StringMatch: exact("jason")}}}}, "v2"),
				to("exact", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/health"}}, "v1"),
				to("regex", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`/items/[0-9]+`)}}, "v1"),
				to("query", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/search"},
					QueryParameters: []*routev3.QueryParameterMatcher{{Name: "q", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{
						StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "x"}}}}}}, "v3"),
				to("default", prefix("/"), "outbound|8080||"+fqdn),
			},
		})
	}
	tbl, err := Compile(rc)
	if err != nil {
		b.Fatal(err)
	}
	type tc struct {
		authority string
		target    string
		user      string
	}
	cases := []tc{
		{"svc7:8080", "/api/v1/things", ""},
		{"svc42.default.svc.cluster.local:8080", "/items/123", ""},
		{"svc13.default:8080", "/search?q=xyz", ""},
		{"svc49:8080", "/anything", "jason"},
		{"svc0:8080", "/health", ""},
	}
	type requestCase struct {
		authority string
		r         *http.Request
	}
	requests := make([]requestCase, len(cases))
	for i, c := range cases {
		r := httptest.NewRequest("GET", c.target, nil)
		if c.user != "" {
			r.Header.Set("End-User", c.user)
		}
		requests[i] = requestCase{authority: c.authority, r: r}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c := requests[i%len(requests)]
		if tbl.Route(c.r, c.authority) == nil {
			b.Fatal("no route")
		}
	}
}
