package filter

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weft-mesh/weft/proxy/contract"
)

// Pseudo identifies the HTTP/2 pseudo-header a header name stands for.
type Pseudo uint8

// The pseudo-headers header matchers and hash policies may name.
const (
	PseudoNone      Pseudo = iota // a plain header
	PseudoMethod                  // :method
	PseudoAuthority               // :authority, or host
	PseudoPath                    // :path
	PseudoScheme                  // :scheme
)

// HeaderName is a parsed header name: a pseudo-header, or a plain header
// by its canonical key.
type HeaderName struct {
	Pseudo Pseudo
	Key    string // canonical key of a plain header, "" for a pseudo-header
}

// ParseHeaderName parses name, case-insensitively: ":method", ":authority"
// (or "host"), ":path", ":scheme", or a plain header. Errors name no field:
// the caller prefixes it.
func ParseHeaderName(name string) (HeaderName, error) {
	switch name = strings.ToLower(name); name {
	case "":
		return HeaderName{}, errors.New("empty")
	case ":method":
		return HeaderName{Pseudo: PseudoMethod}, nil
	case ":authority", "host":
		return HeaderName{Pseudo: PseudoAuthority}, nil
	case ":path":
		return HeaderName{Pseudo: PseudoPath}, nil
	case ":scheme":
		return HeaderName{Pseudo: PseudoScheme}, nil
	}
	if strings.HasPrefix(name, ":") {
		return HeaderName{}, fmt.Errorf("unsupported pseudo-header %q", name)
	}
	return HeaderName{Key: http.CanonicalHeaderKey(name)}, nil
}

// PseudoHeaders are the values of :authority and :path a caller has already
// worked out for a request, so header matching sees the same ones it does.
type PseudoHeaders struct {
	Authority string
	Path      string // :path, or its part before "?" when Query is set
	Query     string // the raw query, if not already in Path
}

// HeaderMatcher is a compiled envoy.config.route.v3.HeaderMatcher.
type HeaderMatcher struct {
	name         HeaderName
	present      bool // present_match value, when isPresent
	isPresent    bool
	sm           StringMatcher
	invert       bool
	missingEmpty bool

	// InvertMissing selects proxy/route's semantics for a header the
	// request lacks: it is a mismatch that invert_match turns into a match
	// (an inverted string matcher matches a request without the header),
	// and present_match sees the header's real presence even with
	// treat_missing_header_as_empty. Without it, Envoy's: a missing header
	// not treated as empty matches only a presence check.
	InvertMissing bool
}

// CompileHeaderMatcher compiles h: a pseudo-header (:method, :authority or
// host, :path, :scheme) or a plain header, matched by string_match, one of
// the older exact/prefix/suffix/contains/safe_regex_match forms, or
// present_match (also what no specifier means, as in Envoy); invert_match
// and treat_missing_header_as_empty. Errors name the field relative to h.
func CompileHeaderMatcher(h *routev3.HeaderMatcher) (HeaderMatcher, error) {
	var out HeaderMatcher
	if err := contract.CheckFields(h, "name", "string_match", "present_match", "invert_match",
		"treat_missing_header_as_empty", "exact_match", "safe_regex_match", "prefix_match",
		"suffix_match", "contains_match"); err != nil {
		return out, err
	}
	name, err := ParseHeaderName(h.GetName())
	if err != nil {
		return out, fmt.Errorf("name: %w", err)
	}
	out.name, out.invert, out.missingEmpty = name, h.GetInvertMatch(), h.GetTreatMissingHeaderAsEmpty()
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		out.isPresent, out.present = true, s.PresentMatch
	case *routev3.HeaderMatcher_StringMatch:
		if out.sm, err = CompileStringMatcher(s.StringMatch); err != nil {
			return out, fmt.Errorf("string_match.%w", err)
		}
	case *routev3.HeaderMatcher_ExactMatch:
		out.sm = StringMatcher{kind: strExact, value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		out.sm = StringMatcher{kind: strPrefix, value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		out.sm = StringMatcher{kind: strSuffix, value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		out.sm = StringMatcher{kind: strContains, value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := CompileRegex(s.SafeRegexMatch)
		if err != nil {
			return out, fmt.Errorf("safe_regex_match.%w", err)
		}
		out.sm = StringMatcher{kind: strRegex, re: re}
	default:
		out.isPresent, out.present = true, true // no specifier: presence, as in Envoy
	}
	return out, nil
}

// Match reports whether h matches r. ph gives :authority and :path; when
// ph is nil they come from r: the absolute-form URL's host or else Host,
// and the request-target as received. Several values of a plain header are
// joined with ",", as Envoy does. Match allocates only to join several
// values, or for :path when ph has a Query.
func (h *HeaderMatcher) Match(r *http.Request, ph *PseudoHeaders) bool {
	v, ok := h.value(r, ph)
	if !ok && !h.missingEmpty && !h.InvertMissing {
		// Envoy: only present_match: false, or present_match: true
		// inverted, matches a missing header.
		return h.isPresent && h.present == h.invert
	}
	var m bool
	if h.isPresent {
		m = h.present == (ok || !h.InvertMissing)
	} else {
		m = (ok || h.missingEmpty) && h.sm.Match(v)
	}
	return m != h.invert
}

func (h *HeaderMatcher) value(r *http.Request, ph *PseudoHeaders) (string, bool) {
	switch h.name.Pseudo {
	case PseudoMethod:
		return r.Method, true
	case PseudoAuthority:
		if ph != nil {
			return ph.Authority, true
		}
		if r.URL.Host != "" {
			return r.URL.Host, true // absolute-form request through HTTP_PROXY
		}
		return r.Host, true
	case PseudoPath:
		if ph != nil {
			if ph.Query != "" {
				return ph.Path + "?" + ph.Query, true
			}
			return ph.Path, true
		}
		if u := r.RequestURI; u != "" && u[0] == '/' {
			return u, true
		}
		return r.URL.RequestURI(), true
	case PseudoScheme:
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs := r.Header[h.name.Key]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}
