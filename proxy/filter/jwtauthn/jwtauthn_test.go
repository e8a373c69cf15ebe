package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/weft-mesh/weft/proxy/filter"
)

// testKey is a signing key with its JWK.
type testKey struct {
	alg  string
	kid  string
	priv crypto.Signer
}

var (
	rsaKey, _   = rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _    = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _    = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ = ed25519.GenerateKey(rand.Reader)
	otherRSA, _ = rsa.GenerateKey(rand.Reader, 2048)
)

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (k testKey) jwk() map[string]any {
	m := map[string]any{"kid": k.kid}
	switch p := k.priv.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", enc(p.N.Bytes()), enc(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		raw, _ := p.Bytes()
		m["kty"], m["crv"], m["x"], m["y"] = "EC", p.Curve.Params().Name, enc(raw[1:1+size]), enc(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", enc(p)
	}
	return m
}

func jwks(keys ...testKey) string {
	var list []map[string]any
	for _, k := range keys {
		list = append(list, k.jwk())
	}
	b, _ := json.Marshal(map[string]any{"keys": list})
	return string(b)
}

// sign makes a compact JWT over claims with k.
func sign(t testing.TB, k testKey, claims map[string]any) string {
	t.Helper()
	hb, _ := json.Marshal(map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"})
	pb, _ := json.Marshal(claims)
	signed := enc(hb) + "." + enc(pb)
	var sig []byte
	var err error
	switch k.alg {
	case "EdDSA":
		sig = ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(signed))
	default:
		h := hashOf(k.alg)
		hw := h.New()
		hw.Write([]byte(signed))
		sum := hw.Sum(nil)
		switch k.alg[0] {
		case 'R':
			sig, err = rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), h, sum)
		case 'P':
			sig, err = rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), h, sum, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		case 'E':
			key := k.priv.(*ecdsa.PrivateKey)
			r, s, e := ecdsa.Sign(rand.Reader, key, sum)
			size := (key.Curve.Params().BitSize + 7) / 8
			sig = make([]byte, 2*size)
			r.FillBytes(sig[:size])
			s.FillBytes(sig[size:])
			err = e
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + enc(sig)
}

const issuer = "https://issuer.example.com"

var now = time.Unix(1_800_000_000, 0)

func claims(extra map[string]any) map[string]any {
	c := map[string]any{"iss": issuer, "sub": "alice", "aud": "bookinfo", "exp": now.Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// istioConfig is what xds/translate emits for one RequestAuthentication
// jwtRule: provider origins-0 and requires_any [origins-0, allow_missing].
func istioConfig(doc string, mod func(p *jwtv3.JwtProvider)) *jwtv3.JwtAuthentication {
	p := &jwtv3.JwtProvider{
		Issuer:            issuer,
		Audiences:         []string{"bookinfo"},
		PayloadInMetadata: issuer,
		FromHeaders:       []*jwtv3.JwtHeader{{Name: "Authorization", ValuePrefix: "Bearer "}},
		FromParams:        []string{"access_token"},
		ClaimToHeaders:    []*jwtv3.JwtClaimToHeader{{HeaderName: "x-jwt-sub", ClaimName: "sub"}, {HeaderName: "x-jwt-team", ClaimName: "org.team"}},
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: doc}}},
	}
	if mod != nil {
		mod(p)
	}
	return &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"origins-0": p},
		Rules: []*jwtv3.RequirementRule{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
				RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}},
					{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
				}}},
			}},
		}},
	}
}

func compile(t *testing.T, m *jwtv3.JwtAuthentication) *Filter {
	t.Helper()
	f, err := ParseMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	f.SetClock(func() time.Time { return now })
	return f
}

func do(f *Filter, r *http.Request) (bool, *httptest.ResponseRecorder, *filter.Exchange) {
	w := httptest.NewRecorder()
	x := filter.NewExchange(w, r)
	return x.Run(filter.Chain{f}), w, x
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest("GET", "http://bookinfo.com/productpage?x=1", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

var rs256 = testKey{alg: "RS256", kid: "r1", priv: rsaKey}

func TestAlgorithms(t *testing.T) {
	keys := []testKey{
		rs256,
		{alg: "RS384", kid: "r1", priv: rsaKey},
		{alg: "RS512", kid: "r1", priv: rsaKey},
		{alg: "PS256", kid: "r1", priv: rsaKey},
		{alg: "ES256", kid: "e1", priv: ecKey},
		{alg: "ES384", kid: "e2", priv: ec384},
		{alg: "EdDSA", kid: "d1", priv: edKey},
	}
	f := compile(t, istioConfig(jwks(rs256, keys[4], keys[5], keys[6]), nil))
	for _, k := range keys {
		ok, w, _ := do(f, bearer(sign(t, k, claims(nil))))
		if !ok {
			t.Errorf("%s: refused: %d %s", k.alg, w.Code, w.Body)
		}
	}
	// An ES384 signature does not pass for the P-256 key's kid.
	wrongCurve := testKey{alg: "ES384", kid: "e1", priv: ec384}
	if ok, _, _ := do(f, bearer(sign(t, wrongCurve, claims(nil)))); ok {
		t.Error("ES384 token accepted against a P-256 key")
	}
}

func TestAccepted(t *testing.T) {
	f := compile(t, istioConfig(jwks(rs256), nil))
	r := bearer(sign(t, rs256, claims(map[string]any{"azp": "web", "scope": "read write", "org": map[string]any{"team": "blue"}})))
	r.Header.Set("X-Jwt-Team", "forged") // a client cannot set a claim header
	ok, _, x := do(f, r)
	if !ok {
		t.Fatal("valid token refused")
	}
	if r.Header.Get("Authorization") != "" {
		t.Error("token forwarded without forward: true")
	}
	if r.Header.Get("X-Jwt-Sub") != "alice" || r.Header.Get("X-Jwt-Team") != "blue" {
		t.Errorf("claim headers %v", r.Header)
	}
	authn := x.Metadata[AuthnNamespace]
	if authn[KeyPrincipal] != issuer+"/alice" || authn[KeyPresenter] != "web" {
		t.Errorf("istio_authn %v", authn)
	}
	if auds, _ := authn[KeyAudiences].([]any); len(auds) != 1 || auds[0] != "bookinfo" {
		t.Errorf("audiences %v", authn[KeyAudiences])
	}
	c := authn[KeyClaims].(map[string]any)
	if scope, _ := c["scope"].([]any); len(scope) != 2 || scope[1] != "write" {
		t.Errorf("scope not split into a list: %v", c["scope"])
	}
	if payload := x.Metadata[Name][issuer].(map[string]any); payload["scope"] != "read write" {
		t.Errorf("payload_in_metadata %v", payload)
	}

	// Without a token the request passes (allow_missing) and a forged
	// claim header is dropped all the same.
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Jwt-Sub", "admin")
	if ok, _, x := do(f, r); !ok || r.Header.Get("X-Jwt-Sub") != "" || x.Metadata != nil {
		t.Errorf("no token: ok %v, header %q, metadata %v", ok, r.Header.Get("X-Jwt-Sub"), x.Metadata)
	}

	// forward keeps the token; a token in a query parameter is removed
	// from the query otherwise.
	fw := compile(t, istioConfig(jwks(rs256), func(p *jwtv3.JwtProvider) { p.Forward = true }))
	r = bearer(sign(t, rs256, claims(nil)))
	if ok, _, _ := do(fw, r); !ok || r.Header.Get("Authorization") == "" {
		t.Error("forward: token removed")
	}
	r = httptest.NewRequest("GET", "/p?a=1&access_token="+sign(t, rs256, claims(nil))+"&b=2", nil)
	if ok, _, _ := do(f, r); !ok || r.URL.RawQuery != "a=1&b=2" {
		t.Errorf("query token: ok %v, query %q", ok, r.URL.RawQuery)
	}
}

func TestRefused(t *testing.T) {
	f := compile(t, istioConfig(jwks(rs256), nil))
	forged := testKey{alg: "RS256", kid: "r1", priv: otherRSA}
	for _, c := range []struct {
		name, token, body string
	}{
		{"bad signature", sign(t, forged, claims(nil)), "Jwt verification fails"},
		{"expired", sign(t, rs256, claims(map[string]any{"exp": now.Add(-61 * time.Second).Unix()})), "Jwt is expired"},
		{"not yet valid", sign(t, rs256, claims(map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})), "Jwt not yet valid"},
		{"wrong issuer", sign(t, rs256, claims(map[string]any{"iss": "https://evil.example.com"})), "Jwt issuer is not configured"},
		{"wrong audience", sign(t, rs256, claims(map[string]any{"aud": []string{"other"}})), "Audiences in Jwt are not allowed"},
		{"malformed", "abc.def", "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
		{"alg none", enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{"iss":"`+issuer+`"}`)) + ".", "Jwt header [alg] is not supported"},
		{"tampered payload", tamper(sign(t, rs256, claims(nil))), "Jwt verification fails"},
	} {
		ok, w, _ := do(f, bearer(c.token))
		if ok {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if w.Code != 401 || w.Body.String() != c.body {
			t.Errorf("%s: %d %q, want 401 %q", c.name, w.Code, w.Body, c.body)
		}
		if got := w.Header().Get("Www-Authenticate"); got != `Bearer realm="http://bookinfo.com/productpage", error="invalid_token"` {
			t.Errorf("%s: www-authenticate %q", c.name, got)
		}
	}
	// Within the 60 s leeway an expired token still passes.
	if ok, _, _ := do(f, bearer(sign(t, rs256, claims(map[string]any{"exp": now.Add(-59 * time.Second).Unix()})))); !ok {
		t.Error("token expired 59 s ago refused")
	}
	// An issuer whose JWKS could not be fetched verifies nothing.
	empty := compile(t, istioConfig(`{"keys":[]}`, nil))
	if ok, w, _ := do(empty, bearer(sign(t, rs256, claims(nil)))); ok || w.Body.String() != "Jwt verification fails" {
		t.Errorf("empty JWKS: ok %v %q", ok, w.Body)
	}
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), "alice", "admin", 1))
	return parts[0] + "." + enc(p) + "." + parts[2]
}

func TestRequired(t *testing.T) {
	// Without allow_missing a request needs a token.
	m := istioConfig(jwks(rs256), nil)
	m.Rules[0].RequirementType = &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
		RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}}}
	m.Rules = append([]*jwtv3.RequirementRule{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/healthz"}}}}, m.Rules...)
	f := compile(t, m)
	ok, w, _ := do(f, httptest.NewRequest("GET", "/productpage", nil))
	if ok || w.Code != 401 || w.Body.String() != "Jwt is missing" || w.Header().Get("Www-Authenticate") != `Bearer realm="http://example.com/productpage"` {
		t.Errorf("missing token: ok %v %d %q %v", ok, w.Code, w.Body, w.Header())
	}
	if ok, _, _ := do(f, httptest.NewRequest("GET", "/healthz", nil)); !ok {
		t.Error("a rule without requirement did not let the request through")
	}
	// A gRPC client sees UNAUTHENTICATED.
	r := httptest.NewRequest("POST", "/pkg.S/M", nil)
	r.Header.Set("Content-Type", "application/grpc")
	if _, w, _ := do(f, r); w.Code != 200 || w.Header().Get("Grpc-Status") != "16" {
		t.Errorf("gRPC: %d %v", w.Code, w.Header())
	}
}

func TestTwoProviders(t *testing.T) {
	ec := testKey{alg: "ES256", kid: "e1", priv: ecKey}
	m := istioConfig(jwks(rs256), nil)
	second := &jwtv3.JwtProvider{
		Issuer:      "https://other.example.com",
		FromHeaders: []*jwtv3.JwtHeader{{Name: "Authorization", ValuePrefix: "Bearer "}},
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: jwks(ec)}}},
	}
	m.Providers["origins-1"] = second
	ra := m.Rules[0].GetRequires().GetRequiresAny()
	ra.Requirements = append([]*jwtv3.JwtRequirement{ra.Requirements[0],
		{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-1"}}}, ra.Requirements[1:]...)
	f := compile(t, m)
	ok, _, x := do(f, bearer(sign(t, ec, claims(map[string]any{"iss": "https://other.example.com", "sub": "bob"}))))
	if !ok || x.Metadata[AuthnNamespace][KeyPrincipal] != "https://other.example.com/bob" {
		t.Errorf("second provider: ok %v metadata %v", ok, x.Metadata)
	}
	if ok, _, _ := do(f, bearer(sign(t, rs256, claims(nil)))); !ok {
		t.Error("first provider refused")
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		mod  func(*jwtv3.JwtAuthentication)
		want string
	}{
		{func(m *jwtv3.JwtAuthentication) { m.Providers["origins-0"].JwksSourceSpecifier = nil },
			`providers["origins-0"].local_jwks: required`},
		{func(m *jwtv3.JwtAuthentication) {
			m.Providers["origins-0"].JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: "<html>"}}}
		}, `providers["origins-0"].local_jwks.inline_string: not a JWKS`},
		{func(m *jwtv3.JwtAuthentication) { m.Providers["origins-0"].RequireExpiration = true },
			`providers["origins-0"].require_expiration: unsupported field`},
		{func(m *jwtv3.JwtAuthentication) {
			m.Rules[0].GetRequires().GetRequiresAny().Requirements[0] = &jwtv3.JwtRequirement{
				RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "nope"}}
		}, `rules[0].requires.requires_any.requirements[0].provider_name: no provider "nope"`},
		{func(m *jwtv3.JwtAuthentication) {
			m.Providers["origins-0"].ClaimToHeaders = []*jwtv3.JwtClaimToHeader{{HeaderName: ":path", ClaimName: "sub"}}
		}, `providers["origins-0"].claim_to_headers[0].header_name`},
		{func(m *jwtv3.JwtAuthentication) { m.Rules[0].Match = nil }, `rules[0].match: required`},
	} {
		m := istioConfig(jwks(rs256), nil)
		c.mod(m)
		_, err := ParseMessage(m)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to contain %q", err, c.want)
		}
	}
}

func TestKeySetFormats(t *testing.T) {
	der, _ := x509.MarshalPKIXPublicKey(ecKey.Public())
	doc := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	ks, err := ParseKeySet(doc)
	if err != nil || len(ks.Keys) != 1 {
		t.Fatalf("PEM: %v %v", ks, err)
	}
	mixed, _ := json.Marshal(map[string]any{"keys": []any{
		map[string]any{"kty": "oct", "k": "c2VjcmV0"},
		map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
		rs256.jwk(),
	}})
	ks, err = ParseKeySet(string(mixed))
	if err != nil || len(ks.Keys) != 1 || ks.Skipped != 2 {
		t.Errorf("mixed set: %+v %v", ks, err)
	}
	if _, err := ParseKeySet(`{"nokeys":1}`); err == nil {
		t.Error("a document without keys accepted")
	}
}

func BenchmarkVerifyRS256(b *testing.B) {
	f, err := ParseMessage(istioConfig(jwks(rs256), nil))
	if err != nil {
		b.Fatal(err)
	}
	f.SetClock(func() time.Time { return now })
	tok := "Bearer " + sign(b, rs256, claims(nil))
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r.Header["Authorization"] = []string{tok}
		if !f.Request(filter.NewExchange(w, r)) {
			b.Fatal("refused")
		}
	}
}
