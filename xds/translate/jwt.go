package translate

import (
	"encoding/json"
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/emptypb"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
)

// EmptyJWKS is the key set of an issuer whose keys are unknown (not
// fetched yet, or the fetch failed): no token verifies against it.
const EmptyJWKS = `{"keys":[]}`

// JWTProviderName names the provider for the i-th jwtRules entry over all
// RequestAuthentications selecting a proxy, in namespace/name order.
func JWTProviderName(i int) string { return fmt.Sprintf("origins-%d", i) }

// jwtFilter builds the jwt_authn filter for the RequestAuthentications
// selecting the proxy, or nil when there are none. A request without a
// token passes (authorization decides); one with a token no provider
// accepts is refused.
func (g *generator) jwtFilter(ras []*config.Object) *hcm.HttpFilter {
	ja := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}}
	var reqs []*jwtv3.JwtRequirement
	n := 0
	for _, o := range ras {
		ra, ok := o.Spec.(*security.RequestAuthentication)
		if !ok {
			continue
		}
		for i, rule := range ra.GetJwtRules() {
			name := JWTProviderName(n)
			n++
			p, err := g.jwtProvider(rule)
			if err != nil {
				g.r.problem("RequestAuthentication %s/%s: jwtRules[%d].%v", o.Meta.Namespace, o.Meta.Name, i, err)
				continue
			}
			ja.Providers[name] = p
			reqs = append(reqs, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: name}})
		}
	}
	if len(reqs) == 0 {
		return nil
	}
	reqs = append(reqs, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	ja.Rules = []*jwtv3.RequirementRule{{
		Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
			RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: reqs}},
		}},
	}}
	cfg := g.toAny("jwt_authn", ja)
	if cfg == nil {
		return nil
	}
	return httpFilter(jwtFilterName, cfg)
}

// jwtProvider translates one jwtRules entry. The key set is inlined: the
// rule's own jwks, else the control plane's cached copy of jwksUri.
func (g *generator) jwtProvider(rule *security.JWTRule) (*jwtv3.JwtProvider, error) {
	if rule.GetIssuer() == "" {
		return nil, fmt.Errorf("issuer: required")
	}
	jwks := EmptyJWKS
	switch {
	case rule.GetJwks() != "":
		if err := checkJWKS(rule.GetJwks()); err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		jwks = rule.GetJwks()
	case rule.GetJwksUri() != "":
		// A document that is not a key set (an error page, say) is
		// nothing the user can fix here: it verifies nothing, like a
		// failed fetch, instead of blocking every other change.
		if doc, ok := g.s.JWKS(rule.GetJwksUri()); ok && checkJWKS(doc) == nil {
			jwks = doc
		}
	}
	p := &jwtv3.JwtProvider{
		Issuer:            rule.GetIssuer(),
		Audiences:         rule.GetAudiences(),
		Forward:           rule.GetForwardOriginalToken(),
		FromParams:        rule.GetFromParams(),
		FromCookies:       rule.GetFromCookies(),
		PayloadInMetadata: rule.GetIssuer(),
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &core.DataSource{
			Specifier: &core.DataSource_InlineString{InlineString: jwks},
		}},
		ForwardPayloadHeader: rule.GetOutputPayloadToHeader(),
	}
	for i, h := range rule.GetFromHeaders() {
		if h.GetName() == "" {
			return nil, fmt.Errorf("fromHeaders[%d].name: required", i)
		}
		p.FromHeaders = append(p.FromHeaders, &jwtv3.JwtHeader{Name: h.GetName(), ValuePrefix: h.GetPrefix()})
	}
	if len(p.FromHeaders) == 0 && len(p.FromParams) == 0 && len(p.FromCookies) == 0 {
		// Envoy's defaults, written out so every proxy reads the same.
		p.FromHeaders = []*jwtv3.JwtHeader{{Name: "Authorization", ValuePrefix: "Bearer "}}
		p.FromParams = []string{"access_token"}
	}
	for i, c := range rule.GetOutputClaimToHeaders() {
		if c.GetHeader() == "" || c.GetClaim() == "" {
			return nil, fmt.Errorf("outputClaimToHeaders[%d]: header and claim are required", i)
		}
		p.ClaimToHeaders = append(p.ClaimToHeaders, &jwtv3.JwtClaimToHeader{HeaderName: c.GetHeader(), ClaimName: c.GetClaim()})
	}
	if sdc := rule.GetSpaceDelimitedClaims(); len(sdc) > 0 {
		p.NormalizePayloadInMetadata = &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: sdc}
	}
	if err := checkBuilt(p); err != nil {
		return nil, fmt.Errorf("issuer %q: %w", rule.GetIssuer(), err)
	}
	return p, nil
}

// checkJWKS accepts a JSON object with a "keys" array, the shape of a JWK
// Set (RFC 7517 section 5); the keys themselves are the proxy's to judge.
func checkJWKS(doc string) error {
	var set struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &set); err != nil {
		return fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if set.Keys == nil {
		return fmt.Errorf("not a JSON Web Key Set: no \"keys\" array")
	}
	return nil
}
