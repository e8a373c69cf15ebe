package admin

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weft-mesh/weft/internal/rawhttp"
)

// rawRequest sends req (HTTP/1.1 text) to addr over a real socket and
// returns the status code of the answer.
func rawRequest(t *testing.T, addr, req string) int {
	t.Helper()
	resp, err := rawhttp.Send(addr, req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status
}

// TestAdminRefusesWebPages: issue 14 stopped a gateway for good with a
// POST /quitquitquit any web page can send (Origin: http://evil.example,
// Content-Type: text/plain), and read /config_dump under any Host. The
// admin server refuses both, and still serves curl and the CLI.
func TestAdminRefusesWebPages(t *testing.T) {
	var quits atomic.Int32
	s := New(Options{Address: "127.0.0.1:0", Ready: func() bool { return true }, Quit: func() { quits.Add(1) }})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	addr := s.Addr()
	_, port, _ := net.SplitHostPort(addr)

	evil := "POST /quitquitquit HTTP/1.1\r\nHost: " + addr + "\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx"
	if code := rawRequest(t, addr, evil); code != http.StatusForbidden || quits.Load() != 0 {
		t.Errorf("cross-origin POST /quitquitquit: %d, quit called %d times; want 403 and no quit", code, quits.Load())
	}
	for _, host := range []string{"evil.example:" + port, "attacker.test", "127.0.0.1.nip.io:" + port} {
		if code := rawRequest(t, addr, "GET /config_dump HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); code != http.StatusForbidden {
			t.Errorf("GET /config_dump with Host %s: %d, want 403 (DNS rebinding)", host, code)
		}
	}
	for _, host := range []string{addr, "localhost:" + port} {
		if code := rawRequest(t, addr, "GET /config_dump HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); code != http.StatusOK {
			t.Errorf("GET /config_dump with Host %s: %d, want 200", host, code)
		}
	}
	same := "POST /quitquitquit HTTP/1.1\r\nHost: " + addr + "\r\nOrigin: http://" + addr + "\r\nContent-Length: 0\r\n\r\n"
	if code := rawRequest(t, addr, same); code != http.StatusOK {
		t.Errorf("same-origin POST /quitquitquit: %d, want 200", code)
	}
	if !strings.Contains(addr, "127.0.0.1") {
		t.Errorf("admin bound at %s, want loopback", addr)
	}
}
