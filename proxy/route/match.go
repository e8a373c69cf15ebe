package route

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// matchCtx carries per-request values computed once for all routes tried.
type matchCtx struct {
	r         *http.Request
	authority string
	path      string // escaped, without query
}

type pathKind uint8

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
)

// matcher is a compiled RouteMatch: all conditions must hold.
type matcher struct {
	kind       pathKind
	value      string
	ignoreCase bool
	re         *regexp.Regexp
	headers    []headerMatcher
	query      []queryMatcher
}

func compileMatch(m *routev3.RouteMatch) (matcher, error) {
	var out matcher
	if err := contract.CheckFields(m, "prefix", "path", "safe_regex", "case_sensitive", "headers", "query_parameters"); err != nil {
		return out, err
	}
	out.ignoreCase = m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue()
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.kind, out.value = pathPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		out.kind, out.value = pathExact, ps.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(ps.SafeRegex)
		if err != nil {
			return out, fmt.Errorf("safe_regex.%w", err)
		}
		out.kind, out.re = pathRegex, re
	default:
		return out, fmt.Errorf("path_specifier: one of prefix, path, safe_regex required")
	}
	for i, h := range m.GetHeaders() {
		hm, err := compileHeader(h)
		if err != nil {
			return out, fmt.Errorf("headers[%d].%w", i, err)
		}
		out.headers = append(out.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm, err := compileQuery(q)
		if err != nil {
			return out, fmt.Errorf("query_parameters[%d].%w", i, err)
		}
		out.query = append(out.query, qm)
	}
	return out, nil
}

func (m *matcher) matches(mc *matchCtx) bool {
	p := mc.path
	switch m.kind {
	case pathPrefix:
		if len(p) < len(m.value) {
			return false
		}
		if m.ignoreCase {
			if !strings.EqualFold(p[:len(m.value)], m.value) {
				return false
			}
		} else if p[:len(m.value)] != m.value {
			return false
		}
	case pathExact:
		if m.ignoreCase {
			if !strings.EqualFold(p, m.value) {
				return false
			}
		} else if p != m.value {
			return false
		}
	case pathRegex:
		if !m.re.MatchString(p) {
			return false
		}
	}
	for i := range m.headers {
		if !m.headers[i].matches(mc) {
			return false
		}
	}
	for i := range m.query {
		if !m.query[i].matches(mc.r.URL.RawQuery) {
			return false
		}
	}
	return true
}

func compileRegex(r *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	if err := contract.CheckFields(r, "regex", "google_re2"); err != nil {
		return nil, err
	}
	re, err := regexp.Compile("^(?:" + r.GetRegex() + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	return re, nil
}

// Pseudo-headers a header matcher may name.
const (
	hdrPlain = iota
	hdrMethod
	hdrAuthority
	hdrPath
	hdrScheme
)

type headerMatcher struct {
	key          string // canonical header key for hdrPlain
	pseudo       int
	present      *bool // present_match
	sm           *stringMatcher
	invert       bool
	missingEmpty bool
}

func compileHeader(h *routev3.HeaderMatcher) (headerMatcher, error) {
	var out headerMatcher
	if err := contract.CheckFields(h, "name", "string_match", "present_match", "invert_match",
		"treat_missing_header_as_empty", "exact_match", "safe_regex_match", "prefix_match",
		"suffix_match", "contains_match"); err != nil {
		return out, err
	}
	name := strings.ToLower(h.GetName())
	switch name {
	case "":
		return out, fmt.Errorf("name: empty")
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
			return out, fmt.Errorf("name: unsupported pseudo-header %q", name)
		}
		out.key = http.CanonicalHeaderKey(name)
	}
	out.invert = h.GetInvertMatch()
	out.missingEmpty = h.GetTreatMissingHeaderAsEmpty()
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		out.present = &s.PresentMatch
	case *routev3.HeaderMatcher_StringMatch:
		out.sm, err = compileString(s.StringMatch)
		if err != nil {
			return out, fmt.Errorf("string_match.%w", err)
		}
	case *routev3.HeaderMatcher_ExactMatch:
		out.sm = &stringMatcher{kind: strExact, value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		out.sm = &stringMatcher{kind: strPrefix, value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		out.sm = &stringMatcher{kind: strSuffix, value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		out.sm = &stringMatcher{kind: strContains, value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(s.SafeRegexMatch)
		if err != nil {
			return out, fmt.Errorf("safe_regex_match.%w", err)
		}
		out.sm = &stringMatcher{kind: strRegex, re: re}
	default:
		t := true // no specifier: match on presence, as Envoy does
		out.present = &t
	}
	return out, nil
}

func (h *headerMatcher) value(mc *matchCtx) (string, bool) {
	switch h.pseudo {
	case hdrMethod:
		return mc.r.Method, true
	case hdrAuthority:
		return mc.authority, true
	case hdrPath:
		if q := mc.r.URL.RawQuery; q != "" {
			return mc.path + "?" + q, true
		}
		return mc.path, true
	case hdrScheme:
		if mc.r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs := mc.r.Header[h.key]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

func (h *headerMatcher) matches(mc *matchCtx) bool {
	v, ok := h.value(mc)
	var m bool
	switch {
	case h.present != nil:
		m = ok == *h.present
	case !ok && !h.missingEmpty:
		m = false
	default:
		m = h.sm.match(v)
	}
	return m != h.invert
}

type queryMatcher struct {
	name    string
	present *bool
	sm      *stringMatcher
}

func compileQuery(q *routev3.QueryParameterMatcher) (queryMatcher, error) {
	out := queryMatcher{name: q.GetName()}
	if err := contract.CheckFields(q, "name", "string_match", "present_match"); err != nil {
		return out, err
	}
	if out.name == "" {
		return out, fmt.Errorf("name: empty")
	}
	switch s := q.GetQueryParameterMatchSpecifier().(type) {
	case *routev3.QueryParameterMatcher_PresentMatch:
		out.present = &s.PresentMatch
	case *routev3.QueryParameterMatcher_StringMatch:
		sm, err := compileString(s.StringMatch)
		if err != nil {
			return out, fmt.Errorf("string_match.%w", err)
		}
		out.sm = sm
	default:
		return out, fmt.Errorf("query_parameter_match_specifier: one of string_match, present_match required")
	}
	return out, nil
}

func (q *queryMatcher) matches(rawQuery string) bool {
	v, ok := queryValue(rawQuery, q.name)
	if q.present != nil {
		return ok == *q.present
	}
	return ok && q.sm.match(v)
}

// queryValue returns the first value of query parameter name in rawQuery,
// unescaping only when needed so the common case does not allocate.
func queryValue(rawQuery, name string) (string, bool) {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(k, "%+") {
			uk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = uk
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			if uv, err := url.QueryUnescape(v); err == nil {
				v = uv
			}
		}
		return v, true
	}
	return "", false
}

type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

type stringMatcher struct {
	kind       strKind
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

func compileString(s *matcherv3.StringMatcher) (*stringMatcher, error) {
	if err := contract.CheckFields(s, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return nil, err
	}
	out := &stringMatcher{ignoreCase: s.GetIgnoreCase()}
	switch p := s.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.kind, out.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.kind, out.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.kind, out.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.kind, out.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex)
		if err != nil {
			return nil, fmt.Errorf("safe_regex.%w", err)
		}
		out.kind, out.re = strRegex, re
	default:
		return nil, fmt.Errorf("match_pattern: one of exact, prefix, suffix, contains, safe_regex required")
	}
	if out.ignoreCase && out.kind == strContains {
		out.value = strings.ToLower(out.value)
	}
	return out, nil
}

func (s *stringMatcher) match(v string) bool {
	switch s.kind {
	case strExact:
		if s.ignoreCase {
			return strings.EqualFold(v, s.value)
		}
		return v == s.value
	case strPrefix:
		if s.ignoreCase {
			return len(v) >= len(s.value) && strings.EqualFold(v[:len(s.value)], s.value)
		}
		return strings.HasPrefix(v, s.value)
	case strSuffix:
		if s.ignoreCase {
			return len(v) >= len(s.value) && strings.EqualFold(v[len(v)-len(s.value):], s.value)
		}
		return strings.HasSuffix(v, s.value)
	case strContains:
		if s.ignoreCase {
			return strings.Contains(strings.ToLower(v), s.value)
		}
		return strings.Contains(v, s.value)
	case strRegex:
		return s.re.MatchString(v)
	}
	return false
}
