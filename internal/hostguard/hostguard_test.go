package hostguard

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	g := New("127.0.0.1:15000", "cp.example.com")
	hostname, _ := os.Hostname()
	cases := []struct {
		host, origin string
		ok           bool
	}{
		{"127.0.0.1:15000", "", true},
		{"localhost:15000", "", true},
		{"LOCALHOST.:15000", "", true},
		{"[::1]:15000", "", true},
		{"10.1.2.3:15000", "", true}, // an IP literal cannot be a rebound name
		{"cp.example.com:15000", "", true},
		{hostname + ":15000", "", true},
		{"evil.example:15000", "", false},
		{"127.0.0.1.nip.io:15000", "", false},
		{"", "", false},
		{"127.0.0.1:15000", "http://127.0.0.1:15000", true},
		{"localhost:15000", "http://localhost:15000", true},
		{"127.0.0.1:15000", "http://evil.example", false},
		{"127.0.0.1:15000", "http://localhost:15000", false}, // another origin, even if the same machine
		{"127.0.0.1:15000", "http://127.0.0.1:3000", false},
		{"127.0.0.1:15000", "null", false},
		{"127.0.0.1:15000", "file://", false},
		{"127.0.0.1", "http://127.0.0.1", true},
		{"127.0.0.1", "http://127.0.0.1:80", true},
	}
	for _, c := range cases {
		r := httptest.NewRequest("POST", "/quitquitquit", nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if err := g.Check(r); (err == nil) != c.ok {
			t.Errorf("Host %q Origin %q: %v, want ok=%v", c.host, c.origin, err, c.ok)
		}
	}
}

func TestWrap(t *testing.T) {
	served := false
	h := New("127.0.0.1:0").Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
	r := httptest.NewRequest("POST", "/quitquitquit", strings.NewReader("x"))
	r.Host = "127.0.0.1:15000"
	r.Header.Set("Origin", "http://evil.example")
	r.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if served || w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "evil.example") {
		t.Errorf("cross-origin POST: served %v, %d %q", served, w.Code, w.Body.String())
	}
}
