package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func serve(c *Console, protected http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	c.Register(mux)
	mux.Handle("GET /api/v1/graph", c.Protect(protected))
	return mux
}

func get(t *testing.T, h http.Handler, path string, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

// TestServesEmbeddedAppWithHooks: the index, its assets, and the DOM hooks
// the browser tests rely on.
func TestServesEmbeddedAppWithHooks(t *testing.T) {
	mux := serve(New(Options{}), http.NotFoundHandler())
	r := get(t, mux, "/")
	index := body(r)
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	for _, hook := range []string{
		`<select id="edge-labels">`, `value="none"`, `value="requests"`, `value="responseTime"`, `value="throughput"`,
		`id="percentile"`, `id="graph"`, `/assets/app.js`, `/assets/style.css`, `data-view="traces"`, `data-view="config"`,
		`<th>mTLS</th>`,
	} {
		if !strings.Contains(index, hook) {
			t.Errorf("index.html lacks %s", hook)
		}
	}
	js := get(t, mux, "/assets/app.js")
	src := body(js)
	if js.StatusCode != 200 || !strings.Contains(js.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("app.js = %d %s", js.StatusCode, js.Header.Get("Content-Type"))
	}
	for _, hook := range []string{`'data-edge'`, `'edge-label'`, `'data-node'`, `/api/v1/graph`, `/api/v1/traces`, `/api/v1/objects`, `/api/v1/analyze`,
		`'edge-lock'`, `dataset.mtls`, `'badge mtls'`} {
		if !strings.Contains(src, hook) {
			t.Errorf("app.js lacks %s", hook)
		}
	}
	if strings.Contains(index+src, "http://") && strings.Contains(index+src, "cdn") {
		t.Error("assets must not load from a CDN")
	}
	if r := get(t, mux, "/assets/style.css"); r.StatusCode != 200 {
		t.Fatalf("style.css = %d", r.StatusCode)
	}
	if r := get(t, mux, "/console/graph"); r.StatusCode != 200 || !strings.Contains(body(r), `id="edge-labels"`) {
		t.Fatalf("deep link = %d", r.StatusCode)
	}
	if r := get(t, mux, "/assets/nope.js"); r.StatusCode != 404 {
		t.Fatalf("missing asset = %d", r.StatusCode)
	}
}

func TestTokenLogin(t *testing.T) {
	c := New(Options{Token: "s3cret"})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"nodes":[]}`) })
	mux := serve(c, api)

	if r := get(t, mux, "/"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("GET / without token = %d -> %s", r.StatusCode, r.Header.Get("Location"))
	}
	if r := get(t, mux, "/api/v1/graph"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API read without token = %d", r.StatusCode)
	}
	if r := get(t, mux, "/login"); r.StatusCode != 200 || !strings.Contains(body(r), `name="token"`) {
		t.Fatal("login page")
	}

	// Wrong token: refused.
	req := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {"nope"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("wrong token = %d", rec.Code)
	}
	// Right token: a cookie that opens the console and the API.
	req = httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {"s3cret"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].HttpOnly {
		t.Fatalf("login = %d, cookies %v", rec.Code, cookies)
	}
	if r := get(t, mux, "/", cookies...); r.StatusCode != 200 {
		t.Fatalf("GET / with cookie = %d", r.StatusCode)
	}
	if r := get(t, mux, "/api/v1/graph", cookies...); r.StatusCode != 200 {
		t.Fatalf("API with cookie = %d", r.StatusCode)
	}
	// The printed URL's ?token= is traded for the cookie.
	r := get(t, mux, "/?token=s3cret")
	if r.StatusCode != http.StatusSeeOther || len(r.Cookies()) != 1 || r.Header.Get("Location") != "/" {
		t.Fatalf("?token= = %d %v", r.StatusCode, r.Cookies())
	}
	// A bearer token works for scripts.
	req = httptest.NewRequest("GET", "/api/v1/graph", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("bearer = %d", rec.Code)
	}
}

func TestNeedsToken(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:15080": false, "[::1]:15080": false, "localhost:15080": false,
		"0.0.0.0:15080": true, ":15080": true, "10.0.0.5:15080": true, "[::]:15080": true,
	} {
		if got := NeedsToken(addr); got != want {
			t.Errorf("NeedsToken(%q) = %v, want %v", addr, got, want)
		}
	}
}
