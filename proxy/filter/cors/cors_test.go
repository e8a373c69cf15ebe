package cors

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/filter"
)

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func policy(t *testing.T, m *corsv3.CorsPolicy) *Policy {
	t.Helper()
	p, err := ParseMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testPolicy(t *testing.T) *Policy {
	return policy(t, &corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("https://app.example.com"),
			{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".trusted.io"}}},
		AllowMethods:     "GET,POST",
		AllowHeaders:     "x-token",
		ExposeHeaders:    "x-trace",
		MaxAge:           "600",
		AllowCredentials: wrapperspb.Bool(true),
	})
}

func do(p *Policy, r *http.Request) (*filter.Exchange, *httptest.ResponseRecorder, bool) {
	w := httptest.NewRecorder()
	c := filter.Chain{p}
	x := filter.NewExchange(w, r)
	return x, w, c.Request(x)
}

func preflight(origin string) *http.Request {
	r := httptest.NewRequest("OPTIONS", "/items", nil)
	r.Header.Set("Origin", origin)
	r.Header.Set("Access-Control-Request-Method", "POST")
	return r
}

func TestPreflightAllowed(t *testing.T) {
	_, w, ok := do(testPolicy(t), preflight("https://app.example.com"))
	if ok {
		t.Fatal("preflight forwarded upstream")
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example.com",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "GET,POST",
		"Access-Control-Allow-Headers":     "x-token",
		"Access-Control-Max-Age":           "600",
	}
	if w.Code != 200 {
		t.Errorf("code %d", w.Code)
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if w.Header().Get("Access-Control-Expose-Headers") != "" {
		t.Error("expose headers on a preflight")
	}
}

func TestPreflightNotAllowed(t *testing.T) {
	if _, _, ok := do(testPolicy(t), preflight("https://evil.example.com")); !ok {
		t.Error("non-matching preflight not forwarded (forward_not_matching_preflights defaults to true)")
	}
	p := policy(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("https://a")},
		ForwardNotMatchingPreflights: wrapperspb.Bool(false)})
	_, w, ok := do(p, preflight("https://b"))
	if ok || w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("ok=%v code=%d headers=%v", ok, w.Code, w.Header())
	}
}

func TestSimpleRequest(t *testing.T) {
	p := testPolicy(t)
	for _, tt := range []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"https://x.trusted.io", true},
		{"https://other.example.com", false},
		{"", false},
	} {
		r := httptest.NewRequest("GET", "/items", nil)
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		x, _, ok := do(p, r)
		if !ok {
			t.Fatalf("%q: simple request stopped", tt.origin)
		}
		h := http.Header{}
		x.Response(200, h)
		if got := h.Get("Access-Control-Allow-Origin"); (tt.want && got != tt.origin) || (!tt.want && got != "") {
			t.Errorf("%q: allow-origin %q", tt.origin, got)
		}
		if tt.want && (h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Expose-Headers") != "x-trace") {
			t.Errorf("%q: headers %v", tt.origin, h)
		}
	}
}

func TestWildcardOrigin(t *testing.T) {
	p := policy(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("*")}})
	_, w, _ := do(p, preflight("https://anything"))
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "https://anything" {
		t.Errorf("allow-origin %q", got)
	}
}

func TestFilterDisabled(t *testing.T) {
	p := policy(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("*")},
		FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 0}}})
	if _, _, ok := do(p, preflight("https://a")); !ok {
		t.Error("disabled filter answered a preflight")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		m    *corsv3.CorsPolicy
		want string
	}{
		{&corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{{}}}, "allow_origin_string_match[0].match_pattern"},
		{&corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}}}, "safe_regex.regex"},
		{&corsv3.CorsPolicy{AllowMethods: "GET\n"}, "allow_methods: invalid"},
	} {
		if _, err := ParseMessage(tt.m); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
	cfg, _ := anypb.New(&corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("*")}})
	if c, err := filter.Build(map[string]*anypb.Any{Name: cfg}); err != nil || len(c) != 1 {
		t.Errorf("Build = %v, %v", c, err)
	}
}
