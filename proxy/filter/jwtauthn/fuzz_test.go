package jwtauthn

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weft-mesh/weft/proxy/filter"
)

// FuzzParseToken feeds arbitrary strings as tokens, straight to the parser
// and through the filter: nothing panics, and no token verifies unless it
// was signed by the test key.
func FuzzParseToken(f *testing.F) {
	valid := sign(f, rs256, claims(nil))
	f.Add(valid)
	f.Add(tamper(valid))
	f.Add("a.b.c")
	f.Add("..")
	f.Add(enc([]byte(`{"alg":"RS256","kid":7}`)) + "." + enc([]byte(`{"exp":"x","aud":[1,{}]}`)) + ".AA")
	flt, err := ParseMessage(istioConfig(jwks(rs256), nil))
	if err != nil {
		f.Fatal(err)
	}
	flt.SetClock(func() time.Time { return now })
	f.Fuzz(func(t *testing.T, s string) {
		if tok, st := ParseToken(s); st == OK {
			tok.Issuer()
			tok.Audiences()
			tok.CheckTime(now, time.Minute)
			tok.Verify(&KeySet{})
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{"Bearer " + s}
		ok := flt.Request(filter.NewExchange(httptest.NewRecorder(), r))
		if ok && s != valid {
			// Only a token the key signed verifies; a token without a
			// recognisable token text is missing, which allow_missing lets by.
			if tok, st := ParseToken(s); st == OK && tok.Verify(flt.providers["origins-0"].keys) != OK {
				t.Fatalf("unverified token %q accepted", s)
			}
		}
	})
}

// FuzzParseKeySet feeds arbitrary documents as a JWKS: no panic, and every
// key kept is usable for verification.
func FuzzParseKeySet(f *testing.F) {
	f.Add(jwks(rs256, testKey{alg: "ES256", kid: "e", priv: ecKey}, testKey{alg: "EdDSA", kid: "d", priv: edKey}))
	f.Add(`{"keys":[]}`)
	f.Add(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"EC","crv":"P-384","x":"","y":""}]}`)
	f.Add("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
	tok, _ := ParseToken(sign(f, rs256, claims(nil)))
	f.Fuzz(func(t *testing.T, doc string) {
		ks, err := ParseKeySet(doc)
		if err != nil {
			return
		}
		if len(ks.Keys) > maxKeys {
			t.Fatalf("%d keys kept", len(ks.Keys))
		}
		tok.Verify(ks)
	})
}
