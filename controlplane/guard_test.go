package controlplane

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weft-mesh/weft/internal/rawhttp"
)

// rawStatus sends one HTTP/1.1 request as text over a real socket and
// returns the answer's status and body.
func rawStatus(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	resp, err := rawhttp.Send(addr, req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status, resp.Body
}

// TestAPIRefusesWebPages: reads are open on loopback, so the API, console
// and telemetry refuse what only a web page would send: another site's
// Origin (even with the API token, which a page could have learned) and a
// Host that is not the server's (DNS rebinding). Names given in APIHosts
// are the server's.
func TestAPIRefusesWebPages(t *testing.T) {
	cp := startCPIn(t, t.TempDir(), Options{APIHosts: []string{"cp.example.com"}})
	addr := cp.APIAddr()
	_, port, _ := net.SplitHostPort(addr)
	req := func(method, path, host string, headers ...string) (int, string) {
		r := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, host)
		for _, h := range headers {
			r += h + "\r\n"
		}
		if method == "POST" {
			r += "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}"
		} else {
			r += "\r\n"
		}
		return rawStatus(t, addr, r)
	}
	for _, path := range []string{"/api/v1/objects", "/", "/metrics", "/api/v1/graph"} {
		if code, body := req("GET", path, "evil.example:"+port); code != http.StatusForbidden || !strings.Contains(body, "evil.example") {
			t.Errorf("GET %s with Host evil.example: %d %s, want 403", path, code, body)
		}
		for _, host := range []string{addr, "localhost:" + port, "cp.example.com:" + port} {
			if code, _ := req("GET", path, host); code != http.StatusOK {
				t.Errorf("GET %s with Host %s: %d, want 200", path, host, code)
			}
		}
	}
	auth := "Authorization: Bearer " + cp.APIToken()
	if code, body := req("POST", "/api/v1/apply", addr, auth, "Origin: http://evil.example"); code != http.StatusForbidden || !strings.Contains(body, "cross-origin") {
		t.Errorf("cross-origin apply: %d %s, want 403", code, body)
	}
	if code, _ := req("POST", "/api/v1/telemetry", addr, "Origin: null"); code != http.StatusForbidden {
		t.Errorf("telemetry with Origin null: %d, want 403", code)
	}
	// The same request from the console itself (same origin) gets through
	// to the API, which judges the body.
	if code, body := req("POST", "/api/v1/apply", addr, auth, "Origin: http://"+addr); code != http.StatusBadRequest || !strings.Contains(body, "no sources") {
		t.Errorf("same-origin apply: %d %s, want the API's own 400", code, body)
	}
}
