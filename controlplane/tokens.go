package controlplane

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/jointoken"
	"github.com/weft-mesh/weft/xds/server"
)

// Join token scopes (Options.JoinTokenScope).
const (
	// JoinScopeIdentity, the default: proxies join only with tokens
	// scoped to one namespace and service account (`weft token create`).
	JoinScopeIdentity = "identity"
	// JoinScopeMesh also accepts the mesh-wide STATE_DIR/join-token, with
	// which a proxy may claim any identity in a member namespace.
	JoinScopeMesh = "mesh"
)

// setupJoinTokens opens the store of scoped tokens and, with the mesh
// scope, loads or creates the mesh-wide token.
func (c *ControlPlane) setupJoinTokens() error {
	var err error
	if c.tokens, err = jointoken.Open(filepath.Join(c.opts.StateDir, JoinTokensFile)); err != nil {
		return err
	}
	meshFile := filepath.Join(c.opts.StateDir, JoinTokenFile)
	switch c.opts.JoinTokenScope {
	case JoinScopeMesh:
		if c.joinToken, err = loadOrCreateToken(meshFile); err != nil {
			return fmt.Errorf("join token: %w", err)
		}
		c.log.Warn("the mesh-wide join token is on (--join-token-scope mesh): whoever holds " + meshFile + " may join as any workload identity")
	case "", JoinScopeIdentity:
		if _, err := os.Stat(meshFile); err == nil {
			c.log.Info("ignoring the mesh-wide join token: proxies join with identity-scoped tokens (weft token create); --join-token-scope mesh accepts it", "file", meshFile)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("join token: %w", err)
		}
	default:
		return fmt.Errorf("join token scope %q: want %s or %s", c.opts.JoinTokenScope, JoinScopeIdentity, JoinScopeMesh)
	}
	return nil
}

// meshToken reports whether tok is the mesh-wide join token (when on).
func (c *ControlPlane) meshToken(tok string) bool {
	if c.joinToken == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(c.joinToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// authenticate is the xDS server's Authenticate: the stream's bearer token
// is the mesh-wide join token (a mesh principal) or a scoped token, whose
// principal admits its own identity only.
func (c *ControlPlane) authenticate(ctx context.Context) (server.Principal, error) {
	tok, err := server.BearerToken(ctx)
	if err != nil {
		return server.Principal{}, err
	}
	if c.meshToken(tok) {
		return server.Principal{Mesh: true, Subject: "the mesh-wide join token"}, nil
	}
	t, err := c.tokens.Verify(tok)
	switch {
	case errors.Is(err, jointoken.ErrExpired):
		return server.Principal{}, status.Errorf(codes.Unauthenticated, "invalid join token: join token %s (for %s) expired at %s",
			t.ID, t.Identity(), t.Expires.Format(time.RFC3339))
	case err != nil:
		hint := "identity-scoped tokens come from `weft token create`"
		if c.joinToken == "" {
			hint += "; the mesh-wide token is accepted only with --join-token-scope mesh"
		}
		return server.Principal{}, status.Errorf(codes.Unauthenticated, "invalid join token (%s)", hint)
	}
	return server.Principal{Namespace: t.Namespace, ServiceAccount: t.ServiceAccount,
		Subject: "join token " + t.ID, Credential: t.ID}, nil
}

// revalidate is the xDS server's Revalidate: a stream that joined with a
// scoped token ends once the token is revoked or expires.
func (c *ControlPlane) revalidate(p server.Principal) error {
	if p.Credential == "" {
		return nil
	}
	switch err := c.tokens.Check(p.Credential); {
	case errors.Is(err, jointoken.ErrExpired):
		return status.Errorf(codes.Unauthenticated, "join token %s expired", p.Credential)
	case err != nil:
		return status.Errorf(codes.Unauthenticated, "join token %s was revoked", p.Credential)
	}
	return nil
}

// requireJoinToken admits telemetry reports that carry a join token the
// xDS server would accept: the mesh-wide one (when on) or a valid scoped
// one. Others get 401.
func (c *ControlPlane) requireJoinToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && !c.meshToken(tok) {
			_, err := c.tokens.Verify(tok)
			ok = err == nil
		}
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = fmt.Fprintf(w, "{\"error\": %q}\n", "telemetry reports need a join token (the one the proxy joined with)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// MintJoinToken issues a token for a proxy this process runs itself (the
// gateway of `weft up`): scoped to namespace/serviceAccount, kept in
// memory only, so it ends with the process.
func (c *ControlPlane) MintJoinToken(namespace, serviceAccount, note string) (string, error) {
	if err := c.checkTokenIdentity(namespace, serviceAccount); err != nil {
		return "", err
	}
	tok, _, err := c.tokens.Create(namespace, serviceAccount, 0, note, true)
	return tok, err
}

// checkTokenIdentity refuses identities no token may admit.
func (c *ControlPlane) checkTokenIdentity(namespace, serviceAccount string) error {
	if err := config.ValidateIdentity(namespace, serviceAccount); err != nil {
		return err
	}
	if namespace == controlPlaneNamespace && serviceAccount == controlPlaneServiceAccount {
		return fmt.Errorf("service account %s/%s is reserved for the control plane", namespace, serviceAccount)
	}
	return nil
}

// apiTokens serves the API's /api/v1/tokens endpoints from the store.
type apiTokens struct{ c *ControlPlane }

// apiTokens returns the join-token endpoints' backend, nil in a cluster,
// where proxies present ServiceAccount tokens and there are no join
// tokens to issue (the API then answers 503).
func (c *ControlPlane) apiTokens() api.Tokens {
	if c.tokens == nil {
		return nil
	}
	return apiTokens{c}
}

func (t apiTokens) Create(namespace, serviceAccount string, ttl time.Duration, note string) (string, jointoken.Token, error) {
	if err := t.c.checkTokenIdentity(namespace, serviceAccount); err != nil {
		return "", jointoken.Token{}, fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	tok, info, err := t.c.tokens.Create(namespace, serviceAccount, ttl, note, false)
	if err == nil {
		t.c.log.Info("join token created", "id", info.ID, "identity", info.Identity(), "expires", info.Expires, "note", note)
	}
	return tok, info, err
}

func (t apiTokens) List() []jointoken.Token { return t.c.tokens.List() }

// Revoke deletes the token and ends the xDS streams that joined with it
// (the push revalidates every stream).
func (t apiTokens) Revoke(id string) (jointoken.Token, error) {
	info, err := t.c.tokens.Revoke(id)
	if err != nil {
		return info, err
	}
	t.c.log.Info("join token revoked", "id", id, "identity", info.Identity())
	t.c.xds.Push("join token " + id + " revoked")
	return info, nil
}
