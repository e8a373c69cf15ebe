package accesslog

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

func entry() *Entry {
	return &Entry{
		Start: time.Date(2026, 3, 1, 12, 30, 45, 123e6, time.UTC), Method: "GET", Path: "/reviews/0?x=1", Protocol: "HTTP/1.1",
		Code: 503, Flags: "UF,URX", BytesReceived: 0, BytesSent: 91, Duration: 12 * time.Millisecond, UpstreamServiceTime: -1,
		UserAgent: `curl/8 "q"`, RequestID: "3c1c9d3e-aaaa", Authority: "reviews:9080", UpstreamHost: "127.0.0.1:9081",
		UpstreamCluster: "outbound|9080|v2|reviews.default.svc.cluster.local", DownstreamRemote: "127.0.0.1:50000", Route: "default",
	}
}

func TestText(t *testing.T) {
	got := string(AppendText(nil, entry()))
	want := `[2026-03-01T12:30:45.123Z] "GET /reviews/0?x=1 HTTP/1.1" 503 UF,URX - - "-" 0 91 12 - "-" "curl/8 "q"" "3c1c9d3e-aaaa" "reviews:9080" "127.0.0.1:9081" outbound|9080|v2|reviews.default.svc.cluster.local - - 127.0.0.1:50000 - default` + "\n"
	if got != want {
		t.Errorf("text line\n got %s\nwant %s", got, want)
	}
	tcp := string(AppendText(nil, &Entry{Start: time.Unix(0, 0), UpstreamServiceTime: -1, Flags: "UF"}))
	if want := `[1970-01-01T00:00:00.000Z] "- - -" 0 UF - - "-" 0 0 0 - "-" "-" "-" "-" "-" - - - - - -` + "\n"; tcp != want {
		t.Errorf("tcp line\n got %s\nwant %s", tcp, want)
	}
}

func TestJSON(t *testing.T) {
	line := AppendJSON(nil, entry())
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	for k, want := range map[string]any{
		"start_time": "2026-03-01T12:30:45.123Z", "method": "GET", "path": "/reviews/0?x=1", "protocol": "HTTP/1.1",
		"response_code": 503.0, "response_flags": "UF,URX", "bytes_received": 0.0, "bytes_sent": 91.0, "duration": 12.0,
		"upstream_host": "127.0.0.1:9081", "upstream_cluster": "outbound|9080|v2|reviews.default.svc.cluster.local",
		"x_forwarded_for": nil, "user_agent": `curl/8 "q"`, "request_id": "3c1c9d3e-aaaa", "authority": "reviews:9080",
		"upstream_service_time": nil, "route_name": "default", "rbac_policy": nil, "audit": false,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}
	if line[len(line)-1] != '\n' {
		t.Error("no trailing newline")
	}
}

func TestJSONAuthorization(t *testing.T) {
	e := entry()
	e.Audit, e.RBACPolicy = true, "ns[default]-policy[deny-admin]-rule[0]"
	var m map[string]any
	if err := json.Unmarshal(AppendJSON(nil, e), &m); err != nil {
		t.Fatal(err)
	}
	if m["audit"] != true || m["rbac_policy"] != e.RBACPolicy {
		t.Errorf("audit %#v, rbac_policy %#v", m["audit"], m["rbac_policy"])
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func TestLoggerAsync(t *testing.T) {
	out := &syncBuffer{}
	l := New(JSON, out, 0)
	for range 10 {
		l.Log(entry())
	}
	l.Close()
	if n := bytes.Count(out.b.Bytes(), []byte("\n")); n != 10 {
		t.Fatalf("%d lines, want 10", n)
	}
	if New(Off, out, 0) != nil {
		t.Error("off: want a nil logger")
	}
	var nl *Logger
	nl.Log(entry()) // discards
}

// blocked never returns from Write until released.
type blocked struct{ release chan struct{} }

func (b blocked) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

func TestLoggerNeverBlocks(t *testing.T) {
	b := blocked{release: make(chan struct{})}
	l := New(Text, b, 4)
	done := make(chan struct{})
	go func() {
		for range 100 {
			l.Log(entry())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Log blocked on a stuck output")
	}
	if l.Dropped() == 0 {
		t.Error("no line dropped")
	}
	close(b.release)
	l.Close()
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": Off, "off": Off, "text": Text, "json": JSON} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("xml accepted")
	}
}

// A JWT sent as ?access_token= is a credential: logs never show it.
func TestRedactPath(t *testing.T) {
	for in, want := range map[string]string{
		"/productpage":                     "/productpage",
		"/p?x=1":                           "/p?x=1",
		"/p?access_token=eyJhbGciOi.x.y":   "/p?access_token=[redacted]",
		"/p?a=1&access_token=abc&b=2":      "/p?a=1&access_token=[redacted]&b=2",
		"/p?my_access_token=abc":           "/p?my_access_token=abc",
		"/access_token=abc":                "/access_token=abc",
		"/p?access_token=a&access_token=b": "/p?access_token=[redacted]&access_token=[redacted]",
	} {
		if got := RedactPath(in); got != want {
			t.Errorf("RedactPath(%q) = %q, want %q", in, got, want)
		}
	}
	e := &Entry{Method: "GET", Path: "/p?access_token=secret.jwt.value", Code: 200}
	for _, line := range []string{string(AppendText(nil, e)), string(AppendJSON(nil, e))} {
		if strings.Contains(line, "secret.jwt.value") || !strings.Contains(line, "access_token=[redacted]") {
			t.Errorf("log line shows the token: %s", line)
		}
	}
	if n := testing.AllocsPerRun(100, func() { RedactPath("/productpage?u=normal") }); n != 0 {
		t.Errorf("%v allocations for a path without a token", n)
	}
}
