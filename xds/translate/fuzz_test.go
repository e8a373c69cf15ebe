package translate

import (
	"strings"
	"testing"

	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/model"
)

// onlyNamed fails unless every line of err names prefix: whatever the input,
// the translator either emits config Envoy accepts or says which object
// and field it could not translate; it never ships a broken resource.
func onlyNamed(t *testing.T, err error, prefix string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("error not attributed to %q: %s", prefix, line)
		}
	}
}

func FuzzAuthorizationPolicy(f *testing.F) {
	f.Add("cluster.local/ns/default/sa/sleep", "ns1", "/api/*", "*.example.com", "GET", "8080", "10.0.0.0/8", "request.headers[x-user]", "alice", uint8(0), false)
	f.Add("*", "*", "/a/{*}/b/{**}", "*", "*", "0", "::1", "request.auth.claims[groups][x]", "*", uint8(1), true)
	f.Add("x*", "prod*", "*.png", "API.example.com", "POST", "65536", "1.2.3.4/33", "source.ip", "1.2.3.4", uint8(2), false)
	f.Add("", "", "", "", "", "http", "bad", "request.headers[]", "", uint8(3), true)
	f.Fuzz(func(t *testing.T, principal, namespace, path, host, method, port, ip, key, value string, action uint8, tcp bool) {
		spec := &security.AuthorizationPolicy{
			Action: security.AuthorizationPolicy_Action(action % 4),
			Rules: []*security.Rule{{
				From: []*security.Rule_From{{Source: &security.Source{
					Principals: []string{principal}, NotNamespaces: []string{namespace}, IpBlocks: []string{ip},
					RequestPrincipals: []string{principal},
				}}},
				To: []*security.Rule_To{{Operation: &security.Operation{
					Paths: []string{path}, NotHosts: []string{host}, Methods: []string{method}, Ports: []string{port},
				}}},
				When: []*security.Condition{{Key: key, Values: []string{value}}},
			}},
		}
		p := webMeta()
		if tcp {
			p.InboundProtocol = "TCP"
		}
		r := Generate(model.Build(1, coolapp(webService(), authz(ns, "fuzz", spec))), p)
		err := r.Validate()
		onlyNamed(t, err, "AuthorizationPolicy coolapp/fuzz: rules[0].")
		if err != nil {
			return
		}
		// A translated policy is enforced: the listener carries an RBAC filter.
		l := r.Listeners[InboundListener]
		found := false
		for _, f := range l.GetFilterChains()[0].GetFilters() {
			found = found || f.GetName() == netRBACFilterName
		}
		if !tcp {
			found = len(httpRBAC(t, r, InboundListener)) > 0
		}
		if !found {
			t.Fatalf("policy translated without an rbac filter")
		}
	})
}

func FuzzRequestAuthentication(f *testing.F) {
	f.Add("https://issuer.example", testJWKS, "x-jwt", "Bearer ", "x-sub", "sub", "aud")
	f.Add("", "{", "", "", "", "", "")
	f.Add("i", `{"keys":null}`, "bad header", "\x00", "x y", "a.b", "\xff")
	f.Fuzz(func(t *testing.T, issuer, jwks, header, prefix, outHeader, claim, audience string) {
		rule := &security.JWTRule{
			Issuer: issuer, Jwks: jwks, Audiences: []string{audience},
			FromHeaders:          []*security.JWTHeader{{Name: header, Prefix: prefix}},
			OutputClaimToHeaders: []*security.ClaimToHeader{{Header: outHeader, Claim: claim}},
		}
		r := Generate(model.Build(1, coolapp(webService(), requestAuthn(ns, "fuzz", rule))), webMeta())
		err := r.Validate()
		onlyNamed(t, err, "RequestAuthentication coolapp/fuzz: jwtRules[0].")
		if err == nil && jwtConfig(t, r, InboundListener).GetProviders()["origins-0"].GetIssuer() != issuer {
			t.Fatalf("issuer %q not carried", issuer)
		}
	})
}
