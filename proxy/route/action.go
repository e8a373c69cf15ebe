package route

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weft-mesh/weft/proxy/filter"
)

// DirectResponse is a Route.direct_response: answer locally.
type DirectResponse struct {
	Status int
	Body   string
}

// Redirect is a compiled Route.redirect.
type Redirect struct {
	// Code is 301, 302, 303, 307 or 308.
	Code   int
	scheme string
	host   string
	port   string
	path   string // path_redirect, "" when unset
	prefix *string
	regex  *regexRewrite
	strip  bool
}

// regexRewrite is a compiled RegexMatchAndSubstitute.
type regexRewrite struct {
	re  *regexp.Regexp
	sub string // Go regexp template
}

func compileRegexRewrite(m *matcherv3.RegexMatchAndSubstitute) (*regexRewrite, error) {
	if err := contract.CheckFields(m, "pattern", "substitution"); err != nil {
		return nil, err
	}
	if m.GetPattern() == nil {
		return nil, fmt.Errorf("pattern: required")
	}
	if err := contract.CheckFields(m.GetPattern(), "regex", "google_re2"); err != nil {
		return nil, fmt.Errorf("pattern.%w", err)
	}
	re, err := regexp.Compile(m.GetPattern().GetRegex())
	if err != nil {
		return nil, fmt.Errorf("pattern.regex: %w", err)
	}
	sub, err := re2Substitution(m.GetSubstitution(), re.NumSubexp())
	if err != nil {
		return nil, fmt.Errorf("substitution: %w", err)
	}
	return &regexRewrite{re: re, sub: sub}, nil
}

// re2Substitution converts an RE2 rewrite string (\0..\9 capture groups, \\
// a backslash) to a Go regexp template.
func re2Substitution(s string, groups int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '$':
			b.WriteString("$$")
		case '\\':
			i++
			if i == len(s) {
				return "", fmt.Errorf("%q ends with a lone backslash", s)
			}
			d := s[i]
			switch {
			case d == '\\':
				b.WriteByte('\\')
			case d >= '0' && d <= '9':
				if int(d-'0') > groups {
					return "", fmt.Errorf("%q refers to group %c, the pattern has %d", s, d, groups)
				}
				b.WriteString("${")
				b.WriteByte(d)
				b.WriteByte('}')
			default:
				return "", fmt.Errorf("%q: invalid escape \\%c", s, d)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func (rr *regexRewrite) apply(path string) string {
	return rr.re.ReplaceAllString(path, rr.sub)
}

// RetryOn is a set of retry_on conditions.
type RetryOn uint32

// Retry conditions, as in Envoy's x-envoy-retry-on / x-envoy-retry-grpc-on.
const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryReset
	RetryConnectFailure
	RetryRetriable4xx
	RetryRefusedStream
	RetryRetriableStatusCodes
	RetryGRPCCancelled
	RetryGRPCDeadlineExceeded
	RetryGRPCInternal
	RetryGRPCResourceExhausted
	RetryGRPCUnavailable
)

var retryOnNames = map[string]RetryOn{
	"5xx":                    Retry5xx,
	"gateway-error":          RetryGatewayError,
	"reset":                  RetryReset,
	"connect-failure":        RetryConnectFailure,
	"retriable-4xx":          RetryRetriable4xx,
	"refused-stream":         RetryRefusedStream,
	"retriable-status-codes": RetryRetriableStatusCodes,
	"cancelled":              RetryGRPCCancelled,
	"deadline-exceeded":      RetryGRPCDeadlineExceeded,
	"internal":               RetryGRPCInternal,
	"resource-exhausted":     RetryGRPCResourceExhausted,
	"unavailable":            RetryGRPCUnavailable,
}

// RetryPolicy is a compiled RouteAction.retry_policy.
type RetryPolicy struct {
	On RetryOn
	// NumRetries is the retries allowed after the first attempt (default 1).
	NumRetries int
	// PerTryTimeout bounds each attempt; 0 means only the route timeout.
	PerTryTimeout time.Duration
	// StatusCodes are the retriable_status_codes.
	StatusCodes []int
	// PreviousHosts: retries prefer an endpoint not tried yet, re-picking up
	// to HostSelectionMaxAttempts times.
	PreviousHosts            bool
	HostSelectionMaxAttempts int
	// BaseInterval and MaxInterval drive the jittered exponential back-off:
	// before retry n (1-based) wait a random time in
	// [0, min((2^n - 1) * BaseInterval, MaxInterval)).
	BaseInterval, MaxInterval time.Duration
}

// PreviousHostsPredicate is the retry host predicate name.
const PreviousHostsPredicate = "envoy.retry_host_predicates.previous_hosts"

func compileRetryPolicy(p *routev3.RetryPolicy) (*RetryPolicy, error) {
	if err := contract.CheckFields(p, "retry_on", "num_retries", "per_try_timeout", "retry_host_predicate",
		"host_selection_retry_max_attempts", "retriable_status_codes", "retry_back_off"); err != nil {
		return nil, err
	}
	out := &RetryPolicy{NumRetries: 1, HostSelectionMaxAttempts: 1, BaseInterval: 25 * time.Millisecond}
	for tok := range strings.SplitSeq(p.GetRetryOn(), ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		on, ok := retryOnNames[tok]
		if !ok {
			return nil, fmt.Errorf("retry_on: unsupported condition %q", tok)
		}
		out.On |= on
	}
	if n := p.GetNumRetries(); n != nil {
		out.NumRetries = int(n.GetValue())
	}
	if d := p.GetPerTryTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, fmt.Errorf("per_try_timeout: invalid duration")
		}
		out.PerTryTimeout = d.AsDuration()
	}
	for i, c := range p.GetRetriableStatusCodes() {
		if c < 100 || c > 599 {
			return nil, fmt.Errorf("retriable_status_codes[%d]: %d is not an HTTP status", i, c)
		}
		out.StatusCodes = append(out.StatusCodes, int(c))
	}
	for i, hp := range p.GetRetryHostPredicate() {
		if err := contract.CheckFields(hp, "name", "typed_config"); err != nil {
			return nil, fmt.Errorf("retry_host_predicate[%d].%w", i, err)
		}
		if tc := hp.GetTypedConfig(); tc != nil && !tc.MessageIs(&previoushostsv3.PreviousHostsPredicate{}) {
			return nil, fmt.Errorf("retry_host_predicate[%d].typed_config: unsupported type %s", i, tc.GetTypeUrl())
		}
		if hp.GetName() != PreviousHostsPredicate && hp.GetTypedConfig() == nil {
			return nil, fmt.Errorf("retry_host_predicate[%d].name: unsupported predicate %q", i, hp.GetName())
		}
		out.PreviousHosts = true
	}
	if n := p.GetHostSelectionRetryMaxAttempts(); n > 0 {
		out.HostSelectionMaxAttempts = int(min(n, 100))
	} else if n < 0 {
		return nil, fmt.Errorf("host_selection_retry_max_attempts: negative")
	}
	if bo := p.GetRetryBackOff(); bo != nil {
		if err := contract.CheckFields(bo, "base_interval", "max_interval"); err != nil {
			return nil, fmt.Errorf("retry_back_off.%w", err)
		}
		d := bo.GetBaseInterval()
		if d == nil || d.CheckValid() != nil || d.AsDuration() < time.Millisecond {
			return nil, fmt.Errorf("retry_back_off.base_interval: must be at least 1ms")
		}
		out.BaseInterval = d.AsDuration()
		if m := bo.GetMaxInterval(); m != nil {
			if m.CheckValid() != nil || m.AsDuration() < out.BaseInterval {
				return nil, fmt.Errorf("retry_back_off.max_interval: must be at least base_interval")
			}
			out.MaxInterval = m.AsDuration()
		}
	}
	if out.MaxInterval == 0 {
		out.MaxInterval = 10 * out.BaseInterval
	}
	return out, nil
}

// RetriableStatus reports whether a response with code, and grpcStatus (its
// grpc-status header, "" if none), is retriable under p.
func (p *RetryPolicy) RetriableStatus(code int, grpcStatus string) bool {
	on := p.On
	switch {
	case on&Retry5xx != 0 && code >= 500 && code <= 599:
		return true
	case on&RetryGatewayError != 0 && (code == 502 || code == 503 || code == 504):
		return true
	case on&RetryRetriable4xx != 0 && code == 409:
		return true
	}
	if on&RetryRetriableStatusCodes != 0 {
		for _, c := range p.StatusCodes {
			if c == code {
				return true
			}
		}
	}
	if grpcStatus != "" && on&(RetryGRPCCancelled|RetryGRPCDeadlineExceeded|RetryGRPCInternal|RetryGRPCResourceExhausted|RetryGRPCUnavailable) != 0 {
		switch grpcStatus {
		case "1":
			return on&RetryGRPCCancelled != 0
		case "4":
			return on&RetryGRPCDeadlineExceeded != 0
		case "8":
			return on&RetryGRPCResourceExhausted != 0
		case "13":
			return on&RetryGRPCInternal != 0
		case "14":
			return on&RetryGRPCUnavailable != 0
		}
	}
	return false
}

// Failure is why an attempt got no response.
type Failure uint8

// Attempt failures.
const (
	FailConnect       Failure = iota + 1 // could not connect
	FailReset                            // connection closed or reset before a response
	FailRefusedStream                    // HTTP/2 REFUSED_STREAM
	FailPerTryTimeout                    // per_try_timeout fired
)

// RetriableFailure reports whether an attempt that failed with f may be
// retried under p, as Envoy's retry state decides for resets.
func (p *RetryPolicy) RetriableFailure(f Failure) bool {
	any := p.On&(Retry5xx|RetryGatewayError|RetryReset) != 0
	switch f {
	case FailConnect:
		return any || p.On&RetryConnectFailure != 0
	case FailRefusedStream:
		return any || p.On&RetryRefusedStream != 0
	}
	return any
}

// Backoff returns how long to wait before retry n (1-based): a uniformly
// random duration in [0, min((2^n-1)*base, max)), Envoy's jittered
// exponential back-off. r is a random uint64.
func (p *RetryPolicy) Backoff(n int, r uint64) time.Duration {
	mult := uint64(1)<<min(n, 30) - 1
	ceil := time.Duration(mult) * p.BaseInterval
	if ceil > p.MaxInterval || ceil <= 0 {
		ceil = p.MaxInterval
	}
	return time.Duration(r % uint64(ceil))
}

// MirrorPolicy is one compiled request_mirror_policies entry.
type MirrorPolicy struct {
	Cluster string
	// Fraction of requests mirrored (runtime_fraction.default_value;
	// absent: all).
	Fraction filter.Fraction
	// NoSuffix is disable_shadow_host_suffix_append.
	NoSuffix bool
}

func compileMirror(m *routev3.RouteAction_RequestMirrorPolicy) (MirrorPolicy, error) {
	out := MirrorPolicy{Cluster: m.GetCluster(), Fraction: filter.Always, NoSuffix: m.GetDisableShadowHostSuffixAppend()}
	if err := contract.CheckFields(m, "cluster", "runtime_fraction", "trace_sampled", "disable_shadow_host_suffix_append"); err != nil {
		return out, err
	}
	if out.Cluster == "" {
		return out, fmt.Errorf("cluster: empty")
	}
	if rf := m.GetRuntimeFraction(); rf != nil {
		if err := contract.CheckFields(rf, "default_value", "runtime_key"); err != nil {
			return out, fmt.Errorf("runtime_fraction.%w", err)
		}
		f, err := filter.ParseFraction(rf.GetDefaultValue())
		if err != nil {
			return out, fmt.Errorf("runtime_fraction.default_value.%w", err)
		}
		out.Fraction = f
	}
	return out, nil
}

// ShadowHost returns the authority for a mirrored request: "-shadow" appended
// to the host, before any port ("foo:8080" -> "foo-shadow:8080"), as Envoy does.
func ShadowHost(authority string) string {
	if h, ok := stripPort(authority); ok {
		return h + "-shadow" + authority[len(h):]
	}
	return authority + "-shadow"
}

func compileRedirect(r *routev3.RedirectAction, m *matcher) (*Redirect, error) {
	if err := contract.CheckFields(r, "scheme_redirect", "https_redirect", "host_redirect", "port_redirect",
		"path_redirect", "prefix_rewrite", "regex_rewrite", "response_code", "strip_query"); err != nil {
		return nil, err
	}
	out := &Redirect{host: r.GetHostRedirect(), strip: r.GetStripQuery()}
	switch r.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		out.Code = http.StatusMovedPermanently
	case routev3.RedirectAction_FOUND:
		out.Code = http.StatusFound
	case routev3.RedirectAction_SEE_OTHER:
		out.Code = http.StatusSeeOther
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		out.Code = http.StatusTemporaryRedirect
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		out.Code = http.StatusPermanentRedirect
	default:
		return nil, fmt.Errorf("response_code: unsupported %v", r.GetResponseCode())
	}
	switch s := r.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			out.scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		out.scheme = strings.ToLower(s.SchemeRedirect)
		if out.scheme != "http" && out.scheme != "https" {
			return nil, fmt.Errorf("scheme_redirect: unsupported scheme %q", s.SchemeRedirect)
		}
	}
	if strings.ContainsAny(out.host, "/?# \t\r\n") {
		return nil, fmt.Errorf("host_redirect: invalid host %q", out.host)
	}
	if p := r.GetPortRedirect(); p != 0 {
		if p > 65535 {
			return nil, fmt.Errorf("port_redirect: %d out of range", p)
		}
		out.port = strconv.Itoa(int(p))
	}
	switch s := r.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		if !strings.HasPrefix(s.PathRedirect, "/") || !validValue(s.PathRedirect) {
			return nil, fmt.Errorf("path_redirect: %q must be a path starting with /", s.PathRedirect)
		}
		out.path = s.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		if !validValue(s.PrefixRewrite) {
			return nil, fmt.Errorf("prefix_rewrite: invalid %q", s.PrefixRewrite)
		}
		out.prefix = &s.PrefixRewrite
	case *routev3.RedirectAction_RegexRewrite:
		rr, err := compileRegexRewrite(s.RegexRewrite)
		if err != nil {
			return nil, fmt.Errorf("regex_rewrite.%w", err)
		}
		out.regex = rr
	}
	return out, nil
}

// RedirectURL returns the Location for a redirect route answering r, whose
// authority is given: the configured scheme, host, port and path replace the
// request's; the query is kept unless strip_query, and a query in
// path_redirect replaces it. A port is dropped when the scheme changes and
// the port is the scheme's default (80/443) or when it is the new scheme's
// default.
func (rt *Route) RedirectURL(r *http.Request, authority string) string {
	rd := rt.Redirect
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	orig := scheme
	if rd.scheme != "" {
		scheme = rd.scheme
	}
	host := authority
	if rd.host != "" {
		host = rd.host
	}
	bare, hasPort := stripPort(host)
	port := ""
	if hasPort {
		port = host[len(bare)+1:]
	}
	if rd.port != "" {
		port = rd.port
	} else if scheme != orig && (port == "80" || port == "443") {
		port = ""
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	query := r.URL.RawQuery
	if rd.strip {
		query = ""
	}
	switch {
	case rd.path != "":
		p, q, hasQ := strings.Cut(rd.path, "?")
		path = p
		if hasQ {
			query = q
		}
	case rd.prefix != nil:
		path = rt.match.rewritePrefix(path, *rd.prefix)
	case rd.regex != nil:
		path = rd.regex.apply(path)
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(bare)
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	b.WriteString(path)
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

// rewritePrefix replaces the part of path the route matched with rewrite:
// the prefix for a prefix match, the whole path for path and regex matches.
func (m *matcher) rewritePrefix(path, rewrite string) string {
	if m.kind == pathPrefix && len(path) >= len(m.value) {
		return rewrite + path[len(m.value):]
	}
	return rewrite
}

// RewritesPath reports whether the route rewrites the upstream path.
func (rt *Route) RewritesPath() bool { return rt.prefixRewrite != nil || rt.regexRewrite != nil }

// RewritePath applies prefix_rewrite or regex_rewrite to u, the upstream URL,
// on its escaped path; the query is kept.
func (rt *Route) RewritePath(u *url.URL) {
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	switch {
	case rt.prefixRewrite != nil:
		path = rt.match.rewritePrefix(path, *rt.prefixRewrite)
	case rt.regexRewrite != nil:
		path = rt.regexRewrite.apply(path)
	default:
		return
	}
	if p, err := url.PathUnescape(path); err == nil {
		u.Path, u.RawPath = p, path
	} else {
		u.Path, u.RawPath = path, ""
	}
}
