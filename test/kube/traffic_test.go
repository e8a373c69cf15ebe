package kube

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weft-mesh/weft/demo/bookinfo"
)

// servedBy finds the reviews version in a product page: its pods are
// named after their Deployment, reviews-vN-HASH-ID.
var servedBy = regexp.MustCompile(`Reviews served by: reviews-(v\d)-`)

var pageClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
}

// page GETs /productpage through the ingress gateway, logged in as user
// when not "", and returns the reviews version that served it. A page
// that is not whole (an error status, or productpage's error texts for
// details, reviews or ratings) is an error.
func (m *mesh) page(ctx context.Context, user string) (string, error) {
	body, err := m.fetchPage(ctx, "", user)
	if err != nil {
		return "", err
	}
	mm := servedBy.FindStringSubmatch(body)
	if mm == nil {
		return "", fmt.Errorf("no reviews on the page: %.300s", body)
	}
	return mm[1], nil
}

// fetchPage GETs /productpage through the ingress gateway for host (""
// the gateway's address) and returns the page; a page that is not whole
// is an error, returned with what body there was.
func (m *mesh) fetchPage(ctx context.Context, host, user string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.gateway+"/productpage", nil)
	if err != nil {
		return "", err
	}
	if host != "" {
		req.Host = host
	}
	if user != "" {
		req.Header.Set("Cookie", "session="+user)
	}
	resp, err := pageClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading the page: %w", err)
	}
	body := string(b)
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	for _, bad := range []string{bookinfo.DetailsError, bookinfo.DetailsUnavailable, bookinfo.ReviewsError, bookinfo.ReviewsUnavailable, bookinfo.RatingsUnavailable} {
		if strings.Contains(body, bad) {
			if c := reviewsCause(body); c != "" {
				// What productpage saw at each attempt: the evidence a
				// failure needs.
				return body, fmt.Errorf("the page says %q (reviews: %s)", bad, c)
			}
			return body, fmt.Errorf("the page says %q", bad)
		}
	}
	return body, nil
}

// versions tallies n page loads by reviews version.
func (m *mesh) versions(user string, n int) (map[string]int, error) {
	c := map[string]int{}
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		v, err := m.page(ctx, user)
		cancel()
		if err != nil {
			return c, err
		}
		c[v]++
	}
	return c, nil
}

// settle waits until n page loads as user all come from version v.
func (m *mesh) settle(t *testing.T, user, v string) {
	t.Helper()
	eventually(t, 30*time.Second, "reviews "+v+" for user "+fmt.Sprintf("%q", user), func() error {
		c, err := m.versions(user, 10)
		if err != nil {
			return err
		}
		if c[v] != 10 {
			return fmt.Errorf("got %v", c)
		}
		return nil
	})
}

// eventually polls f every 200 ms until it returns nil, failing the test
// with f's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// load sends paced page requests through the gateway until stopped.
type load struct {
	cancel context.CancelFunc
	done   chan struct{}
	start  time.Time
	stats  loadStats
}

// loadStats counts a load's requests.
type loadStats struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string // the first few, with when they happened
	elapsed    time.Duration
}

const (
	// maxInFlight bounds the load's concurrent requests; a request that
	// cannot start because of it counts as failed (the mesh did not keep up).
	maxInFlight = 200
	// maxLoad bounds every load loop, whatever the test does.
	maxLoad = 10 * time.Minute
)

// startLoad sends rps page requests per second, each on its own schedule
// (open loop: a slow answer does not slow the rate).
func (m *mesh) startLoad(rps int) *load {
	return startLoadOf(rps, func(ctx context.Context) error {
		_, err := m.page(ctx, "")
		return err
	})
}

// startLoadOf makes rps requests per second with request (an error is a
// failed request), as startLoad does.
func startLoadOf(rps int, request func(context.Context) error) *load {
	ctx, cancel := context.WithTimeout(context.Background(), maxLoad)
	l := &load{cancel: cancel, done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		sem := make(chan struct{}, maxInFlight)
		// Each request has its time, start + i/rps: a late one does not
		// shift the rest (a ticker would drop ticks).
		interval := time.Second / time.Duration(rps)
		next := l.start
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			next = next.Add(interval)
			timer.Reset(time.Until(next))
			select {
			case sem <- struct{}{}:
			default:
				l.fail(fmt.Errorf("%d requests in flight", maxInFlight))
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				rctx, rcancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer rcancel()
				if err := request(rctx); err != nil {
					l.fail(err)
					return
				}
				l.stats.ok.Add(1)
			}()
		}
	}()
	return l
}

func (l *load) fail(err error) {
	l.stats.failed.Add(1)
	l.stats.mu.Lock()
	defer l.stats.mu.Unlock()
	if len(l.stats.failures) < 10 {
		// The wall clock too: the pods' logs say when they changed.
		now := time.Now()
		l.stats.failures = append(l.stats.failures, fmt.Sprintf("+%s (%s): %v", now.Sub(l.start).Round(time.Millisecond), now.UTC().Format("15:04:05.000"), err))
	}
}

// stop ends the load, waits for the requests in flight and returns the
// counts.
func (l *load) stop() *loadStats {
	l.cancel()
	<-l.done
	l.stats.elapsed = time.Since(l.start)
	return &l.stats
}

func (s *loadStats) String() string {
	ok, failed := s.ok.Load(), s.failed.Load()
	return fmt.Sprintf("%d requests in %s (%.0f/s), %d failed", ok+failed, s.elapsed.Round(100*time.Millisecond),
		float64(ok+failed)/s.elapsed.Seconds(), failed)
}

// check fails the test if any request failed, or none was made.
func (s *loadStats) check(t *testing.T, during string) {
	t.Helper()
	t.Logf("load during %s: %s", during, s)
	if s.failed.Load() > 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Errorf("%s: %d requests failed; first ones:\n%s", during, s.failed.Load(), strings.Join(s.failures, "\n"))
	}
	if s.ok.Load() == 0 {
		t.Errorf("%s: no request succeeded", during)
	}
}
