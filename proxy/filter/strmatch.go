package filter

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

type strKind uint8

const (
	strExact strKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

// StringMatcher is a compiled envoy.type.matcher.v3.StringMatcher. Route,
// RBAC, CORS and SAN matching share it; Match does not allocate unless
// ignore_case is set on a contains pattern and the value has upper case.
type StringMatcher struct {
	kind       strKind
	value      string // lower-cased for contains with ignore_case
	ignoreCase bool
	re         *regexp.Regexp
}

// CompileStringMatcher compiles s: exact, prefix, suffix, contains or
// safe_regex (RE2, full match), with ignore_case (which, as in Envoy, has no
// effect on safe_regex). Errors name the field relative to s.
func CompileStringMatcher(s *matcherv3.StringMatcher) (StringMatcher, error) {
	var out StringMatcher
	if err := contract.CheckFields(s, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return out, err
	}
	out.ignoreCase = s.GetIgnoreCase()
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
		re, err := CompileRegex(p.SafeRegex)
		if err != nil {
			return out, fmt.Errorf("safe_regex.%w", err)
		}
		out.kind, out.re = strRegex, re
	default:
		return out, fmt.Errorf("match_pattern: one of exact, prefix, suffix, contains, safe_regex required")
	}
	if out.ignoreCase && out.kind == strContains {
		out.value = strings.ToLower(out.value)
	}
	return out, nil
}

// CompileRegex compiles an envoy.type.matcher.v3.RegexMatcher (RE2 syntax)
// anchored at both ends: Envoy's safe_regex is a full match. Errors name
// the field relative to r.
func CompileRegex(r *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	if err := contract.CheckFields(r, "regex", "google_re2"); err != nil {
		return nil, err
	}
	re, err := regexp.Compile("^(?:" + r.GetRegex() + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	return re, nil
}

// Match reports whether v matches.
func (s *StringMatcher) Match(v string) bool {
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
