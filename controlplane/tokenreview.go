package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weft-mesh/weft/xds/server"
)

// DefaultAudience is the audience of the projected ServiceAccount tokens
// proxies present in Kubernetes mode.
const DefaultAudience = "weft"

// Bounds of the token cache: a verdict is reused until the token expires,
// but never longer than tokenCacheTTL (a deleted pod or ServiceAccount
// invalidates its tokens), and the cache holds at most maxCachedTokens.
const (
	tokenCacheTTL   = 5 * time.Minute
	maxCachedTokens = 10000
)

// tokenReviewer authenticates ServiceAccount tokens with the API server's
// TokenReview: the Principal is the token's namespace and service
// account, so a proxy may claim that identity only.
type tokenReviewer struct {
	kube     kubernetes.Interface
	audience string
	now      func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cachedPrincipal
	// internal are the credentials this process minted for its own
	// in-process proxies (mintInternal), by the token's hash.
	internal map[[32]byte]server.Principal
}

type cachedPrincipal struct {
	p     server.Principal
	until time.Time
}

func newTokenReviewer(kube kubernetes.Interface, audience string) *tokenReviewer {
	if audience == "" {
		audience = DefaultAudience
	}
	return &tokenReviewer{kube: kube, audience: audience, now: time.Now, cache: map[[32]byte]cachedPrincipal{}, internal: map[[32]byte]server.Principal{}}
}

// mintInternal returns a credential for an in-process proxy of the
// control plane (the canary load tester's sidecar), which has no pod and
// so no ServiceAccount token: it proves identity namespace/serviceAccount
// to this process only, for its life. It never leaves the process.
func (r *tokenReviewer) mintInternal(namespace, serviceAccount string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("internal credential: %w", err)
	}
	tok := "weft-internal." + base64.RawURLEncoding.EncodeToString(b[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	r.internal[sha256.Sum256([]byte(tok))] = server.Principal{Namespace: namespace, ServiceAccount: serviceAccount,
		Subject: "weft-controlplane:" + namespace + "/" + serviceAccount}
	return tok, nil
}

// review returns the Principal of a token, or a gRPC status: Unauthenticated
// for a token the API server does not accept for the audience,
// Unavailable when it cannot be asked. The token is never logged or echoed.
func (r *tokenReviewer) review(ctx context.Context, token string) (server.Principal, error) {
	if token == "" {
		return server.Principal{}, status.Error(codes.Unauthenticated, "missing credential: present the pod's ServiceAccount token (audience "+r.audience+")")
	}
	key := sha256.Sum256([]byte(token))
	now := r.now()
	r.mu.Lock()
	c, ok := r.cache[key]
	ip, internal := r.internal[key]
	r.mu.Unlock()
	if internal {
		return ip, nil
	}
	if ok && now.Before(c.until) {
		return c.p, nil
	}
	res, err := r.kube.AuthenticationV1().TokenReviews().Create(ctx, &authv1.TokenReview{
		Spec: authv1.TokenReviewSpec{Token: token, Audiences: []string{r.audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return server.Principal{}, status.Errorf(codes.Unavailable, "token review: %v", err)
	}
	st := res.Status
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "not authenticated"
		}
		return server.Principal{}, status.Errorf(codes.Unauthenticated, "ServiceAccount token refused by the API server: %s", why)
	}
	// An API server that ignores audiences answers without them; only a
	// token that is for this audience will do.
	if !slices.Contains(st.Audiences, r.audience) {
		return server.Principal{}, status.Errorf(codes.Unauthenticated, "token is not for audience %q (it is for %v): mount a projected ServiceAccount token with audience %q", r.audience, st.Audiences, r.audience)
	}
	ns, sa, ok := serviceAccountOf(st.User.Username)
	if !ok {
		return server.Principal{}, status.Errorf(codes.Unauthenticated, "user %q is not a ServiceAccount", st.User.Username)
	}
	p := server.Principal{Namespace: ns, ServiceAccount: sa, Subject: st.User.Username}
	until := now.Add(tokenCacheTTL)
	if exp, ok := tokenExpiry(token); ok && exp.Before(until) {
		until = exp
	}
	r.remember(key, cachedPrincipal{p, until}, now)
	return p, nil
}

func (r *tokenReviewer) remember(key [32]byte, c cachedPrincipal, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= maxCachedTokens {
		for k, v := range r.cache {
			if !now.Before(v.until) {
				delete(r.cache, k)
			}
		}
	}
	if len(r.cache) >= maxCachedTokens {
		for k := range r.cache { // full of live tokens: forget any one
			delete(r.cache, k)
			break
		}
	}
	r.cache[key] = c
}

// authenticate is the xDS server's Authenticate in Kubernetes mode.
func (r *tokenReviewer) authenticate(ctx context.Context) (server.Principal, error) {
	tok, err := server.BearerToken(ctx)
	if err != nil {
		return server.Principal{}, err
	}
	return r.review(ctx, tok)
}

// protect admits HTTP requests carrying "Authorization: Bearer TOKEN" with
// a ServiceAccount token for the audience (telemetry reports from
// proxies), and answers others 401 (503 when the API server cannot say).
func (r *tokenReviewer) protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tok, _ := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		if _, err := r.review(req.Context(), strings.TrimSpace(tok)); err != nil {
			code := http.StatusUnauthorized
			if status.Code(err) == codes.Unavailable {
				code = http.StatusServiceUnavailable
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = fmt.Fprintf(w, "{\"error\": %q}\n", "telemetry reports need the proxy's ServiceAccount token: "+status.Convert(err).Message())
			return
		}
		h.ServeHTTP(w, req)
	})
}

// serviceAccountOf splits "system:serviceaccount:NS:SA".
func serviceAccountOf(user string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	return ns, sa, ok && ns != "" && sa != "" && !strings.Contains(sa, ":")
}

// tokenExpiry reads the exp claim of a JWT the API server has just
// vouched for (so its signature is not checked again here).
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}, false
	}
	exp, err := claims.Exp.Int64()
	if err != nil || exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(exp, 0), true
}
