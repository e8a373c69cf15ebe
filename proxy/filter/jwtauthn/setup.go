package jwtauthn

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
)

// Name is the filter's Envoy name.
const Name = "envoy.filters.http.jwt_authn"

// DefaultClockSkew is Envoy's default leeway for exp and nbf.
const DefaultClockSkew = 60 * time.Second

func init() {
	filter.RegisterHCM(Name, func(cfg *anypb.Any, _ filter.HCMOptions) (filter.Filter, error) {
		f, err := Parse(cfg)
		if err != nil {
			return nil, err
		}
		return f, nil
	})
}

// Parse validates an envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
// packed in cfg and compiles it.
func Parse(cfg *anypb.Any) (*Filter, error) {
	m := &jwtv3.JwtAuthentication{}
	if err := cfg.UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	return ParseMessage(m)
}

// ParseMessage validates m; see README.md for the fields read.
func ParseMessage(m *jwtv3.JwtAuthentication) (*Filter, error) {
	if err := contract.CheckFields(m, "providers", "rules", "bypass_cors_preflight", "stat_prefix"); err != nil {
		return nil, err
	}
	f := &Filter{providers: map[string]*provider{}, bypassCORS: m.GetBypassCorsPreflight(), now: time.Now}
	names := make([]string, 0, len(m.GetProviders()))
	for name := range m.GetProviders() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p, err := parseProvider(m.GetProviders()[name])
		if err != nil {
			return nil, fmt.Errorf("providers[%q].%w", name, err)
		}
		p.name = name
		f.providers[name] = p
		f.order = append(f.order, p)
		owned := []string{p.payloadHeader}
		for _, ch := range p.claimHeaders {
			owned = append(owned, ch.header)
		}
		for _, h := range owned {
			if h != "" && !slices.Contains(f.ownedHeaders, h) {
				f.ownedHeaders = append(f.ownedHeaders, h)
			}
		}
	}
	for i, r := range m.GetRules() {
		rl, err := f.parseRule(r)
		if err != nil {
			return nil, fmt.Errorf("rules[%d].%w", i, err)
		}
		f.rules = append(f.rules, rl)
	}
	return f, nil
}

func parseProvider(p *jwtv3.JwtProvider) (*provider, error) {
	if p == nil {
		return nil, fmt.Errorf("local_jwks: required")
	}
	if err := contract.CheckFields(p, "issuer", "audiences", "local_jwks", "forward", "from_headers", "from_params",
		"claim_to_headers", "payload_in_metadata", "clock_skew_seconds", "from_cookies", "forward_payload_header",
		"pad_forward_payload_header", "normalize_payload_in_metadata"); err != nil {
		return nil, err
	}
	out := &provider{
		issuer:     p.GetIssuer(),
		forward:    p.GetForward(),
		payloadKey: p.GetPayloadInMetadata(),
		skew:       DefaultClockSkew,
	}
	if s := p.GetClockSkewSeconds(); s != 0 {
		out.skew = time.Duration(s) * time.Second
	}
	for _, a := range p.GetAudiences() {
		out.audiences = append(out.audiences, normalizeAudience(a))
	}
	src := p.GetLocalJwks()
	if src == nil {
		return nil, fmt.Errorf("local_jwks: required (remote_jwks is fetched by the control plane)")
	}
	if err := contract.CheckFields(src, "inline_string", "inline_bytes"); err != nil {
		return nil, fmt.Errorf("local_jwks.%w", err)
	}
	doc, field := src.GetInlineString(), "inline_string"
	if b := src.GetInlineBytes(); b != nil {
		doc, field = string(b), "inline_bytes"
	}
	ks, err := ParseKeySet(doc)
	if err != nil {
		return nil, fmt.Errorf("local_jwks.%s: %w", field, err)
	}
	out.keys = ks
	for i, h := range p.GetFromHeaders() {
		if err := contract.CheckFields(h, "name", "value_prefix"); err != nil {
			return nil, fmt.Errorf("from_headers[%d].%w", i, err)
		}
		if h.GetName() == "" || strings.HasPrefix(h.GetName(), ":") {
			return nil, fmt.Errorf("from_headers[%d].name: %q is not a header name", i, h.GetName())
		}
		out.headers = append(out.headers, headerLoc{key: http.CanonicalHeaderKey(h.GetName()), prefix: h.GetValuePrefix()})
	}
	for i, q := range p.GetFromParams() {
		if q == "" {
			return nil, fmt.Errorf("from_params[%d]: empty", i)
		}
		out.params = append(out.params, q)
	}
	for i, c := range p.GetFromCookies() {
		if c == "" {
			return nil, fmt.Errorf("from_cookies[%d]: empty", i)
		}
		out.cookies = append(out.cookies, c)
	}
	if h := p.GetForwardPayloadHeader(); h != "" {
		if strings.HasPrefix(h, ":") || strings.ContainsAny(h, " :\r\n") {
			return nil, fmt.Errorf("forward_payload_header: %q is not a header name", h)
		}
		out.payloadHeader = http.CanonicalHeaderKey(h)
		out.padPayload = p.GetPadForwardPayloadHeader()
	}
	if np := p.GetNormalizePayloadInMetadata(); np != nil {
		if err := contract.CheckFields(np, "space_delimited_claims"); err != nil {
			return nil, fmt.Errorf("normalize_payload_in_metadata.%w", err)
		}
		for i, c := range np.GetSpaceDelimitedClaims() {
			if c == "" {
				return nil, fmt.Errorf("normalize_payload_in_metadata.space_delimited_claims[%d]: empty", i)
			}
			out.spaceDelimited = append(out.spaceDelimited, strings.Split(c, "."))
		}
	}
	out.authnSplit = slices.Concat(istioSpaceDelimited, out.spaceDelimited)
	if len(out.headers) == 0 && len(out.params) == 0 && len(out.cookies) == 0 {
		// Envoy's default locations.
		out.headers = []headerLoc{{key: "Authorization", prefix: "Bearer "}}
		out.params = []string{"access_token"}
	}
	for i, c := range p.GetClaimToHeaders() {
		if err := contract.CheckFields(c, "header_name", "claim_name"); err != nil {
			return nil, fmt.Errorf("claim_to_headers[%d].%w", i, err)
		}
		if c.GetHeaderName() == "" || strings.HasPrefix(c.GetHeaderName(), ":") || strings.ContainsAny(c.GetHeaderName(), " :\r\n") {
			return nil, fmt.Errorf("claim_to_headers[%d].header_name: %q is not a header name", i, c.GetHeaderName())
		}
		if c.GetClaimName() == "" {
			return nil, fmt.Errorf("claim_to_headers[%d].claim_name: empty", i)
		}
		out.claimHeaders = append(out.claimHeaders, claimHeader{
			header: http.CanonicalHeaderKey(c.GetHeaderName()),
			claim:  strings.Split(c.GetClaimName(), "."),
		})
	}
	return out, nil
}

func (f *Filter) parseRule(r *jwtv3.RequirementRule) (rule, error) {
	var out rule
	if err := contract.CheckFields(r, "match", "requires"); err != nil {
		return out, err
	}
	m := r.GetMatch()
	if m == nil {
		return out, fmt.Errorf("match: required")
	}
	if err := contract.CheckFields(m, "prefix", "path", "safe_regex"); err != nil {
		return out, fmt.Errorf("match.%w", err)
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.prefix = ps.Prefix
	case *routev3.RouteMatch_Path:
		out.path, out.exact = ps.Path, true
	case *routev3.RouteMatch_SafeRegex:
		re, err := filter.CompileRegex(ps.SafeRegex)
		if err != nil {
			return out, fmt.Errorf("match.safe_regex.%w", err)
		}
		out.re = re
	default:
		return out, fmt.Errorf("match.path_specifier: one of prefix, path, safe_regex required")
	}
	if r.GetRequires() != nil {
		req, err := f.parseRequirement(r.GetRequires(), 0)
		if err != nil {
			return out, fmt.Errorf("requires.%w", err)
		}
		out.req = &req
	}
	return out, nil
}

// maxDepth bounds the nesting of requires_any/requires_all.
const maxDepth = 16

func (f *Filter) parseRequirement(r *jwtv3.JwtRequirement, depth int) (requirement, error) {
	var out requirement
	if depth > maxDepth {
		return out, fmt.Errorf("requires_type: nested deeper than %d", maxDepth)
	}
	if err := contract.CheckFields(r, "provider_name", "provider_and_audiences", "requires_any", "requires_all",
		"allow_missing", "allow_missing_or_failed"); err != nil {
		return out, err
	}
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		p := f.providers[t.ProviderName]
		if p == nil {
			return out, fmt.Errorf("provider_name: no provider %q", t.ProviderName)
		}
		out.kind, out.p = reqProvider, p
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		pa := t.ProviderAndAudiences
		if err := contract.CheckFields(pa, "provider_name", "audiences"); err != nil {
			return out, fmt.Errorf("provider_and_audiences.%w", err)
		}
		p := f.providers[pa.GetProviderName()]
		if p == nil {
			return out, fmt.Errorf("provider_and_audiences.provider_name: no provider %q", pa.GetProviderName())
		}
		out.kind, out.p = reqProvider, p
		out.audiences = []string{}
		for _, a := range pa.GetAudiences() {
			out.audiences = append(out.audiences, normalizeAudience(a))
		}
	case *jwtv3.JwtRequirement_RequiresAny:
		out.kind = reqAny
		if len(t.RequiresAny.GetRequirements()) < 2 {
			return out, fmt.Errorf("requires_any.requirements: at least two required")
		}
		for i, k := range t.RequiresAny.GetRequirements() {
			kid, err := f.parseRequirement(k, depth+1)
			if err != nil {
				return out, fmt.Errorf("requires_any.requirements[%d].%w", i, err)
			}
			out.kids = append(out.kids, kid)
		}
	case *jwtv3.JwtRequirement_RequiresAll:
		out.kind = reqAll
		if len(t.RequiresAll.GetRequirements()) < 2 {
			return out, fmt.Errorf("requires_all.requirements: at least two required")
		}
		for i, k := range t.RequiresAll.GetRequirements() {
			kid, err := f.parseRequirement(k, depth+1)
			if err != nil {
				return out, fmt.Errorf("requires_all.requirements[%d].%w", i, err)
			}
			out.kids = append(out.kids, kid)
		}
	case *jwtv3.JwtRequirement_AllowMissing:
		out.kind = reqAllowMissing
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		out.kind = reqAllowMissingOrFailed
	default:
		return out, fmt.Errorf("requires_type: required")
	}
	return out, nil
}

// normalizeAudience drops a scheme and a trailing slash, as Envoy compares
// audiences.
func normalizeAudience(a string) string {
	a = strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")
	return strings.TrimSuffix(a, "/")
}
