package mtls

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
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
	Type    SANType
	str     filter.StringMatcher
	exact   string // the exact pattern, which a wildcard DNS SAN may cover
	isExact bool
}

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
	if sm.GetMatchPattern() == nil {
		return out, errors.New("matcher: one of exact, prefix, suffix, contains, safe_regex required")
	}
	str, err := filter.CompileStringMatcher(sm)
	if err != nil {
		return out, fmt.Errorf("matcher.%w", err)
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.exact, out.isExact = p.Exact, true
	case *matcherv3.StringMatcher_SafeRegex:
		if sm.GetIgnoreCase() {
			return out, errors.New("matcher.ignore_case: not allowed with safe_regex")
		}
	default: // prefix, suffix or contains
		if sm.GetPrefix()+sm.GetSuffix()+sm.GetContains() == "" {
			return out, errors.New("matcher: empty pattern")
		}
	}
	out.str = str
	return out, nil
}

// Match reports whether a SAN of cert of the matcher's type matches.
func (m *SANMatcher) Match(cert *x509.Certificate) bool {
	switch m.Type {
	case SANDNS:
		for _, n := range cert.DNSNames {
			if m.str.Match(n) || (m.isExact && wildcardMatch(n, m.exact)) {
				return true
			}
		}
	case SANURI:
		for _, u := range cert.URIs {
			if m.str.Match(u.String()) {
				return true
			}
		}
	case SANEmail:
		for _, e := range cert.EmailAddresses {
			if m.str.Match(e) {
				return true
			}
		}
	case SANIP:
		for _, ip := range cert.IPAddresses {
			if m.str.Match(ip.String()) {
				return true
			}
		}
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
