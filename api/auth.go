package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// TokenCookie is the cookie the console's login stores the API token in;
// the API accepts it for reads (never for writes: a cookie rides along on
// requests the user did not mean, a header does not).
const TokenCookie = "weft_console"

// Answers of a refused request. They name what is missing and where the
// token lives, never the token itself.
const (
	msgMissingToken = "missing API token: send Authorization: Bearer TOKEN (the token is in STATE_DIR/api-token)"
	msgWrongToken   = "wrong API token in the Authorization header (the token is in STATE_DIR/api-token)"
)

// auth checks requests against the API token. Its zero value lets
// everything through.
type auth struct {
	// sum is the SHA-256 of the token: comparing fixed-size digests in
	// constant time reveals neither the token nor its length.
	sum          [sha256.Size]byte
	on           bool
	protectReads bool
}

func newAuth(token string, protectReads bool) auth {
	if token == "" {
		return auth{}
	}
	return auth{sum: sha256.Sum256([]byte(token)), on: true, protectReads: protectReads}
}

// isWrite reports whether a method changes state.
func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// check returns "" when r may proceed, else the reason it may not.
func (a *auth) check(r *http.Request) string {
	if !a.on || r.URL.Path == "/healthz" {
		return ""
	}
	write := isWrite(r.Method)
	if !write && !a.protectReads {
		return ""
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := cutBearer(h)
		if !ok || !a.valid(tok) {
			return msgWrongToken
		}
		return ""
	}
	if !write {
		if ck, err := r.Cookie(TokenCookie); err == nil && a.valid(ck.Value) {
			return ""
		}
	}
	return msgMissingToken
}

// checkAlways is check for a request that needs the token whatever its
// method (the header, never the console's cookie).
func (a *auth) checkAlways(r *http.Request) string {
	if !a.on {
		return ""
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return msgMissingToken
	}
	if tok, ok := cutBearer(h); !ok || !a.valid(tok) {
		return msgWrongToken
	}
	return ""
}

func (a *auth) valid(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], a.sum[:]) == 1
}

// cutBearer reads "Bearer TOKEN"; the scheme is case-insensitive (RFC 9110).
func cutBearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
