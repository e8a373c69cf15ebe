// Package hostguard protects HTTP servers that trust who can reach them
// (the proxies' admin servers; the control plane's API and console, whose
// reads are open on loopback) from web pages: a page on any site can make
// the user's browser send a "simple" request (a POST with Content-Type
// text/plain needs no CORS preflight) to 127.0.0.1, and with DNS rebinding
// it can even read the answers, by pointing its own name at 127.0.0.1.
//
// A Guard refuses, with 403:
//   - a request whose Host is a name the server does not answer to (DNS
//     rebinding): only IP literals (a browser sends one only when it
//     connected to that address), "localhost", this machine's host name,
//     the host the server is bound to, and names configured as its own are
//     accepted;
//   - a request whose Origin is not the server itself (a cross-origin
//     request from a page: Origin is sent with every POST and CORS
//     request), including the opaque Origin "null".
//
// Clients that are not browsers (the CLI, proxies, curl, Prometheus) send
// no Origin and an address the server answers to, and pass.
package hostguard

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Guard checks requests; its zero value is not usable, see New.
type Guard struct {
	names map[string]bool // lower case, without trailing dot
	// Refuse answers a refused request; nil: 403 with the reason as
	// plain text.
	Refuse func(w http.ResponseWriter, err error)
}

// New returns a Guard for a server bound at addr (host:port) that also
// answers to the names in hosts (e.g. a DNS name of a control plane
// reachable from other hosts).
func New(addr string, hosts ...string) *Guard {
	g := &Guard{names: map[string]bool{"localhost": true}}
	if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
		g.names[normalize(h)] = true
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		g.names[normalize(name)] = true
	}
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" {
			g.names[normalize(h)] = true
		}
	}
	return g
}

func normalize(host string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
}

// hostOK reports whether host (a Host header's host, without the port) is
// one the server answers to.
func (g *Guard) hostOK(host string) bool {
	h := normalize(host)
	if net.ParseIP(h) != nil {
		return true
	}
	return g.names[h]
}

// splitHost splits a Host header or URL host into host and port, the port
// "" when absent.
func splitHost(hostport string) (string, string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return hostport, ""
}

// Check returns nil when r may be served, else why not.
func (g *Guard) Check(r *http.Request) error {
	host, port := splitHost(r.Host)
	if host == "" || !g.hostOK(host) {
		return fmt.Errorf("Host %q is not a name this server answers to; use its address, localhost or this machine's name (a web page using DNS rebinding would send another)", r.Host)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if origin == "null" || err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("cross-origin request refused: Origin %q is not this server", origin)
	}
	oh, op := splitHost(u.Host)
	if op == "" {
		op = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if port == "" {
		port = "80"
		if r.TLS != nil {
			port = "443"
		}
	}
	if normalize(oh) != normalize(host) || op != port {
		return fmt.Errorf("cross-origin request refused: Origin %q is not this server (%s)", origin, r.Host)
	}
	return nil
}

// Wrap returns h behind the guard: refused requests are answered by
// Refuse, or get 403 with the reason as plain text; either way the
// connection is closed after the answer.
func (g *Guard) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.Check(r); err != nil {
			w.Header().Set("Connection", "close")
			if g.Refuse != nil {
				g.Refuse(w, err)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintln(w, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}
