package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/weft-mesh/weft/jointoken"
)

// ErrInvalid marks errors of a Tokens implementation that are the
// caller's fault: the API answers them 400.
var ErrInvalid = errors.New("invalid request")

// Tokens is the control plane's store of identity-scoped join tokens.
type Tokens interface {
	// Create issues a token for namespace/serviceAccount expiring after
	// ttl (0: never) and returns its secret form, shown only here.
	Create(namespace, serviceAccount string, ttl time.Duration, note string) (string, jointoken.Token, error)
	// List describes every token (never a secret).
	List() []jointoken.Token
	// Revoke deletes a token (jointoken.ErrUnknown if there is none) and
	// disconnects the proxies that joined with it.
	Revoke(id string) (jointoken.Token, error)
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
	// TTL is how long the token admits proxies, as a Go duration ("24h");
	// "" or "0s": it never expires.
	TTL  string `json:"ttl,omitempty"`
	Note string `json:"note,omitempty"`
}

// TokenResponse answers POST /api/v1/tokens: the token (its only
// appearance) and its description.
type TokenResponse struct {
	Token string          `json:"token"`
	Info  jointoken.Token `json:"info"`
}

// TokenList answers GET /api/v1/tokens.
type TokenList struct {
	Tokens []jointoken.Token `json:"tokens"`
}

// tokenAccess checks what every token endpoint needs, reads included: a
// token's identity and purpose are for whoever holds the API token. It
// answers the request itself and reports false when it may not go on.
func (s *Server) tokenAccess(w http.ResponseWriter, r *http.Request) bool {
	if s.tokens == nil {
		writeError(w, http.StatusServiceUnavailable, "join tokens are not served here")
		return false
	}
	if reason := s.auth.checkAlways(r); reason != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
		writeError(w, http.StatusUnauthorized, reason)
		return false
	}
	return true
}

// createToken handles POST /api/v1/tokens.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	if !s.tokenAccess(w, r) {
		return
	}
	var req TokenRequest
	if err := readJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl %q: want a duration such as 24h, or 0 for a token that never expires", req.TTL))
			return
		}
	}
	tok, info, err := s.tokens.Create(req.Namespace, req.ServiceAccount, ttl, req.Note)
	switch {
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.log.Error("create join token", "err", err)
		writeError(w, http.StatusInternalServerError, "create join token: "+err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, TokenResponse{Token: tok, Info: info})
}

// listTokens handles GET /api/v1/tokens.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	if !s.tokenAccess(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, TokenList{Tokens: s.tokens.List()})
}

// revokeToken handles DELETE /api/v1/tokens/{id}.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if !s.tokenAccess(w, r) {
		return
	}
	id := r.PathValue("id")
	info, err := s.tokens.Revoke(id)
	switch {
	case errors.Is(err, jointoken.ErrUnknown):
		writeError(w, http.StatusNotFound, fmt.Sprintf("join token %q not found", id))
		return
	case err != nil:
		s.log.Error("revoke join token", "err", err)
		writeError(w, http.StatusInternalServerError, "revoke join token: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, info)
}
