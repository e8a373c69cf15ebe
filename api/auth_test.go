package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/console"
)

const testToken = "s3cr3t-token-0123456789abcdef"

// raw sends one request with an optional Authorization header and cookie,
// and returns the status and decoded JSON error.
func raw(t *testing.T, method, url, authz, cookie, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: api.TokenCookie, Value: cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var er api.ErrorResponse
	_ = json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er.Error, resp.Header
}

func TestWritesNeedToken(t *testing.T) {
	var logs bytes.Buffer
	f := newFixture(t, api.Options{Token: testToken, Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	applyBody := `{"sources":[{"name":"a.yaml","content":` + jsonString(seed) + `}]}`
	for _, tc := range []struct {
		name, method, path, authz, cookie, body string
		status                                  int
		msg                                     string
	}{
		{"apply without token", "POST", "/api/v1/apply", "", "", applyBody, 401, "missing API token"},
		{"apply with wrong token", "POST", "/api/v1/apply", "Bearer nope", "", applyBody, 401, "wrong API token"},
		{"apply with other scheme", "POST", "/api/v1/apply", "Basic " + testToken, "", applyBody, 401, "wrong API token"},
		{"apply with a prefix of the token", "POST", "/api/v1/apply", "Bearer " + testToken[:10], "", applyBody, 401, "wrong API token"},
		{"apply with the cookie only", "POST", "/api/v1/apply", "", testToken, applyBody, 401, "missing API token"},
		{"delete without token", "DELETE", "/api/v1/objects/gw/default/ingress-gateway", "", "", "", 401, "missing API token"},
		{"unknown path without token", "PUT", "/api/v1/nothing", "", "", "", 401, "missing API token"},
		{"apply with token", "POST", "/api/v1/apply", "Bearer " + testToken, "", applyBody, 200, ""},
		{"lower-case scheme", "POST", "/api/v1/apply", "bearer " + testToken, "", applyBody, 200, ""},
		{"reads are open", "GET", "/api/v1/objects", "", "", "", 200, ""},
		{"healthz is open", "GET", "/healthz", "", "", "", 200, ""},
	} {
		status, msg, hdr := raw(t, tc.method, f.srv.URL+tc.path, tc.authz, tc.cookie, tc.body)
		if status != tc.status || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, status, msg, tc.status, tc.msg)
		}
		if status == 401 && hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
		if strings.Contains(msg, testToken) {
			t.Errorf("%s: the answer shows the token", tc.name)
		}
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("the log shows the token:\n%s", logs.String())
	}

	// The client: no token, a wrong one, the right one.
	ctx := context.Background()
	_, err := client.New(f.srv.URL, client.WithTokenOrigin("/state/api-token")).Apply(ctx, src("a.yaml", seed), client.ApplyOptions{})
	if want := "weft: the control plane refused the write: missing API token (/state/api-token)"; err == nil || err.Error() != want || !client.IsUnauthorized(err) {
		t.Errorf("client without token: %v, want %q", err, want)
	}
	_, err = client.New(f.srv.URL, client.WithToken("nope")).Apply(ctx, src("a.yaml", seed), client.ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "wrong API token (STATE_DIR/api-token)") || strings.Contains(err.Error(), "nope") {
		t.Errorf("client with wrong token: %v", err)
	}
	good := client.New(f.srv.URL, client.WithToken(testToken))
	if resp, err := good.Apply(ctx, src("a.yaml", seed), client.ApplyOptions{}); err != nil || len(resp.Results) != 2 {
		t.Fatalf("client with token: %+v, %v", resp, err)
	}
	if _, err := good.Delete(ctx, "gw", "default", "ingress-gateway"); err != nil {
		t.Errorf("delete with token: %v", err)
	}
}

func TestProtectReads(t *testing.T) {
	f := newFixture(t, api.Options{Token: testToken, ProtectReads: true})
	for _, tc := range []struct {
		name, authz, cookie string
		status              int
	}{
		{"no token", "", "", 401},
		{"wrong cookie", "", "nope", 401},
		{"wrong header beats a good cookie", "Bearer nope", testToken, 401},
		{"header", "Bearer " + testToken, "", 200},
		{"console cookie", "", testToken, 200},
	} {
		if status, _, _ := raw(t, "GET", f.srv.URL+"/api/v1/objects", tc.authz, tc.cookie, ""); status != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, status, tc.status)
		}
	}
	if status, _, _ := raw(t, "GET", f.srv.URL+"/healthz", "", "", ""); status != 200 {
		t.Errorf("healthz: %d, want 200", status)
	}
	_, err := client.New(f.srv.URL).List(context.Background(), "", "", "")
	if err == nil || !strings.Contains(err.Error(), "refused the request: missing API token") {
		t.Errorf("read without token: %v", err)
	}
	if _, err := client.New(f.srv.URL, client.WithToken(testToken)).List(context.Background(), "", "", ""); err != nil {
		t.Errorf("read with token: %v", err)
	}
	// ProtectReads without a token protects nothing: there is nothing to check against.
	open := newFixture(t, api.Options{ProtectReads: true})
	if status, _, _ := raw(t, "POST", open.srv.URL+"/api/v1/apply", "", "", `{"sources":[{"name":"a","content":`+jsonString(seed)+`}]}`); status != 200 {
		t.Errorf("no token configured: apply answered %d", status)
	}
}

// The console's login cookie is the one the API accepts for reads.
func TestTokenCookieIsTheConsoles(t *testing.T) {
	if api.TokenCookie != console.CookieName {
		t.Errorf("api.TokenCookie = %q, console.CookieName = %q", api.TokenCookie, console.CookieName)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
