package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"math"
	"math/big"
	"strings"
	"time"

	// Register the hashes the algorithms use.
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// Status is the outcome of verifying a token, with Envoy's wording.
type Status uint8

// Statuses, as Envoy's jwt_verify_lib names them.
const (
	OK Status = iota
	Missing
	BadFormat
	HeaderBadBase64
	HeaderBadJSON
	HeaderBadAlg
	AlgNotImplemented
	PayloadBadBase64
	PayloadBadJSON
	SignatureBadBase64
	UnknownIssuer
	Expired
	NotYetValid
	AudienceNotAllowed
	VerificationFails
)

var statusText = [...]string{
	OK:                 "Jwt is verified",
	Missing:            "Jwt is missing",
	BadFormat:          "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
	HeaderBadBase64:    "Jwt header is an invalid Base64url encoded",
	HeaderBadJSON:      "Jwt header is an invalid JSON",
	HeaderBadAlg:       "Jwt header [alg] field is required and must be a string",
	AlgNotImplemented:  "Jwt header [alg] is not supported",
	PayloadBadBase64:   "Jwt payload is an invalid Base64url encoded",
	PayloadBadJSON:     "Jwt payload is an invalid JSON",
	SignatureBadBase64: "Jwt signature is an invalid Base64url encoded",
	UnknownIssuer:      "Jwt issuer is not configured",
	Expired:            "Jwt is expired",
	NotYetValid:        "Jwt not yet valid",
	AudienceNotAllowed: "Audiences in Jwt are not allowed",
	VerificationFails:  "Jwt verification fails",
}

// String returns the status as Envoy words it in its 401 body.
func (s Status) String() string {
	if int(s) < len(statusText) {
		return statusText[s]
	}
	return "Jwt verification fails"
}

// Token is a parsed, not yet verified, JWS compact serialization.
type Token struct {
	Alg, Kid string
	// Claims is the decoded payload.
	Claims map[string]any
	// signed is "header.payload", payload its second part (base64url),
	// sig the decoded signature.
	signed  string
	payload string
	sig     []byte
}

// ParseToken splits and decodes a compact JWT without verifying it.
func ParseToken(s string) (*Token, Status) {
	i := strings.IndexByte(s, '.')
	if i < 0 {
		return nil, BadFormat
	}
	j := strings.IndexByte(s[i+1:], '.')
	if j < 0 {
		return nil, BadFormat
	}
	j += i + 1
	if strings.IndexByte(s[j+1:], '.') >= 0 {
		return nil, BadFormat
	}
	hb, err := b64(s[:i])
	if err != nil {
		return nil, HeaderBadBase64
	}
	var hdr map[string]any
	if json.Unmarshal(hb, &hdr) != nil || hdr == nil {
		return nil, HeaderBadJSON
	}
	t := &Token{signed: s[:j], payload: s[i+1 : j]}
	alg, ok := hdr["alg"].(string)
	if !ok || alg == "" {
		return nil, HeaderBadAlg
	}
	if hashOf(alg) == 0 && alg != "EdDSA" {
		return nil, AlgNotImplemented // none, HS*, unknown: never accepted
	}
	t.Alg = alg
	if kid, ok := hdr["kid"].(string); ok {
		t.Kid = kid
	}
	pb, err := b64(s[i+1 : j])
	if err != nil {
		return nil, PayloadBadBase64
	}
	if json.Unmarshal(pb, &t.Claims) != nil || t.Claims == nil {
		return nil, PayloadBadJSON
	}
	if t.sig, err = b64(s[j+1:]); err != nil {
		return nil, SignatureBadBase64
	}
	return t, OK
}

// Issuer returns the iss claim, "" when absent or not a string.
func (t *Token) Issuer() string { s, _ := t.Claims["iss"].(string); return s }

// Audiences returns the aud claim, a string or a list of strings.
func (t *Token) Audiences() []string {
	switch a := t.Claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, v := range a {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// CheckTime checks exp and nbf against now with skew of leeway. A token
// without exp does not expire; a non-numeric exp or nbf is malformed.
func (t *Token) CheckTime(now time.Time, skew time.Duration) Status {
	sec := float64(now.Unix())
	slack := skew.Seconds()
	if v, ok := t.Claims["exp"]; ok {
		exp, ok := v.(float64)
		if !ok || math.IsNaN(exp) {
			return PayloadBadJSON
		}
		if sec > exp+slack {
			return Expired
		}
	}
	if v, ok := t.Claims["nbf"]; ok {
		nbf, ok := v.(float64)
		if !ok || math.IsNaN(nbf) {
			return PayloadBadJSON
		}
		if sec+slack < nbf {
			return NotYetValid
		}
	}
	return OK
}

// Verify checks the signature against the keys of ks that fit: the token's
// kid (when both have one), the key's alg (when set), and the algorithm's
// key type. Any fitting key that verifies is enough.
func (t *Token) Verify(ks *KeySet) Status {
	if ks == nil {
		return VerificationFails
	}
	for i := range ks.Keys {
		k := &ks.Keys[i]
		if (t.Kid != "" && k.ID != "" && k.ID != t.Kid) || (k.Alg != "" && k.Alg != t.Alg) {
			continue
		}
		if verifySignature(t.Alg, k.Public, t.signed, t.sig) {
			return OK
		}
	}
	return VerificationFails
}

// hashOf returns the hash of a JWS algorithm weft verifies, 0 for others.
func hashOf(alg string) crypto.Hash {
	switch alg {
	case "RS256", "PS256", "ES256":
		return crypto.SHA256
	case "RS384", "PS384", "ES384":
		return crypto.SHA384
	case "RS512", "PS512", "ES512":
		return crypto.SHA512
	}
	return 0
}

func verifySignature(alg string, pub crypto.PublicKey, signed string, sig []byte) bool {
	if alg == "EdDSA" {
		k, ok := pub.(ed25519.PublicKey)
		return ok && ed25519.Verify(k, []byte(signed), sig)
	}
	h := hashOf(alg)
	hw := h.New()
	hw.Write([]byte(signed))
	sum := hw.Sum(nil)
	switch alg[0] {
	case 'R':
		k, ok := pub.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(k, h, sum, sig) == nil
	case 'P':
		k, ok := pub.(*rsa.PublicKey)
		return ok && rsa.VerifyPSS(k, h, sum, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case 'E':
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || ecCurveFor(alg) != k.Curve.Params().BitSize {
			return false
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, sum, r, s)
	}
	return false
}

// ecCurveFor is the curve size an ES algorithm requires (RFC 7518 3.4).
func ecCurveFor(alg string) int {
	switch alg {
	case "ES256":
		return 256
	case "ES384":
		return 384
	}
	return 521
}
