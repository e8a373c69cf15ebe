package translate

// These tests run what the translator emits for AuthorizationPolicy and
// RequestAuthentication through the proxy's own filters, so that the
// Istio semantics of a field are checked end to end: the policy, the
// Envoy config the proxy receives, and the requests it then lets through.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	httprbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/proxy/filter"
	"github.com/weft-mesh/weft/proxy/filter/jwtauthn"
	"github.com/weft-mesh/weft/proxy/filter/rbac"
)

// proxyChain compiles the inbound listener's jwt_authn and rbac filters, in
// the listener's order, with the proxy's filter packages.
func proxyChain(t *testing.T, objs ...*config.Object) filter.Chain {
	t.Helper()
	r := generate(t, coolapp(append([]*config.Object{webService()}, objs...)...), webMeta())
	var chain filter.Chain
	for _, f := range manager(t, r, InboundListener).GetHttpFilters() {
		switch f.GetName() {
		case jwtauthn.Name:
			j, err := jwtauthn.Parse(f.GetTypedConfig())
			if err != nil {
				t.Fatalf("proxy refuses jwt_authn: %v", err)
			}
			chain = append(chain, j)
		case rbac.Name:
			m := &httprbac.RBAC{}
			if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
				t.Fatal(err)
			}
			h, err := rbac.ParseMessage(m, filter.HCMOptions{})
			if err != nil {
				t.Fatalf("proxy refuses rbac: %v", err)
			}
			if h != nil {
				chain = append(chain, h)
			}
		}
	}
	if len(chain) == 0 {
		t.Fatal("no jwt_authn or rbac filter on the inbound listener")
	}
	return chain
}

// inboundRequest is a request to the sidecar's inbound listener from peer
// (a SPIFFE ID; "" for plaintext).
func inboundRequest(method, target, peer string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "10.0.0.9:40000"
	local := net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:15006"))
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
	if peer != "" {
		u, err := url.Parse(peer)
		if err != nil {
			panic(err)
		}
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{u}}}}
	}
	return r
}

// runChain passes r through chain: the status of the local reply, or 0
// when the request went on to the upstream.
func runChain(chain filter.Chain, r *http.Request) (int, *filter.Exchange) {
	w := httptest.NewRecorder()
	x := filter.NewExchange(w, r)
	if x.Run(chain) {
		return 0, x
	}
	return w.Code, x
}

// TestServiceAccountsEnforced: Istio's serviceAccounts are NAMESPACE/SA
// (or SA in the policy's namespace) and match the peer's namespace and
// service account in any trust domain, and nothing else.
func TestServiceAccountsEnforced(t *testing.T) {
	chain := proxyChain(t,
		authz(ns, "allow-sleep", &security.AuthorizationPolicy{Selector: selector("app", "web"), Action: allow,
			Rules: []*security.Rule{rule(from(&security.Source{ServiceAccounts: []string{"other/sleep", "sleep"}}), nil)}}),
		authz(ns, "admin-only-other", &security.AuthorizationPolicy{Selector: selector("app", "web"), Action: deny,
			Rules: []*security.Rule{rule(from(&security.Source{NotServiceAccounts: []string{"other/sleep"}}),
				to(&security.Operation{Paths: []string{"/admin"}}))}}),
	)
	for _, c := range []struct {
		name, path, peer string
		want             int
	}{
		{"NS/SA", "/data", "spiffe://cluster.local/ns/other/sa/sleep", 0},
		{"NS/SA in another trust domain", "/data", "spiffe://td.example/ns/other/sa/sleep", 0},
		{"SA alone is in the policy's namespace", "/data", "spiffe://cluster.local/ns/coolapp/sa/sleep", 0},
		{"other account", "/data", "spiffe://cluster.local/ns/other/sa/web", 403},
		{"account with the name as prefix", "/data", "spiffe://cluster.local/ns/other/sa/sleepy", 403},
		{"namespace with the name as suffix", "/data", "spiffe://cluster.local/ns/another/sa/sleep", 403},
		{"SA alone is not any namespace", "/data", "spiffe://cluster.local/ns/default/sa/sleep", 403},
		{"ns/sa hidden in the trust domain", "/data", "spiffe://x/ns/y/sa/z/ns/other/sa/sleep", 403},
		{"plaintext", "/data", "", 403},
		{"notServiceAccounts: the excepted account", "/admin", "spiffe://cluster.local/ns/other/sa/sleep", 0},
		{"notServiceAccounts: any other", "/admin", "spiffe://cluster.local/ns/coolapp/sa/sleep", 403},
	} {
		if got, _ := runChain(chain, inboundRequest("GET", c.path, c.peer)); got != c.want {
			t.Errorf("%s: %s from %q: status %d, want %d", c.name, c.path, c.peer, got, c.want)
		}
	}
}

// TestPathTemplatesEnforced: {*} is exactly one non-empty segment, {**}
// zero or more characters including '/', as Envoy's URI template matcher
// (Istio's examples in the Operation.paths reference).
func TestPathTemplatesEnforced(t *testing.T) {
	chain := proxyChain(t,
		authz(ns, "templates", &security.AuthorizationPolicy{Selector: selector("app", "web"), Action: allow,
			Rules: []*security.Rule{
				rule(nil, to(&security.Operation{Methods: []string{"GET"}, Paths: []string{"/foo/{*}", "/files/{**}", "/v1/{*}/items/{**}/meta", "/dir/{**}/"}})),
				rule(nil, to(&security.Operation{Methods: []string{"DELETE"}, NotPaths: []string{"/files/{**}"}})),
			}}),
		authz(ns, "no-secrets", &security.AuthorizationPolicy{Selector: selector("app", "web"), Action: deny,
			Rules: []*security.Rule{rule(nil, to(&security.Operation{Paths: []string{"/files/{*}/secret"}}))}}),
	)
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/foo/bar", 0},
		{"GET", "/foo/bar?next=/x/y", 0},
		{"GET", "/foo/bar/baz", 403},
		{"GET", "/foo/", 403},
		{"GET", "/foo", 403},
		{"GET", "/foobar", 403},
		{"GET", "/foo/a/../b", 0}, // normalized to /foo/b
		{"GET", "/files/", 0},     // {**} matches nothing too
		{"GET", "/files/a", 0},
		{"GET", "/files/a/b/c.txt", 0},
		{"GET", "/files", 403},
		{"GET", "/filesx/a", 403},
		{"GET", "/files/../admin", 403},
		{"GET", "/v1/x/items/a/b/meta", 0},
		{"GET", "/v1/x/items/a/meta", 0},
		{"GET", "/v1/x/y/items/a/meta", 403},
		{"GET", "/v1/x/items/a/b", 403},
		{"GET", "/dir/a/b/", 0},
		{"GET", "/dir/a/b", 403},
		{"GET", "/files/a/secret", 403},      // DENY {*}
		{"GET", "/files/a/b/secret", 0},      // {*} is one segment: not denied
		{"DELETE", "/tmp/x", 0},              // notPaths
		{"DELETE", "/files/a", 403},          // notPaths
		{"DELETE", "/files", 0},              // /files/{**} needs the slash
		{"GET", "/foo/b%2Fc", 0},             // an encoded slash stays in the segment
		{"GET", "/foo/b%2F..%2F..%2Fetc", 0}, // ... and is no path separator
	} {
		if got, _ := runChain(chain, inboundRequest(c.method, c.path, "")); got != c.want {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, got, c.want)
		}
	}
}

// es256Key signs test tokens; its JWK is what a RequestAuthentication's
// jwks holds.
type es256Key struct{ priv *ecdsa.PrivateKey }

func newES256Key(t *testing.T) es256Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return es256Key{k}
}

func (k es256Key) jwks() string {
	raw, _ := k.priv.PublicKey.ECDH()
	b := raw.Bytes() // 0x04 || X || Y
	enc := base64.RawURLEncoding.EncodeToString
	doc, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "x": enc(b[1:33]), "y": enc(b[33:]),
	}}})
	return string(doc)
}

// sign returns a compact ES256 JWT over claims and its payload segment.
func (k es256Key) sign(t *testing.T, claims map[string]any) (token, payload string) {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]any{"alg": "ES256", "kid": "k1", "typ": "JWT"})
	p, _ := json.Marshal(claims)
	payload = enc(p)
	signed := enc(h) + "." + payload
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc(sig), payload
}

// TestJWTCookiesAndPayloadHeaderEnforced: fromCookies reads the token from
// the named cookie (and, being the only location given, from nowhere
// else); outputPayloadToHeader gives the upstream the token's payload,
// base64url-encoded, and only the proxy may set that header.
func TestJWTCookiesAndPayloadHeaderEnforced(t *testing.T) {
	const iss = "https://issuer.example"
	key := newES256Key(t)
	chain := proxyChain(t,
		objNS(config.KindRequestAuthentication, ns, "cookie", &security.RequestAuthentication{
			Selector: selector("app", "web"),
			JwtRules: []*security.JWTRule{{Issuer: iss, Jwks: key.jwks(), FromCookies: []string{"session"}, OutputPayloadToHeader: "x-jwt-payload"}},
		}),
		authz(ns, "require-jwt", &security.AuthorizationPolicy{Selector: selector("app", "web"), Action: allow,
			Rules: []*security.Rule{rule(from(&security.Source{RequestPrincipals: []string{iss + "/alice"}}), nil)}}),
	)
	claims := map[string]any{"iss": iss, "sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "team": "blue"}
	tok, payload := key.sign(t, claims)
	other, _ := newES256Key(t).sign(t, claims)

	withCookie := func(name, value string) *http.Request {
		r := inboundRequest("GET", "/data", "")
		r.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
		r.AddCookie(&http.Cookie{Name: name, Value: value})
		return r
	}

	// The token in the cookie: verified, the payload forwarded.
	code, x := runChain(chain, withCookie("session", tok))
	if code != 0 {
		t.Fatalf("token in cookie session: status %d, want it let through", code)
	}
	if got := x.R.Header.Values("X-Jwt-Payload"); len(got) != 1 || got[0] != payload {
		t.Errorf("x-jwt-payload = %q, want the token's payload %q", got, payload)
	} else if raw, err := base64.RawURLEncoding.DecodeString(got[0]); err != nil {
		t.Errorf("x-jwt-payload is not base64url: %v", err)
	} else {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || m["sub"] != "alice" || m["team"] != "blue" {
			t.Errorf("x-jwt-payload decodes to %s (%v), want the claims", raw, err)
		}
	}

	// A token in the cookie that does not verify: 401, not "missing".
	if code, _ := runChain(chain, withCookie("session", other)); code != http.StatusUnauthorized {
		t.Errorf("token signed by another key in the cookie: status %d, want 401", code)
	}

	// Locations not configured are not read: the request has no token, so
	// jwt_authn lets it through and the ALLOW policy refuses it.
	hdr := inboundRequest("GET", "/data", "")
	hdr.Header.Set("Authorization", "Bearer "+tok)
	if code, _ := runChain(chain, hdr); code != http.StatusForbidden {
		t.Errorf("token in Authorization with only fromCookies: status %d, want 403", code)
	}
	if code, _ := runChain(chain, withCookie("sessionx", tok)); code != http.StatusForbidden {
		t.Errorf("token in another cookie: status %d, want 403", code)
	}
	query := inboundRequest("GET", "/data?access_token="+tok, "")
	if code, _ := runChain(chain, query); code != http.StatusForbidden {
		t.Errorf("token in access_token with only fromCookies: status %d, want 403", code)
	}

	// The client cannot pose as the proxy with the payload header.
	forged := inboundRequest("GET", "/data", "")
	forged.Header.Set("X-Jwt-Payload", payload)
	allowAll := proxyChain(t, objNS(config.KindRequestAuthentication, ns, "cookie", &security.RequestAuthentication{
		Selector: selector("app", "web"),
		JwtRules: []*security.JWTRule{{Issuer: iss, Jwks: key.jwks(), FromCookies: []string{"session"}, OutputPayloadToHeader: "x-jwt-payload"}},
	}))
	if code, x := runChain(allowAll, forged); code != 0 || x.R.Header.Get("X-Jwt-Payload") != "" {
		t.Errorf("client-sent x-jwt-payload without a token: status %d, header %q; want it removed", code, x.R.Header.Get("X-Jwt-Payload"))
	}
}
