package filter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"testing"
)

// recorder is a filter that logs its calls and may answer.
type recorder struct {
	name  string
	log   *[]string
	reply int
}

func (f recorder) Request(x *Exchange) bool {
	*f.log = append(*f.log, "req "+f.name)
	if f.reply != 0 {
		x.Reply(f.reply, f.name)
		return false
	}
	return true
}

func (f recorder) Response(x *Exchange, code int, h http.Header) {
	*f.log = append(*f.log, "resp "+f.name)
}

func TestExchangeTwoStages(t *testing.T) {
	var log []string
	listener := Chain{recorder{name: "l1", log: &log}, recorder{name: "l2", log: &log}}
	route := Chain{recorder{name: "r1", log: &log}, recorder{name: "r2", log: &log, reply: 418}}
	w := httptest.NewRecorder()
	x := NewExchange(w, httptest.NewRequest("GET", "/", nil))
	if !x.Run(listener) {
		t.Fatal("listener chain answered")
	}
	if x.Run(route) {
		t.Fatal("route chain did not answer")
	}
	want := []string{"req l1", "req l2", "req r1", "req r2", "resp r1", "resp l2", "resp l1"}
	if !slices.Equal(log, want) {
		t.Errorf("calls %v, want %v", log, want)
	}
	if w.Code != 418 || w.Body.String() != "r2" || x.Code != 418 {
		t.Errorf("reply %d %q, Code %d", w.Code, w.Body, x.Code)
	}

	// A listener filter that answers stops before the route chain; only the
	// listener filters before it see the response.
	log = nil
	listener = Chain{recorder{name: "l1", log: &log}, recorder{name: "l2", log: &log, reply: 403}}
	x = NewExchange(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if x.Run(listener) {
		t.Fatal("listener chain let the request through")
	}
	if want := []string{"req l1", "req l2", "resp l1"}; !slices.Equal(log, want) {
		t.Errorf("calls %v, want %v", log, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("a third chain on one exchange did not panic")
		}
	}()
	x.Run(nil)
	x.Run(nil)
}

func TestLocalReplyGRPC(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/pkg.Svc/M", nil)
	r.Header.Set("Content-Type", "application/grpc+proto")
	NewExchange(w, r).LocalReply(http.StatusForbidden, "RBAC: access denied")
	if w.Code != 200 || w.Header().Get("Grpc-Status") != "7" || w.Header().Get("Grpc-Message") != "RBAC: access denied" {
		t.Errorf("gRPC local reply: %d %v", w.Code, w.Header())
	}
	w = httptest.NewRecorder()
	NewExchange(w, httptest.NewRequest("GET", "/", nil)).LocalReply(http.StatusTooManyRequests, "local_rate_limited")
	if w.Code != 429 || w.Body.String() != "local_rate_limited" || w.Header().Get("Content-Type") != "text/plain" {
		t.Errorf("HTTP local reply: %d %q %v", w.Code, w.Body, w.Header())
	}
	for code, want := range map[int]int{401: 16, 403: 7, 429: 14, 503: 14, 500: 2} {
		if got := GRPCStatus(code); got != want {
			t.Errorf("GRPCStatus(%d) = %d, want %d", code, got, want)
		}
	}
}

func TestConnInfo(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "[::ffff:10.1.2.3]:5555"
	local := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 15006}
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
	u, _ := url.Parse("spiffe://cluster.local/ns/default/sa/sleep")
	r.TLS = &tls.ConnectionState{ServerName: "outbound_.80_._.httpbin", PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{u}}}}
	x := NewExchange(httptest.NewRecorder(), r)
	c := x.Conn()
	if c.Source != netip.MustParseAddrPort("10.1.2.3:5555") || c.Local != netip.MustParseAddrPort("127.0.0.1:15006") {
		t.Errorf("addresses %v -> %v", c.Source, c.Local)
	}
	if c.Principal != "spiffe://cluster.local/ns/default/sa/sleep" || c.SNI != "outbound_.80_._.httpbin" || !c.TLS || c.Cert == nil {
		t.Errorf("tls attributes %+v", c)
	}
	if x.Conn() != c {
		t.Error("Conn not kept for the exchange")
	}

	// remote_ip: the rightmost x-forwarded-for entry unless the HCM uses
	// the remote address.
	r.Header.Set("X-Forwarded-For", "1.1.1.1, 192.168.0.9")
	if got := x.RemoteIP(false); got != netip.MustParseAddr("192.168.0.9") {
		t.Errorf("RemoteIP(false) = %v", got)
	}
	if got := x.RemoteIP(true); got != netip.MustParseAddr("10.1.2.3") {
		t.Errorf("RemoteIP(true) = %v", got)
	}
	r.Header.Set("X-Forwarded-For", "garbage")
	if got := x.RemoteIP(false); got != netip.MustParseAddr("10.1.2.3") {
		t.Errorf("RemoteIP with a bad x-forwarded-for = %v", got)
	}
}

func TestInspectConnPlain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc := <-done
	defer sc.Close()
	info, err := InspectConn(sc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.TLS || info.Cert != nil || info.Local.String() != ln.Addr().String() || info.Source.String() != cc.LocalAddr().String() {
		t.Errorf("info %+v", info)
	}
}

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                 "/",
		"/admin":            "/admin",
		"/a/../admin":       "/admin",
		"/./admin":          "/admin",
		"//admin":           "/admin",
		"/%61dmin":          "/admin",
		"/%2e%2e/admin":     "/admin",
		"/a/b/..":           "/a/",
		"/a/b/.":            "/a/b/",
		"/a/%2f/b":          "/a/%2F/b",
		"/x.y/..z":          "/x.y/..z",
		"/a/.hidden":        "/a/.hidden",
		"/../../etc/passwd": "/etc/passwd",
		"/a/":               "/a/",
		"/%zz":              "/%25zz",
	} {
		if got := NormalizePath(in); got != want {
			t.Errorf("NormalizePath(%q) = %q, want %q", in, got, want)
		}
	}
	if a := testing.AllocsPerRun(100, func() { NormalizePath("/api/v1/items") }); a != 0 {
		t.Errorf("a clean path allocates %v times", a)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "//x", "/%2e/", "/a%2Fb/./c/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		n := NormalizePath(p)
		if NormalizePath(n) != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", p, n, NormalizePath(n))
		}
	})
}

func TestFlagsString(t *testing.T) {
	if RBACDenied.String() != "RBAC" || RateLimited.String() != "RL" || (RateLimited|NoRoute).String() != "NR,RL" {
		t.Errorf("flags %q %q %q", RBACDenied, RateLimited, RateLimited|NoRoute)
	}
}
