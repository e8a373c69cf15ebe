package route

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
)

// matchCtx carries per-request values computed once for all routes tried:
// the request, and its :authority and :path (escaped, the query apart).
type matchCtx struct {
	r  *http.Request
	ph filter.PseudoHeaders
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
	headers    []filter.HeaderMatcher
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
		re, err := filter.CompileRegex(ps.SafeRegex)
		if err != nil {
			return out, fmt.Errorf("safe_regex.%w", err)
		}
		out.kind, out.re = pathRegex, re
	default:
		return out, fmt.Errorf("path_specifier: one of prefix, path, safe_regex required")
	}
	for i, h := range m.GetHeaders() {
		hm, err := filter.CompileHeaderMatcher(h)
		if err != nil {
			return out, fmt.Errorf("headers[%d].%w", i, err)
		}
		hm.InvertMissing = true // route's semantics for a missing header: see InvertMissing
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
	p := mc.ph.Path
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
		if !m.headers[i].Match(mc.r, &mc.ph) {
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

type queryMatcher struct {
	name    string
	present *bool
	sm      filter.StringMatcher
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
		sm, err := filter.CompileStringMatcher(s.StringMatch)
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
	return ok && q.sm.Match(v)
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
