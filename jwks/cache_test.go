package jwks

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	setA = `{"keys":[{"kty":"RSA","kid":"a","e":"AQAB","n":"abc"}]}`
	setB = `{"keys":[{"kty":"EC","kid":"b","crv":"P-256","x":"x","y":"y"}]}`
)

// keyServer serves whatever body/status it is set to, on 127.0.0.1.
type keyServer struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	body   string
	hits   atomic.Int64
}

func newKeyServer(t *testing.T, status int, body string) *keyServer {
	ks := &keyServer{status: status, body: body}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.hits.Add(1)
		ks.mu.Lock()
		status, body := ks.status, ks.body
		ks.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(status int, body string) {
	ks.mu.Lock()
	ks.status, ks.body = status, body
	ks.mu.Unlock()
}

// newCache returns a cache whose OnChange signals on the returned channel.
func newCache(t *testing.T, o Options) (*Cache, chan struct{}) {
	changed := make(chan struct{}, 100)
	o.OnChange = func() { changed <- struct{}{} }
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c := New(o)
	t.Cleanup(c.Close)
	return c, changed
}

// waitDoc waits for OnChange signals until Get(uri) returns want.
func waitDoc(t *testing.T, c *Cache, changed chan struct{}, uri, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if doc, ok := c.Get(uri); ok && doc == want {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			doc, ok := c.Get(uri)
			t.Fatalf("Get(%s) = %q, %v; want %q", uri, doc, ok, want)
		}
	}
}

func TestGetFetchesInBackground(t *testing.T) {
	ks := newKeyServer(t, 200, setA)
	c, changed := newCache(t, Options{})
	uri := ks.URL + "/jwks"
	if doc, ok := c.Get(uri); ok || doc != "" {
		t.Fatalf("first Get = %q, %v; want not known yet", doc, ok)
	}
	waitDoc(t, c, changed, uri, setA)
	for i := 0; i < 10; i++ {
		c.Get(uri)
	}
	if n := ks.hits.Load(); n != 1 {
		t.Errorf("%d fetches for repeated Gets, want 1", n)
	}
}

func TestFailedFetchIsEmptyAndRetried(t *testing.T) {
	for name, tt := range map[string]struct {
		status int
		body   string
	}{
		"status":  {500, setA},
		"no keys": {200, `{"issuer":"x"}`},
		"garbage": {200, `<html>`},
		"large":   {200, `{"keys":[],"pad":"` + strings.Repeat("x", MaxBody) + `"}`},
	} {
		t.Run(name, func(t *testing.T) {
			ks := newKeyServer(t, tt.status, tt.body)
			c, changed := newCache(t, Options{Retry: 10 * time.Millisecond})
			c.Get(ks.URL)
			waitDoc(t, c, changed, ks.URL, EmptySet)
			ks.set(200, setB)
			waitDoc(t, c, changed, ks.URL, setB)
		})
	}
}

func TestUnreachable(t *testing.T) {
	ks := newKeyServer(t, 200, setA)
	uri := ks.URL + "/gone"
	ks.Close() // nothing listens there any more
	c, changed := newCache(t, Options{})
	c.Get(uri)
	waitDoc(t, c, changed, uri, EmptySet)
}

func TestRefreshAndKeepLastGood(t *testing.T) {
	ks := newKeyServer(t, 200, setA)
	c, changed := newCache(t, Options{Refresh: 10 * time.Millisecond, Retry: 10 * time.Millisecond})
	c.Get(ks.URL)
	waitDoc(t, c, changed, ks.URL, setA)
	ks.set(200, setB)
	waitDoc(t, c, changed, ks.URL, setB)

	// An outage after a success keeps the last good keys.
	ks.set(503, "")
	before := ks.hits.Load()
	deadline := time.Now().Add(10 * time.Second)
	for ks.hits.Load() < before+3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if ks.hits.Load() < before+3 {
		t.Fatal("no refresh attempts during the outage")
	}
	if doc, ok := c.Get(ks.URL); !ok || doc != setB {
		t.Errorf("during an outage Get = %q, %v; want the last good set", doc, ok)
	}
}

func TestOnChangeOnlyOnChange(t *testing.T) {
	ks := newKeyServer(t, 200, setA)
	c, changed := newCache(t, Options{Refresh: 5 * time.Millisecond})
	c.Get(ks.URL)
	waitDoc(t, c, changed, ks.URL, setA)
	deadline := time.Now().Add(10 * time.Second)
	for ks.hits.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(changed); n != 0 {
		t.Errorf("OnChange fired %d more times for an unchanged document", n)
	}
}

func TestCloseStopsFetching(t *testing.T) {
	hung := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hung:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hung)
	var calls atomic.Int64
	c := New(Options{OnChange: func() { calls.Add(1) }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c.timeout = time.Hour // so only Close can end the fetch
	c.Get(srv.URL)
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Close did not end a hanging fetch")
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("OnChange fired %d times for a fetch cut short by Close", n)
	}
	if doc, ok := c.Get(srv.URL); ok || doc != "" {
		t.Errorf("Get after Close = %q, %v", doc, ok)
	}
}

func TestRetain(t *testing.T) {
	a := newKeyServer(t, 200, setA)
	b := newKeyServer(t, 200, setB)
	c, changed := newCache(t, Options{Refresh: 5 * time.Millisecond})
	c.Get(a.URL)
	c.Get(b.URL)
	waitDoc(t, c, changed, a.URL, setA)
	waitDoc(t, c, changed, b.URL, setB)
	c.Retain(func(uri string) bool { return uri == a.URL })
	stopped := b.hits.Load()
	before := a.hits.Load()
	deadline := time.Now().Add(10 * time.Second)
	for a.hits.Load() < before+3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if a.hits.Load() < before+3 {
		t.Fatal("the retained URI is not refreshed")
	}
	// b's loop was stopped; at most a fetch already under way finished.
	if n := b.hits.Load(); n > stopped+1 {
		t.Errorf("the forgotten URI was fetched %d more times", n-stopped)
	}
	if _, ok := c.Get(b.URL); ok {
		t.Error("a URI Retain left out is still known")
	}
	waitDoc(t, c, changed, b.URL, setB) // asked for again: fetched anew
}

func TestErrorsHideSecrets(t *testing.T) {
	c := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer c.Close()
	_, err := c.fetch(t.Context(), "http://user:hunter2@127.0.0.1:1/keys?token=s3cret")
	if err == nil {
		t.Fatal("fetch from a closed port succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "hunter2") || strings.Contains(msg, "s3cret") || !strings.Contains(msg, "127.0.0.1:1/keys") {
		t.Errorf("error = %q", msg)
	}
}
