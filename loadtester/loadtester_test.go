package loadtester

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func post(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// TestLoadTester runs the seed's hey command against a real server, once
// at a time, and keeps gates per canary; webhooks to flagger-loadtester
// hosts are answered in process.
func TestLoadTester(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	var namespaces []string
	lt := New(Options{Client: func(_ context.Context, ns string) (*http.Client, error) {
		namespaces = append(namespaces, ns)
		return &http.Client{Transport: &http.Transport{Proxy: nil}}, nil
	}})
	defer lt.Close()
	c := &http.Client{Transport: Transport(lt, http.DefaultTransport)}
	base := "http://flagger-loadtester.test/"

	code, body := post(t, c, base, `{"name":"podinfo","namespace":"test","phase":"Progressing","metadata":{"cmd":"hey -z 1s -q 20 -c 2 `+target.URL+`/"}}`)
	if code != http.StatusAccepted || !strings.Contains(body, "started") {
		t.Fatalf("%d %s", code, body)
	}
	code, body = post(t, c, base, `{"name":"podinfo","namespace":"test","metadata":{"cmd":"hey -z 1s -q 20 -c 2 `+target.URL+`/"}}`)
	if code != http.StatusAccepted || !strings.Contains(body, "already running") {
		t.Fatalf("second start: %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		lt.mu.Lock()
		running := len(lt.running)
		lt.mu.Unlock()
		if running == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the load test did not end")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := hits.Load(); n < 20 || n > 40 || namespaces[0] != "test" {
		t.Errorf("%d requests for 1s at 2 x 20/s, namespaces %v", n, namespaces)
	}

	for _, tc := range []struct{ body, want string }{
		{`{"name":"p","namespace":"t","metadata":{"type":"bash","cmd":"curl x"}}`, "type \"bash\" is not supported"},
		{`{"name":"p","namespace":"t","metadata":{}}`, "metadata.cmd is required"},
		{`{"name":"p","namespace":"t","metadata":{"cmd":"hey -z 1m http://x/"}}`, "give -q"},
		{`not json`, "want a Flagger webhook payload"},
	} {
		if code, body := post(t, c, base, tc.body); code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s", tc.body, code, body)
		}
	}

	gate := `{"name":"podinfo","namespace":"test"}`
	for _, step := range []struct {
		path string
		code int
	}{{"gate/check", 403}, {"gate/open", 200}, {"gate/check", 200}, {"gate/close", 200}, {"gate/check", 403},
		{"gate/approve", 200}, {"gate/halt", 403}, {"rollback/check", 403}, {"rollback/open", 200}, {"rollback/check", 200}} {
		if code, body := post(t, c, base+step.path, gate); code != step.code {
			t.Errorf("%s: %d %s, want %d", step.path, code, body, step.code)
		}
	}
	if code, _ := post(t, c, base+"gate/check", `{"name":"other","namespace":"test"}`); code != 403 {
		t.Error("gates are per canary")
	}
	if !IsLoadTester("flagger-loadtester") || !IsLoadTester("flagger-loadtester.test.svc.cluster.local") || IsLoadTester("loadtester.test") {
		t.Error("IsLoadTester")
	}
}
