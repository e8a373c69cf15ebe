package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseHey(t *testing.T) {
	// Seed 004's load test.
	o, err := ParseHey("hey -z 1m -q 10 -c 2 http://reviews-canary.default:9080/health")
	if err != nil {
		t.Fatal(err)
	}
	if o.URL != "http://reviews-canary.default:9080/health" || o.QPS != 20 || o.Concurrency != 2 || o.Duration != time.Minute || o.Requests != 0 || o.Method != "GET" {
		t.Errorf("%+v", o)
	}
	o, err = ParseHey(`hey -n 30 -q 5 -c 3 -m post -d '{"a": 1}' -T application/json -H "Cookie: user=jason" -H 'Host: shop.example' -t 2 http://x/`)
	if err != nil {
		t.Fatal(err)
	}
	if o.Requests != 30 || o.QPS != 15 || o.Duration != 3*time.Second || o.Method != "POST" || string(o.Body) != `{"a": 1}` ||
		o.Header.Get("Content-Type") != "application/json" || o.Header.Get("Cookie") != "user=jason" || o.Host != "shop.example" || o.Timeout != 2*time.Second {
		t.Errorf("%+v", o)
	}
	for cmd, want := range map[string]string{
		"curl http://x/":                  "want a hey command",
		"hey -z 1m -c 2 http://x/":        "give -q",
		"hey -q 1 -x proxy:1 http://x/":   "-x is not supported",
		"hey -q 1":                        "no URL",
		"hey -q 1 -z soon http://x/":      "-z \"soon\"",
		"hey -q 1 'http://x/":             "unterminated",
		"hey -q 1 -c 0 http://x/":         "-c \"0\"",
		"hey -q 1 http://a/ http://b/":    "more than one URL",
		"hey -q 1 -H nocolon http://x/":   "-H \"nocolon\"",
		"hey -q 1 -z 10s -n":              "needs a value",
		"hey -q 1 -z 10s ://nothing-here": "URL",
	} {
		if _, err := ParseHey(cmd); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", cmd, err, want)
		}
	}
}

// TestRunBounded: -n bounds the count, and method, body and Host arrive.
func TestRunBounded(t *testing.T) {
	var n atomic.Int32
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		b, _ := io.ReadAll(r.Body)
		got.Store(r.Method + " " + r.Host + " " + string(b))
	}))
	defer srv.Close()
	o, err := ParseHey("hey -n 7 -q 100 -c 2 -m PUT -d hello -host shop.example " + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 7 || s.Total != 7 || s.Codes[200] != 7 || got.Load() != "PUT shop.example hello" {
		t.Errorf("%d requests, summary %+v, last %v", n.Load(), s, got.Load())
	}
}
