package filter

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// StringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type StringMatcher struct {
	kind       uint8 // 0 exact, 1 prefix, 2 suffix, 3 contains, 4 regex
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

// CompileStringMatcher compiles s: exact, prefix, suffix, contains or
// safe_regex (RE2, full match), with ignore_case.
func CompileStringMatcher(s *matcherv3.StringMatcher) (StringMatcher, error) {
	var out StringMatcher
	if err := contract.CheckFields(s, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return out, err
	}
	out.ignoreCase = s.GetIgnoreCase()
	switch p := s.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.kind, out.value = 0, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.kind, out.value = 1, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.kind, out.value = 2, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.kind, out.value = 3, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		if err := contract.CheckFields(p.SafeRegex, "regex", "google_re2"); err != nil {
			return out, fmt.Errorf("safe_regex.%w", err)
		}
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return out, fmt.Errorf("safe_regex.regex: %w", err)
		}
		out.kind, out.re = 4, re
	default:
		return out, fmt.Errorf("match_pattern: one of exact, prefix, suffix, contains, safe_regex required")
	}
	if out.ignoreCase {
		out.value = strings.ToLower(out.value)
	}
	return out, nil
}

// Match reports whether v matches.
func (s *StringMatcher) Match(v string) bool {
	if s.kind == 4 {
		return s.re.MatchString(v)
	}
	if s.ignoreCase {
		v = strings.ToLower(v)
	}
	switch s.kind {
	case 0:
		return v == s.value
	case 1:
		return strings.HasPrefix(v, s.value)
	case 2:
		return strings.HasSuffix(v, s.value)
	default:
		return strings.Contains(v, s.value)
	}
}
