package rbac

import (
	"fmt"
	"net/http"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
)

// Pseudo-headers a header matcher may name.
const (
	hdrPlain = iota
	hdrMethod
	hdrAuthority
	hdrPath
	hdrScheme
)

// headerMatcher is a compiled envoy.config.route.v3.HeaderMatcher.
type headerMatcher struct {
	key          string // canonical key of a plain header
	pseudo       int
	present      bool // present_match value, when isPresent
	isPresent    bool
	sm           filter.StringMatcher
	invert       bool
	missingEmpty bool
}

func compileHeader(h *routev3.HeaderMatcher) (*headerMatcher, error) {
	if err := contract.CheckFields(h, "name", "string_match", "present_match", "invert_match",
		"treat_missing_header_as_empty", "exact_match", "safe_regex_match", "prefix_match",
		"suffix_match", "contains_match"); err != nil {
		return nil, err
	}
	out := &headerMatcher{invert: h.GetInvertMatch(), missingEmpty: h.GetTreatMissingHeaderAsEmpty()}
	switch name := strings.ToLower(h.GetName()); name {
	case "":
		return nil, fmt.Errorf("name: empty")
	case ":method":
		out.pseudo = hdrMethod
	case ":authority", "host":
		out.pseudo = hdrAuthority
	case ":path":
		out.pseudo = hdrPath
	case ":scheme":
		out.pseudo = hdrScheme
	default:
		if strings.HasPrefix(name, ":") {
			return nil, fmt.Errorf("name: unsupported pseudo-header %q", name)
		}
		out.key = http.CanonicalHeaderKey(name)
	}
	var sm *matcherv3.StringMatcher
	field := "string_match"
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		out.isPresent, out.present = true, s.PresentMatch
		return out, nil
	case *routev3.HeaderMatcher_StringMatch:
		sm = s.StringMatch
	case *routev3.HeaderMatcher_ExactMatch:
		sm, field = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s.ExactMatch}}, "exact_match"
	case *routev3.HeaderMatcher_PrefixMatch:
		sm, field = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s.PrefixMatch}}, "prefix_match"
	case *routev3.HeaderMatcher_SuffixMatch:
		sm, field = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: s.SuffixMatch}}, "suffix_match"
	case *routev3.HeaderMatcher_ContainsMatch:
		sm, field = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: s.ContainsMatch}}, "contains_match"
	case *routev3.HeaderMatcher_SafeRegexMatch:
		sm, field = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: s.SafeRegexMatch}}, "safe_regex_match"
	default:
		// No specifier: match on presence, as Envoy does.
		out.isPresent, out.present = true, true
		return out, nil
	}
	m, err := filter.CompileStringMatcher(sm)
	if err != nil {
		if field != "string_match" {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		return nil, fmt.Errorf("%s.%w", field, err)
	}
	out.sm = m
	return out, nil
}

// value returns the header's value in r: several values joined with ",",
// as Envoy does for RBAC and route matching.
func (h *headerMatcher) value(r *http.Request) (string, bool) {
	switch h.pseudo {
	case hdrMethod:
		return r.Method, true
	case hdrAuthority:
		if r.URL.Host != "" {
			return r.URL.Host, true // absolute-form request through HTTP_PROXY
		}
		return r.Host, true
	case hdrPath:
		if u := r.RequestURI; u != "" && u[0] == '/' {
			return u, true
		}
		return r.URL.RequestURI(), true
	case hdrScheme:
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs := r.Header[h.key]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// match follows Envoy: a missing header (unless treated as empty) matches
// only present_match: false, or present_match: true inverted; an inverted
// string matcher does not match a missing header.
func (h *headerMatcher) match(r *http.Request) bool {
	v, ok := h.value(r)
	if !ok && !h.missingEmpty {
		if h.invert {
			return h.isPresent && h.present
		}
		return h.isPresent && !h.present
	}
	var m bool
	if h.isPresent {
		m = h.present // the header is there (or treated as empty)
	} else {
		m = h.sm.Match(v)
	}
	return m != h.invert
}
