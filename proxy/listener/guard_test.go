package listener

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/internal/rawhttp"
	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/sds"
)

// guarded serves an HTTP listener with limits l through Dispatch, as the
// runtime does; the handler reads the body and answers with its size.
// It returns the address and the number of requests the handler saw.
func guarded(t *testing.T, l Limits) (string, *atomic.Int64) {
	t.Helper()
	sel := NewSelector(&Spec{Name: "l", Chains: []Chain{{Name: "plain"}}, Limits: l}, sds.NewStore())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int64
	s := Serve("l", Dispatch(ln, func() *Selector { return sel }), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %s body=%d", r.Method, r.URL.Path, len(b))
	}), ServerOptions{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s.Addr().String(), &seen
}

func headers(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "X-H%d: %d\r\n", i, i)
	}
	return b.String()
}

// TestFramingGuardRefuses: issue 14's requests, as raw bytes over a real
// socket. Content-Length with Transfer-Encoding, an obs-folded
// Transfer-Encoding, Transfer-Encoding in HTTP/1.0, and header sections
// over Envoy's limits are refused (400, or 431 for the limits) and the
// connection closed, before any handler sees them; net/http alone read the
// body as chunked and kept the connection.
func TestFramingGuardRefuses(t *testing.T) {
	addr, seen := guarded(t, Limits{})
	big := "X-Big: " + strings.Repeat("a", 61<<10) + "\r\n"
	cases := map[string]struct {
		req    string
		status int
	}{
		"CL then TE":        {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		"TE then CL":        {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		"TE case":           {"POST /a HTTP/1.1\r\nHost: x\r\ntransfer-ENCODING: chunked\r\ncontent-length: 0\r\n\r\n0\r\n\r\n", 400},
		"folded TE":         {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
		"folded TE with CL": {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding:\r\n\tchunked\r\n\r\n0\r\n\r\n", 400},
		"folded other":      {"GET /a HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n", 400},
		"TE in HTTP/1.0":    {"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", 400},
		"two lengths":       {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		"101 headers":       {"GET /a HTTP/1.1\r\nHost: x\r\n" + headers(100) + "\r\n", 431},
		"20000 headers":     {"GET /a HTTP/1.1\r\nHost: x\r\n" + headers(20000) + "\r\n", 431},
		"61 KiB":            {"GET /a HTTP/1.1\r\nHost: x\r\n" + big + "\r\n", 431},
		"1 MiB":             {"GET /a HTTP/1.1\r\nHost: x\r\n" + strings.Repeat(big, 17) + "\r\n", 431},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			resp, err := rawhttp.SendWatchClose(addr, c.req, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != c.status || !resp.Closed || !resp.ConnectionClose {
				t.Errorf("%d (closed %v, Connection: close %v) %q; want %d and the connection closed", resp.Status, resp.Closed, resp.ConnectionClose, resp.Body, c.status)
			}
		})
	}
	if n := seen.Load(); n != 0 {
		t.Errorf("the handler saw %d refused requests", n)
	}
}

// TestFramingGuardPasses: within the limits, every framing works, across
// requests on one connection: chunked bodies with trailers, bodies holding
// text that looks like headers, 100 headers, 60 KiB of them, HTTP/1.0.
func TestFramingGuardPasses(t *testing.T) {
	addr, seen := guarded(t, Limits{})
	lookalike := "x\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n"
	pipeline := "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n" + fmt.Sprintf("%x\r\n%s\r\n", len(lookalike), lookalike) + "0\r\nX-Trailer: t\r\n\r\n" +
		fmt.Sprintf("POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(lookalike), lookalike) +
		"GET /many HTTP/1.1\r\nHost: x\r\n" + headers(99) + "\r\n" +
		"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 59<<10) + "\r\n\r\n" +
		"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// One byte at a time for the first part, so every state is crossed by
	// a read boundary, then the rest at once.
	for i := range 200 {
		if _, err := c.Write([]byte{pipeline[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(c, pipeline[200:]); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POST /chunked body=" + fmt.Sprint(5+len(lookalike)), fmt.Sprintf("POST /length body=%d", len(lookalike)),
		"GET /many body=0", "GET /big body=0", "GET /last body=0"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("no %q in the answers:\n%s", want, got)
		}
	}
	if n := seen.Load(); n != 5 {
		t.Errorf("handler saw %d requests, want 5", n)
	}
	resp, err := rawhttp.Send(addr, "GET /old HTTP/1.0\r\n\r\n", 10*time.Second)
	if err != nil || resp.Status != 200 {
		t.Errorf("HTTP/1.0: %+v %v", resp, err)
	}
}

// TestFramingGuardPipelinedSmuggle: a valid request followed on the same
// connection by one with both framings gets its answer, then the second
// gets 400 and the connection closes; nothing reaches the handler as a
// smuggled request.
func TestFramingGuardPipelinedSmuggle(t *testing.T) {
	addr, seen := guarded(t, Limits{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte("GET /first")) || !bytes.Contains(got, []byte("400 Bad Request")) || bytes.Contains(got, []byte("smuggled")) {
		t.Errorf("answers:\n%s", got)
	}
	if n := seen.Load(); n != 1 {
		t.Errorf("handler saw %d requests, want 1 (/first)", n)
	}
}

// TestFramingGuardConfiguredLimits: the HCM's max_request_headers_kb and
// max_headers_count replace Envoy's defaults.
func TestFramingGuardConfiguredLimits(t *testing.T) {
	addr, _ := guarded(t, Limits{MaxRequestHeadersKB: 2, MaxHeadersCount: 5})
	for req, want := range map[string]int{
		"GET / HTTP/1.1\r\nHost: x\r\n" + headers(4) + "\r\n":                                   200,
		"GET / HTTP/1.1\r\nHost: x\r\n" + headers(5) + "\r\n":                                   431,
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 1900) + "\r\n\r\n":           200,
		"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 2100) + "\r\n\r\n":           431,
		"GET /" + strings.Repeat("p", 2100) + " HTTP/1.1\r\nHost: x\r\n\r\n":                    431,
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n": 400,
	} {
		resp, err := rawhttp.Send(addr, req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != want {
			t.Errorf("%.60q...: %d, want %d", req, resp.Status, want)
		}
	}
}

// TestFramingGuardTLS: over a TLS chain the guard handshakes and checks
// the decrypted bytes the same way; requests carry r.TLS.
func TestFramingGuardTLS(t *testing.T) {
	m := newMesh(t)
	var cur atomic.Pointer[Selector]
	cur.Store(selector(t, m, "PERMISSIVE"))
	addr := serve(t, &cur)
	leaf := m.ca.Issue(t, mtlstest.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/client"}})
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{leaf.TLS}, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	c := dial()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	got, _ := io.ReadAll(c)
	c.Close()
	if !bytes.Contains(got, []byte("200 OK")) || !bytes.Contains(got, []byte("HTTP/1.1 spiffe://cluster.local/ns/default/sa/client")) {
		t.Errorf("good request over mTLS:\n%s", got)
	}
	c = dial()
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	got, _ = io.ReadAll(c) // ends: the server closes
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 400 Bad Request")) {
		t.Errorf("Content-Length with Transfer-Encoding over mTLS:\n%s", got)
	}
}

// TestParseHeaderLimits: the HCM's limits, with Envoy's bounds.
func TestParseHeaderLimits(t *testing.T) {
	base := func() *hcmv3.HttpConnectionManager {
		return &hcmv3.HttpConnectionManager{StatPrefix: "x",
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "http.80"}}}
	}
	m := base()
	m.MaxRequestHeadersKb = wrapperspb.UInt32(32)
	m.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(50)}
	s, err := Parse(testListener(t, m))
	if err != nil || s.Limits != (Limits{MaxRequestHeadersKB: 32, MaxHeadersCount: 50}) {
		t.Fatalf("Parse = %+v, %v", s, err)
	}
	if s, err := Parse(testListener(t, base())); err != nil || s.Limits != (Limits{}) || s.Limits.bytes() != 60<<10 || s.Limits.count() != 100 {
		t.Fatalf("without limits: %+v, %v; want Envoy's defaults", s, err)
	}
	for want, mod := range map[string]func(*hcmv3.HttpConnectionManager){
		"max_request_headers_kb: 0":    func(m *hcmv3.HttpConnectionManager) { m.MaxRequestHeadersKb = wrapperspb.UInt32(0) },
		"max_request_headers_kb: 9000": func(m *hcmv3.HttpConnectionManager) { m.MaxRequestHeadersKb = wrapperspb.UInt32(9000) },
		"max_headers_count: 0": func(m *hcmv3.HttpConnectionManager) {
			m.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(0)}
		},
		"common_http_protocol_options.idle_timeout: unsupported field": func(m *hcmv3.HttpConnectionManager) {
			m.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationOf(time.Second)}
		},
	} {
		m := base()
		mod(m)
		if _, err := Parse(testListener(t, m)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

// TestHTTP2HeaderLimits: HTTP/2 requests are held to the same limits by the handler.
func TestHTTP2HeaderLimits(t *testing.T) {
	addr, seen := guarded(t, Limits{MaxHeadersCount: 20, MaxRequestHeadersKB: 2})
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: p}}
	t.Cleanup(c.CloseIdleConnections)
	do := func(n int, size int) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/h2", nil)
		for i := range n {
			req.Header.Set(fmt.Sprintf("X-H%d", i), "v")
		}
		if size > 0 {
			req.Header.Set("X-Big", strings.Repeat("b", size))
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 {
			t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := do(10, 0); code != 200 || !strings.Contains(body, "GET /h2") {
		t.Errorf("10 headers: %d %q", code, body)
	}
	if code, body := do(25, 0); code != 431 || !strings.Contains(body, "more than 20") {
		t.Errorf("25 headers: %d %q, want 431", code, body)
	}
	if code, body := do(1, 3000); code != 431 || !strings.Contains(body, "larger than 2 KiB") {
		t.Errorf("3 KB header: %d %q, want 431", code, body)
	}
	if n := seen.Load(); n != 1 {
		t.Errorf("handler saw %d requests, want 1", n)
	}
}
