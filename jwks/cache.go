// Package jwks fetches and caches the JSON Web Key Sets that
// RequestAuthentication jwtRules name by jwksUri. The control plane inlines
// them into the proxies' JWT filter configuration, so proxies never fetch
// keys themselves; see README.md.
package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/config"
)

// Defaults, as Istio's control plane uses them.
const (
	DefaultRefresh = 20 * time.Minute
	DefaultRetry   = time.Minute
	// FetchTimeout bounds one fetch, connection and body included.
	FetchTimeout = 5 * time.Second
	// MaxBody is the largest key set accepted; real ones are a few KiB.
	MaxBody = 1 << 20
)

// EmptySet is the document served for a URI that could not be fetched: no
// key verifies anything, so tokens of that issuer are refused rather than
// let through.
const EmptySet = `{"keys":[]}`

// Options configure a Cache.
type Options struct {
	// Client fetches the documents; nil: a client of its own.
	Client *http.Client
	// Refresh is how often a document is fetched again; 0: DefaultRefresh.
	Refresh time.Duration
	// Retry is how soon a failed fetch is tried again; 0: DefaultRetry
	// (or Refresh, if that is shorter).
	Retry time.Duration
	// OnChange is called, from the cache's own goroutine and with no lock
	// held, whenever the document Get returns for some URI changes. It
	// should only schedule work (e.g. rebuild the snapshot), not block.
	OnChange func()
	// Logger receives fetch failures; nil: slog.Default().
	Logger *slog.Logger
}

// Cache holds the key sets by URI. Get never blocks on the network: the
// first Get of a URI starts a fetch in the background, and later Gets see
// its result. Every URI asked for is refreshed until Close, or until Retain
// leaves it out: Gets come only when configuration is translated, which may
// be rarely, so how often a URI is asked for says nothing about whether it
// is still in use.
type Cache struct {
	opts    Options
	timeout time.Duration // per fetch; FetchTimeout but in tests
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.RWMutex
	entries map[string]*entry
	closed  bool
}

// entry is one URI's state. doc is nil until the first fetch finished.
type entry struct {
	doc  atomic.Pointer[string]
	stop context.CancelFunc // ends this URI's refresh loop
}

// New returns a running cache; Close stops it.
func New(o Options) *Cache {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Retry <= 0 {
		o.Retry = min(DefaultRetry, o.Refresh)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{opts: o, timeout: FetchTimeout, ctx: ctx, cancel: cancel, entries: map[string]*entry{}}
}

// Get returns the key set document at uri. ok is false until the first
// fetch of uri has finished; a fetch that failed gives EmptySet with ok
// true (and is retried). After a later failed refresh the last good
// document stays.
func (c *Cache) Get(uri string) (doc string, ok bool) {
	c.mu.RLock()
	e := c.entries[uri]
	c.mu.RUnlock()
	if e == nil {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return "", false
		}
		if e = c.entries[uri]; e == nil {
			ctx, stop := context.WithCancel(c.ctx)
			e = &entry{stop: stop}
			c.entries[uri] = e
			c.wg.Add(1)
			go c.run(ctx, uri, e)
		}
		c.mu.Unlock()
	}
	if d := e.doc.Load(); d != nil {
		return *d, true
	}
	return "", false
}

// Retain stops refreshing, and forgets, every URI for which keep is false;
// the control plane may call it with the URIs its configuration still names.
// A URI forgotten and asked for again is fetched anew.
func (c *Cache) Retain(keep func(uri string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for uri, e := range c.entries {
		if !keep(uri) {
			e.stop()
			delete(c.entries, uri)
		}
	}
}

// Close stops every fetch and waits for them; OnChange is not called after
// Close returns.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// run keeps one URI's document fresh until ctx ends (Close or Retain).
func (c *Cache) run(ctx context.Context, uri string, e *entry) {
	defer c.wg.Done()
	for {
		doc, err := c.fetch(ctx, uri)
		wait := c.opts.Refresh
		if err != nil {
			c.opts.Logger.Warn("jwks: fetch failed; tokens of this issuer are refused until it succeeds", "uri", redact(uri), "err", err, "retry", c.opts.Retry)
			wait = c.opts.Retry
			if prev := e.doc.Load(); prev != nil {
				doc = *prev // keep the last good keys through an outage
			} else {
				doc = EmptySet
			}
		}
		if ctx.Err() != nil {
			return // a fetch cut short by Close is no verdict on the URI
		}
		if prev := e.doc.Swap(&doc); (prev == nil || *prev != doc) && c.opts.OnChange != nil {
			c.opts.OnChange()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// errTooLarge marks a document over MaxBody.
var errTooLarge = errors.New("document larger than 1 MiB")

// fetch gets uri and checks the answer is a key set. Its errors name the
// URI without credentials or query, which may carry secrets.
func (c *Cache) fetch(ctx context.Context, uri string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	shown := redact(uri)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", fmt.Errorf("fetch %s: invalid URL", shown)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the full URL
		}
		return "", fmt.Errorf("fetch %s: %w", shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch %s: status %s", shown, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return "", fmt.Errorf("fetch %s: read body: %w", shown, err)
	}
	if len(body) > MaxBody {
		return "", fmt.Errorf("fetch %s: %w", shown, errTooLarge)
	}
	if msg := config.CheckJWKS(body); msg != "" {
		return "", fmt.Errorf("fetch %s: %s", shown, msg)
	}
	return string(body), nil
}

// redact returns uri without user information and query, for messages.
func redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "..."
	}
	u.Fragment = ""
	return u.String()
}
