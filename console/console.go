// Package console serves weft's web console: a single-page app (vanilla
// JS and SVG, embedded in the binary, no CDN) over the control plane's
// JSON API, with an optional login token for non-loopback addresses.
// README.md documents the views and the DOM hooks tests rely on.
package console

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// CookieName holds the login token in the browser.
const CookieName = "weft_console"

// Options configure a Console.
type Options struct {
	// Token, when set, is required to see the console and to read the
	// telemetry API: as the cookie set by /login, as ?token= on the first
	// visit, or as "Authorization: Bearer TOKEN". Empty means open.
	Token string
}

// Console serves the web UI.
type Console struct {
	token  string
	static http.Handler
	files  fs.FS
}

// New returns a Console.
func New(o Options) *Console {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return &Console{token: o.Token, files: sub, static: http.StripPrefix("/assets/", http.FileServerFS(sub))}
}

// NewToken returns a random login token.
func NewToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("console token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// NeedsToken reports whether an API address is reachable from other hosts,
// so the console must ask for a token: anything but a loopback IP or
// "localhost".
func NeedsToken(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// Register mounts the console on mux: GET /, /console/..., /assets/...,
// and /login, /logout.
func (c *Console) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.index)
	mux.HandleFunc("GET /console/", c.index) // deep links land on the app
	mux.Handle("GET /assets/", c.static)     // not secret: the login page uses them too
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
}

// Protect wraps h so it answers 401 without a valid token.
func (c *Console) Protect(h http.Handler) http.Handler {
	if c.token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.authorized(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error": "log in to the console first (GET /login), or send Authorization: Bearer TOKEN"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (c *Console) authorized(r *http.Request) bool {
	if c.token == "" {
		return true
	}
	if ck, err := r.Cookie(CookieName); err == nil && c.valid(ck.Value) {
		return true
	}
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && c.valid(v) {
		return true
	}
	return false
}

func (c *Console) valid(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(c.token)) == 1
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: c.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, Expires: time.Now().Add(30 * 24 * time.Hour),
	})
}

func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	if c.token != "" && !c.authorized(r) {
		// The URL printed at startup carries ?token= once; trade it for a
		// cookie and drop it from the address bar.
		if t := r.URL.Query().Get("token"); t != "" && c.valid(t) {
			c.setCookie(w, r)
			http.Redirect(w, r, r.URL.Path, http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	data, err := fs.ReadFile(c.files, "index.html")
	if err != nil {
		http.Error(w, "console assets missing: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'")
	_, _ = w.Write(data)
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>weft console: log in</title>
<link rel="stylesheet" href="/assets/style.css"></head>
<body class="login"><form method="post" action="/login" class="login-box">
<h1>weft</h1>
<p>This control plane listens beyond localhost: enter its API token, the
file <code>api-token</code> in its state directory (the token in the URL
<code>weft up</code> prints).</p>
{{if .}}<p class="error">{{.}}</p>{{end}}
<input type="password" name="token" id="token" autofocus placeholder="token">
<button type="submit">Log in</button></form></body></html>
`))

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.token == "" || c.authorized(r) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginTmpl.Execute(w, "")
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if c.token != "" && !c.valid(r.PostFormValue("token")) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_ = loginTmpl.Execute(w, "Wrong token.")
		return
	}
	if c.token != "" {
		c.setCookie(w, r)
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
