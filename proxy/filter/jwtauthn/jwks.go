package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Key is one public key of a JWKS.
type Key struct {
	// ID is the JWK's kid ("" when absent); Alg its alg ("" when absent).
	ID, Alg string
	// Public is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public crypto.PublicKey
}

// KeySet is a parsed JWKS. Keys of unsupported types are left out; a set
// may be empty (a JWKS the control plane could not fetch is {"keys":[]}),
// and then every token verified against it fails.
type KeySet struct {
	Keys []Key
	// Skipped counts the keys left out (unsupported or invalid).
	Skipped int
}

// maxKeys bounds the keys one JWKS may hold, so verifying a token costs a
// bounded number of signature checks.
const maxKeys = 64

// ParseKeySet parses a JWKS document, {"keys": [JWK...]}, or PEM-encoded
// public keys ("-----BEGIN PUBLIC KEY-----"). Supported JWKs: kty RSA (n, e),
// EC (crv P-256, P-384, P-521; x, y) and OKP (crv Ed25519; x). The control
// plane can use it to check a fetched document before inlining it.
func ParseKeySet(doc string) (*KeySet, error) {
	trimmed := strings.TrimSpace(doc)
	if strings.HasPrefix(trimmed, "-----BEGIN") {
		return parsePEM(trimmed)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	if raw.Keys == nil {
		return nil, errors.New(`not a JWKS: no "keys" array`)
	}
	if len(raw.Keys) > maxKeys {
		return nil, fmt.Errorf("keys: %d keys, at most %d", len(raw.Keys), maxKeys)
	}
	ks := &KeySet{}
	for _, r := range raw.Keys {
		k, err := parseJWK(r)
		if err != nil {
			ks.Skipped++ // as Envoy: a key it cannot use does not spoil the others
			continue
		}
		ks.Keys = append(ks.Keys, k)
	}
	return ks, nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func parseJWK(r json.RawMessage) (Key, error) {
	var j jwk
	if err := json.Unmarshal(r, &j); err != nil {
		return Key{}, err
	}
	if j.Use != "" && j.Use != "sig" {
		return Key{}, fmt.Errorf("use %q", j.Use)
	}
	k := Key{ID: j.Kid, Alg: j.Alg}
	switch j.Kty {
	case "RSA":
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return Key{}, errors.New("bad RSA key")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return Key{}, errors.New("bad RSA exponent")
		}
		k.Public = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return Key{}, fmt.Errorf("curve %q", j.Crv)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		size := (curve.Params().BitSize + 7) / 8
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return Key{}, errors.New("bad EC key")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return Key{}, err // not on the curve
		}
		k.Public = pub
	case "OKP":
		x, err := b64(j.X)
		if j.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return Key{}, errors.New("bad OKP key")
		}
		k.Public = ed25519.PublicKey(x)
	default:
		return Key{}, fmt.Errorf("kty %q", j.Kty)
	}
	return k, nil
}

func parsePEM(doc string) (*KeySet, error) {
	ks := &KeySet{}
	rest := []byte(doc)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if len(ks.Keys)+ks.Skipped >= maxKeys {
			return nil, fmt.Errorf("keys: more than %d", maxKeys)
		}
		pub, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			if b.Type == "RSA PUBLIC KEY" {
				pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
			}
			if err != nil {
				ks.Skipped++
				continue
			}
		}
		switch pub.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			ks.Keys = append(ks.Keys, Key{Public: pub})
		default:
			ks.Skipped++
		}
	}
	if len(ks.Keys)+ks.Skipped == 0 {
		return nil, errors.New("no PEM block")
	}
	return ks, nil
}

// b64 decodes base64url with or without padding.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
