package filter

import (
	"net/http/httptest"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// TestHeaderMatcherMissing pins both semantics for a header the request
// lacks: Envoy's, and proxy/route's (InvertMissing).
func TestHeaderMatcherMissing(t *testing.T) {
	str := &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_Exact{Exact: ""}}}
	present := func(v bool) *routev3.HeaderMatcher_PresentMatch {
		return &routev3.HeaderMatcher_PresentMatch{PresentMatch: v}
	}
	for _, tc := range []struct {
		name                 string
		spec                 any
		invert, empty        bool
		envoy, invertMissing bool
	}{
		{"string", str, false, false, false, false},
		{"string inverted", str, true, false, false, true},
		{"string as empty", str, false, true, true, true},
		{"string as empty inverted", str, true, true, false, false},
		{"present", present(true), false, false, false, false},
		{"present inverted", present(true), true, false, true, true},
		{"absent", present(false), false, false, true, true},
		{"absent inverted", present(false), true, false, false, false},
		{"present as empty", present(true), false, true, true, false},
		{"absent as empty", present(false), false, true, false, true},
	} {
		h := &routev3.HeaderMatcher{Name: "x-missing", InvertMatch: tc.invert, TreatMissingHeaderAsEmpty: tc.empty}
		switch s := tc.spec.(type) {
		case *routev3.HeaderMatcher_StringMatch:
			h.HeaderMatchSpecifier = s
		case *routev3.HeaderMatcher_PresentMatch:
			h.HeaderMatchSpecifier = s
		}
		m, err := CompileHeaderMatcher(h)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		if got := m.Match(r, nil); got != tc.envoy {
			t.Errorf("%s: Envoy's semantics: got %v", tc.name, got)
		}
		m.InvertMissing = true
		if got := m.Match(r, nil); got != tc.invertMissing {
			t.Errorf("%s: InvertMissing: got %v", tc.name, got)
		}
	}
}

func TestHeaderMatcherValues(t *testing.T) {
	match := func(name string, sm *matcherv3.StringMatcher) HeaderMatcher {
		m, err := CompileHeaderMatcher(&routev3.HeaderMatcher{Name: name,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	exact := func(v string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
	}
	r := httptest.NewRequest("POST", "http://Shop.example:80/a/b?q=1", nil)
	r.Header.Add("X-Tag", "one")
	r.Header.Add("X-Tag", "two")
	ph := &PseudoHeaders{Authority: "given:80", Path: "/given", Query: "x=y"}
	for _, tc := range []struct {
		m      HeaderMatcher
		ph     *PseudoHeaders
		expect bool
	}{
		{match(":method", exact("POST")), nil, true},
		{match(":scheme", exact("http")), nil, true},
		{match("Host", exact("shop.example:80")), nil, false},
		{match("host", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "shop.example:80"}, IgnoreCase: true}), nil, true},
		{match(":authority", exact("given:80")), ph, true},
		{match(":path", exact("http://Shop.example:80/a/b?q=1")), nil, false},
		{match(":path", exact("/a/b?q=1")), nil, true},
		{match(":path", exact("/given?x=y")), ph, true},
		{match("x-tag", exact("one,two")), nil, true},
	} {
		if got := tc.m.Match(r, tc.ph); got != tc.expect {
			t.Errorf("%+v with %+v: got %v", tc.m.name, tc.ph, got)
		}
	}
}

func TestCompileHeaderMatcherErrors(t *testing.T) {
	for _, tc := range []struct {
		h    *routev3.HeaderMatcher
		want string
	}{
		{&routev3.HeaderMatcher{}, "name: empty"},
		{&routev3.HeaderMatcher{Name: ":status"}, `name: unsupported pseudo-header ":status"`},
		{&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{
			SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "("}}}, "safe_regex_match.regex: "},
		{&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{}}}, "string_match.match_pattern: "},
		{&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{}}, "range_match: unsupported field"},
	} {
		if _, err := CompileHeaderMatcher(tc.h); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.h, err, tc.want)
		}
	}
}
