package translate

import (
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/emptypb"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// testJWKS has the shape of a key set; the translator does not judge keys.
const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`

func jwtConfig(t *testing.T, r *Resources, listenerName string) *jwtv3.JwtAuthentication {
	t.Helper()
	for _, f := range manager(t, r, listenerName).GetHttpFilters() {
		if f.GetName() == "envoy.filters.http.jwt_authn" {
			ja := &jwtv3.JwtAuthentication{}
			if err := f.GetTypedConfig().UnmarshalTo(ja); err != nil {
				t.Fatal(err)
			}
			return ja
		}
	}
	return nil
}

func requestAuthn(namespace, name string, rules ...*security.JWTRule) *config.Object {
	return objNS(config.KindRequestAuthentication, namespace, name, &security.RequestAuthentication{JwtRules: rules})
}

func inlineJWKS(s string) *jwtv3.JwtProvider_LocalJwks {
	return &jwtv3.JwtProvider_LocalJwks{LocalJwks: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: s}}}
}

func TestRequestAuthentication(t *testing.T) {
	const uri = "https://issuer.example/jwks"
	fetched := map[string]string{uri: testJWKS}
	objs := coolapp(webService(),
		// Root-namespace policies without selector apply to every workload;
		// providers are numbered in namespace/name order.
		requestAuthn(model.RootNamespace, "mesh", &security.JWTRule{Issuer: "mesh-issuer", JwksUri: uri}),
		requestAuthn(ns, "b", &security.JWTRule{Issuer: "pending", JwksUri: "https://slow.example/jwks"}),
		requestAuthn(ns, "a",
			&security.JWTRule{Issuer: "inline", Audiences: []string{"web", "api"}, Jwks: testJWKS, JwksUri: uri,
				FromHeaders: []*security.JWTHeader{{Name: "x-jwt", Prefix: "Token "}}, ForwardOriginalToken: true,
				OutputClaimToHeaders: []*security.ClaimToHeader{{Header: "x-sub", Claim: "sub"}}, OutputPayloadToHeader: "x-payload"},
			&security.JWTRule{Issuer: "params", FromParams: []string{"token"}, JwksUri: "https://broken.example/jwks"},
		),
	)
	fetched["https://broken.example/jwks"] = "<html>not found</html>"
	s := model.BuildWith(1, objs, model.Options{JWKS: func(u string) (string, bool) { d, ok := fetched[u]; return d, ok }})
	r := GenerateWith(s, webMeta(), Options{})
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	defaults := func(p *jwtv3.JwtProvider) *jwtv3.JwtProvider {
		p.FromHeaders = []*jwtv3.JwtHeader{{Name: "Authorization", ValuePrefix: "Bearer "}}
		p.FromParams = []string{"access_token"}
		return p
	}
	want := &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{
			"origins-0": {Issuer: "inline", Audiences: []string{"web", "api"}, PayloadInMetadata: "inline", JwksSourceSpecifier: inlineJWKS(testJWKS),
				Forward: true, FromHeaders: []*jwtv3.JwtHeader{{Name: "x-jwt", ValuePrefix: "Token "}},
				ClaimToHeaders: []*jwtv3.JwtClaimToHeader{{HeaderName: "x-sub", ClaimName: "sub"}}, ForwardPayloadHeader: "x-payload"},
			// A key set that is not one verifies nothing.
			"origins-1": {Issuer: "params", PayloadInMetadata: "params", JwksSourceSpecifier: inlineJWKS(EmptyJWKS), FromParams: []string{"token"}},
			// Not fetched yet: nothing verifies until it is.
			"origins-2": defaults(&jwtv3.JwtProvider{Issuer: "pending", PayloadInMetadata: "pending", JwksSourceSpecifier: inlineJWKS(EmptyJWKS)}),
			"origins-3": defaults(&jwtv3.JwtProvider{Issuer: "mesh-issuer", PayloadInMetadata: "mesh-issuer", JwksSourceSpecifier: inlineJWKS(testJWKS)}),
		},
		Rules: []*jwtv3.RequirementRule{{
			Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
				RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}},
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-1"}},
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-2"}},
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-3"}},
					{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
				}},
			}}},
		}},
	}
	assertProto(t, "jwt_authn", jwtConfig(t, r, InboundListener), want)

	// Without any RequestAuthentication there is no filter.
	if ja := jwtConfig(t, generate(t, coolapp(webService()), webMeta()), InboundListener); ja != nil {
		t.Errorf("jwt_authn without policies: %v", ja)
	}
}

func TestRequestAuthenticationErrors(t *testing.T) {
	for _, tc := range []struct {
		rule *security.JWTRule
		want string
	}{
		{&security.JWTRule{Jwks: testJWKS}, "jwtRules[0].issuer: required"},
		{&security.JWTRule{Issuer: "i", Jwks: `{"kty":"RSA"}`}, `jwtRules[0].jwks: not a JSON Web Key Set: no "keys" array`},
		{&security.JWTRule{Issuer: "i", Jwks: `{`}, "jwtRules[0].jwks: not a JSON Web Key Set"},
		{&security.JWTRule{Issuer: "i", FromHeaders: []*security.JWTHeader{{Prefix: "x"}}}, "jwtRules[0].fromHeaders[0].name: required"},
		{&security.JWTRule{Issuer: "i", OutputClaimToHeaders: []*security.ClaimToHeader{{Header: "x"}}}, "jwtRules[0].outputClaimToHeaders[0]"},
	} {
		err := Generate(model.Build(1, coolapp(webService(), requestAuthn(ns, "bad", tc.rule))), webMeta()).Validate()
		if err == nil || !strings.Contains(err.Error(), "RequestAuthentication coolapp/bad: "+tc.want) {
			t.Errorf("%v: Validate = %v, want %q", tc.rule, err, tc.want)
		}
	}
}
