package route

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	_ "github.com/weft-mesh/weft/proxy/filter/all"
)

func oneRoute(t *testing.T, edit func(r *routev3.Route)) (*Route, error) {
	t.Helper()
	r := to("r", prefix("/api/"), "c")
	edit(r)
	tbl, err := Compile(&routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{r}}}})
	if err != nil {
		return nil, err
	}
	return tbl.VirtualHosts[0].Routes[0], nil
}

func TestActionCompileErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(r *routev3.Route)
		want string
	}{
		{"retry_on", func(r *routev3.Route) { r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,bogus"} }, `routes[0].route.retry_policy.retry_on: unsupported condition "bogus"`},
		{"retry predicate", func(r *routev3.Route) {
			r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "x"}}}
		}, "retry_host_predicate[0].name"},
		{"regex substitution", func(r *routev3.Route) {
			r.GetRoute().RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "a"}, Substitution: `\1`}
		}, "regex_rewrite.substitution"},
		{"host header", func(r *routev3.Route) {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "host", Value: "x"}}}
		}, "routes[0].request_headers_to_add[0].header.key"},
		{"pseudo remove", func(r *routev3.Route) { r.ResponseHeadersToRemove = []string{":status"} }, "response_headers_to_remove[0]"},
		{"unknown filter", func(r *routev3.Route) {
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.lua": {}}
		}, `typed_per_filter_config["envoy.filters.http.lua"]: unsupported filter`},
		{"bad fault", func(r *routev3.Route) {
			a, _ := anypb.New(&routev3.Route{})
			r.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": a}
		}, `typed_per_filter_config["envoy.filters.http.fault"].typed_config`},
		{"hash", func(r *routev3.Route) {
			r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{}}
		}, "hash_policy[0].policy_specifier"},
		{"mirror", func(r *routev3.Route) {
			r.GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{}}
		}, "request_mirror_policies[0].cluster: empty"},
		{"direct status", func(r *routev3.Route) {
			r.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 99}}
		}, "direct_response.status"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := oneRoute(t, tt.edit)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRetryPolicyDefaultsAndBackoff(t *testing.T) {
	rt, err := oneRoute(t, func(r *routev3.Route) {
		r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,unavailable", PerTryTimeout: durationpb.New(time.Second)}
	})
	if err != nil {
		t.Fatal(err)
	}
	p := rt.Retry
	if p.NumRetries != 1 || p.BaseInterval != 25*time.Millisecond || p.MaxInterval != 250*time.Millisecond || p.PerTryTimeout != time.Second {
		t.Errorf("policy %+v", p)
	}
	if !p.RetriableStatus(500, "") || p.RetriableStatus(409, "") || !p.RetriableStatus(200, "14") || p.RetriableStatus(200, "13") {
		t.Error("RetriableStatus wrong")
	}
	if !p.RetriableFailure(FailReset) || !p.RetriableFailure(FailPerTryTimeout) {
		t.Error("5xx must retry resets and per-try timeouts")
	}
	for n, ceil := range map[int]time.Duration{1: 25 * time.Millisecond, 2: 75 * time.Millisecond, 3: 175 * time.Millisecond, 6: 250 * time.Millisecond} {
		for _, r := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
			if d := p.Backoff(n, r); d < 0 || d >= ceil {
				t.Errorf("Backoff(%d) = %v, want [0, %v)", n, d, ceil)
			}
		}
	}
	cf := &RetryPolicy{On: RetryConnectFailure}
	if !cf.RetriableFailure(FailConnect) || cf.RetriableFailure(FailReset) {
		t.Error("connect-failure must retry only connect failures")
	}
}

func TestHashPolicies(t *testing.T) {
	rt, err := oneRoute(t, func(r *routev3.Route) {
		r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{
			{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}, Terminal: true},
			{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "k"}}},
			{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}},
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api/x?k=1", nil)
	r.RemoteAddr = "10.0.0.1:5555"
	withQuery, ok, _ := rt.Hash(r, "h")
	if !ok {
		t.Fatal("no hash")
	}
	r.RemoteAddr = "10.0.0.1:6666"
	if again, _, _ := rt.Hash(r, "h"); again != withQuery {
		t.Error("source port changed the hash")
	}
	r.RemoteAddr = "10.0.0.2:5555"
	if other, _, _ := rt.Hash(r, "h"); other == withQuery {
		t.Error("source ip did not change the hash")
	}
	// The terminal header policy ends the evaluation: ip and query ignored.
	r.Header.Set("X-User", "u")
	a, _, _ := rt.Hash(r, "h")
	r.RemoteAddr = "10.9.9.9:1"
	r.URL.RawQuery = "k=2"
	if b, _, _ := rt.Hash(r, "h"); a != b {
		t.Error("terminal policy not honoured")
	}
}

func TestCookieHashGeneration(t *testing.T) {
	rt, err := oneRoute(t, func(r *routev3.Route) {
		r.GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
			Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "sid", Ttl: durationpb.New(0)}}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api/", nil)
	h, ok, sc := rt.Hash(r, "h")
	if !ok || !strings.HasPrefix(sc, "sid=") || sc[len("sid="):strings.IndexByte(sc, ';')] == "" || !strings.HasSuffix(sc, "; HttpOnly") || strings.Contains(sc, "Max-Age") {
		t.Fatalf("hash %v ok %v Set-Cookie %q", h, ok, sc)
	}
	r.Header.Set("Cookie", strings.Split(sc, ";")[0])
	if h2, ok, sc2 := rt.Hash(r, "h"); !ok || h2 != h || sc2 != "" {
		t.Errorf("returned cookie hashed to %v (want %v), Set-Cookie %q", h2, h, sc2)
	}
}

func TestRedirectURL(t *testing.T) {
	rt, err := oneRoute(t, func(r *routev3.Route) {
		r.Action = &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
			SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
			PathRewriteSpecifier:   &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/v2/"},
		}}
	})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api/items?x=1", nil)
	if got := rt.RedirectURL(r, "shop.example:80"); got != "https://shop.example/v2/items?x=1" {
		t.Errorf("Location %q", got)
	}
	if rt.Redirect.Code != 301 || rt.Cluster() != "" || len(rt.Clusters()) != 0 {
		t.Errorf("code %d cluster %q", rt.Redirect.Code, rt.Cluster())
	}
}

func TestShadowHost(t *testing.T) {
	for in, want := range map[string]string{"a": "a-shadow", "a:80": "a-shadow:80", "[::1]:80": "[::1]-shadow:80"} {
		if got := ShadowHost(in); got != want {
			t.Errorf("ShadowHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHeaderMutationDoesNotWriteShared(t *testing.T) {
	m, err := compileMutation([]*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-a", Value: "2"},
		Append: wrapperspb.Bool(true)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	shared := make([]string, 1, 4)
	shared[0] = "1"
	h := map[string][]string{"X-A": shared}
	m.Apply(h)
	if got := shared[:2][1]; got != "" {
		t.Errorf("append wrote into a shared slice: %q", got)
	}
	if strings.Join(h["X-A"], ",") != "1,2" {
		t.Errorf("X-A = %v", h["X-A"])
	}
}
