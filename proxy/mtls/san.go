package mtls

import (
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weft-mesh/weft/proxy/contract"
)

// SANType is the kind of subject alternative name a matcher looks at.
type SANType int

// SAN types of match_typed_subject_alt_names.
const (
	SANDNS SANType = iota + 1
	SANURI
	SANEmail
	SANIP
)

// SANMatcher is one entry of match_typed_subject_alt_names: a string
// matcher applied to one kind of SAN of the peer's leaf certificate.
type SANMatcher struct {
	Type SANType
	// Exactly one of the match forms is used, per kind.
	kind       matchKind
	value      string
	re         *regexp.Regexp
	ignoreCase bool
}

type matchKind int

const (
	matchExact matchKind = iota
	matchPrefix
	matchSuffix
	matchContains
	matchRegex
)

func sanMatchers(ms []*tlsv3.SubjectAltNameMatcher) ([]SANMatcher, error) {
	out := make([]SANMatcher, 0, len(ms))
	for i, m := range ms {
		sm, err := sanMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d].%w", i, err)
		}
		out = append(out, sm)
	}
	return out, nil
}

func sanMatcher(m *tlsv3.SubjectAltNameMatcher) (SANMatcher, error) {
	var out SANMatcher
	if err := contract.CheckFields(m, "san_type", "matcher"); err != nil {
		return out, err
	}
	switch m.GetSanType() {
	case tlsv3.SubjectAltNameMatcher_DNS:
		out.Type = SANDNS
	case tlsv3.SubjectAltNameMatcher_URI:
		out.Type = SANURI
	case tlsv3.SubjectAltNameMatcher_EMAIL:
		out.Type = SANEmail
	case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		out.Type = SANIP
	default:
		return out, fmt.Errorf("san_type: unsupported %s", m.GetSanType())
	}
	sm := m.GetMatcher()
	if sm == nil {
		return out, errors.New("matcher: required")
	}
	if err := contract.CheckFields(sm, "exact", "prefix", "suffix", "contains", "safe_regex", "ignore_case"); err != nil {
		return out, fmt.Errorf("matcher.%w", err)
	}
	out.ignoreCase = sm.GetIgnoreCase()
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.kind, out.value = matchExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.kind, out.value = matchPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.kind, out.value = matchSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.kind, out.value = matchContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		if err := contract.CheckFields(p.SafeRegex, "regex", "google_re2"); err != nil {
			return out, fmt.Errorf("matcher.safe_regex.%w", err)
		}
		if out.ignoreCase {
			return out, errors.New("matcher.ignore_case: not allowed with safe_regex")
		}
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return out, fmt.Errorf("matcher.safe_regex.regex: %w", err)
		}
		out.kind, out.re = matchRegex, re
	default:
		return out, errors.New("matcher: one of exact, prefix, suffix, contains, safe_regex required")
	}
	if out.kind != matchRegex && out.value == "" && out.kind != matchExact {
		return out, errors.New("matcher: empty pattern")
	}
	if out.ignoreCase {
		out.value = strings.ToLower(out.value)
	}
	return out, nil
}

// Match reports whether a SAN of cert of the matcher's type matches.
func (m *SANMatcher) Match(cert *x509.Certificate) bool {
	switch m.Type {
	case SANDNS:
		for _, n := range cert.DNSNames {
			if m.matchString(n) || (m.kind == matchExact && wildcardMatch(n, m.value)) {
				return true
			}
		}
	case SANURI:
		for _, u := range cert.URIs {
			if m.matchString(u.String()) {
				return true
			}
		}
	case SANEmail:
		for _, e := range cert.EmailAddresses {
			if m.matchString(e) {
				return true
			}
		}
	case SANIP:
		for _, ip := range cert.IPAddresses {
			if m.matchString(ip.String()) {
				return true
			}
		}
	}
	return false
}

func (m *SANMatcher) matchString(s string) bool {
	if m.kind == matchRegex {
		return m.re.MatchString(s)
	}
	if m.ignoreCase {
		s = strings.ToLower(s)
	}
	switch m.kind {
	case matchExact:
		return s == m.value
	case matchPrefix:
		return strings.HasPrefix(s, m.value)
	case matchSuffix:
		return strings.HasSuffix(s, m.value)
	case matchContains:
		return strings.Contains(s, m.value)
	}
	return false
}

// wildcardMatch reports whether a certificate DNS SAN like "*.example.com"
// covers name: the wildcard stands for exactly one leftmost label.
func wildcardMatch(san, name string) bool {
	rest, ok := strings.CutPrefix(san, "*.")
	if !ok || rest == "" {
		return false
	}
	label, parent, ok := strings.Cut(strings.ToLower(name), ".")
	return ok && label != "" && parent == strings.ToLower(rest)
}

// anySAN reports whether any matcher accepts cert; no matchers accept all.
func anySAN(ms []SANMatcher, cert *x509.Certificate) bool {
	if len(ms) == 0 {
		return true
	}
	for i := range ms {
		if ms[i].Match(cert) {
			return true
		}
	}
	return false
}
