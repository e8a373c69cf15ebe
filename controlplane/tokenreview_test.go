package controlplane

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/weft-mesh/weft/xds/server"
)

// jwt makes an unsigned token with an exp claim: the fake API server below
// decides what it means, the reviewer only reads exp for its cache.
func jwt(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))) + ".sig"
}

// fakeReviews answers TokenReviews from a table of token -> (user,
// audiences) and counts the calls.
func fakeReviews(t *testing.T, table map[string]authv1.TokenReviewStatus) (*tokenReviewer, *int) {
	t.Helper()
	kc := kubefake.NewClientset()
	calls := new(int)
	kc.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		*calls++
		tr := a.(k8stesting.CreateAction).GetObject().(*authv1.TokenReview)
		if got := tr.Spec.Audiences; len(got) != 1 || got[0] != "weft" {
			t.Errorf("review asked for audiences %v", got)
		}
		out := tr.DeepCopy()
		out.Status = table[tr.Spec.Token]
		return true, out, nil
	})
	return newTokenReviewer(kc, ""), calls
}

func TestTokenReview(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	good, short := jwt(now.Add(time.Hour)), jwt(now.Add(time.Minute))
	sa := authv1.UserInfo{Username: "system:serviceaccount:shop:reviews"}
	r, calls := fakeReviews(t, map[string]authv1.TokenReviewStatus{
		good:        {Authenticated: true, User: sa, Audiences: []string{"weft"}},
		short:       {Authenticated: true, User: sa, Audiences: []string{"weft"}},
		"other-aud": {Authenticated: true, User: sa, Audiences: []string{"https://kubernetes.default.svc"}},
		"no-aud":    {Authenticated: true, User: sa},
		"user":      {Authenticated: true, User: authv1.UserInfo{Username: "alice"}, Audiences: []string{"weft"}},
		"forged":    {Authenticated: false, Error: "invalid bearer token"},
	})
	r.now = func() time.Time { return now }
	ctx := context.Background()

	p, err := r.review(ctx, good)
	if err != nil || p != (server.Principal{Namespace: "shop", ServiceAccount: "reviews", Subject: sa.Username}) {
		t.Fatalf("review(good) = %+v, %v", p, err)
	}
	if _, err := r.review(ctx, good); err != nil || *calls != 1 {
		t.Errorf("second review asked the API server again (%d calls, %v)", *calls, err)
	}
	// The cache holds a verdict for tokenCacheTTL at most, and never past
	// the token's expiry.
	now = now.Add(tokenCacheTTL + time.Second)
	if _, err := r.review(ctx, good); err != nil || *calls != 2 {
		t.Errorf("after the cache TTL: %d calls, %v", *calls, err)
	}
	if _, err := r.review(ctx, short); err != nil || *calls != 3 {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := r.review(ctx, short); *calls != 4 {
		t.Errorf("a token past its expiry was answered from the cache (%d calls, %v)", *calls, err)
	}

	for tok, want := range map[string]string{
		"other-aud": "not for audience", "no-aud": "not for audience", "user": "is not a ServiceAccount",
		"forged": "invalid bearer token", "": "missing credential",
	} {
		_, err := r.review(ctx, tok)
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), want) {
			t.Errorf("review(%q) = %v, want Unauthenticated saying %q", tok, err, want)
		}
	}

	// The telemetry intake takes the same credential.
	h := r.protect(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for tok, want := range map[string]int{good: http.StatusNoContent, "forged": http.StatusUnauthorized, "": http.StatusUnauthorized} {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/telemetry", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("intake with %q: %d, want %d", tok, rec.Code, want)
		}
	}
}

// An in-process proxy's credential proves its identity to this process
// alone, without asking the API server; a similar-looking token does not.
func TestInternalCredential(t *testing.T) {
	r, calls := fakeReviews(t, nil)
	tok, err := r.mintInternal("default", "flagger-loadtester")
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.review(context.Background(), tok)
	if err != nil || p.Namespace != "default" || p.ServiceAccount != "flagger-loadtester" || *calls != 0 {
		t.Fatalf("review(internal) = %+v, %v (%d API calls)", p, err, *calls)
	}
	other, _ := newTokenReviewer(kubefake.NewClientset(), "").mintInternal("default", "flagger-loadtester")
	if _, err := r.review(context.Background(), other); status.Code(err) != codes.Unauthenticated || *calls != 1 {
		t.Errorf("another process' credential: %v (%d API calls)", err, *calls)
	}
}

func TestServiceAccountOf(t *testing.T) {
	for in, ok := range map[string]bool{
		"system:serviceaccount:ns:sa": true, "system:serviceaccount:ns": false, "system:serviceaccount::sa": false,
		"system:serviceaccount:ns:sa:x": false, "alice": false,
	} {
		if _, _, got := serviceAccountOf(in); got != ok {
			t.Errorf("serviceAccountOf(%q) = %v", in, got)
		}
	}
}
