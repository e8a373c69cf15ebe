package ratelimit

import (
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/filter"
)

// fakeClock is a Clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() int64              { return c.ns.Load() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func percent(n uint32) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n}, RuntimeKey: "k"}
}

// config is what xds/translate emits for a RateLimit of requests per per
// with burst.
func config(requests, burst uint32, per time.Duration) *lrlv3.LocalRateLimit {
	return &lrlv3.LocalRateLimit{
		StatPrefix: "http_local_rate_limiter",
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     burst,
			TokensPerFill: wrapperspb.UInt32(requests),
			FillInterval:  durationpb.New(per),
		},
		FilterEnabled:           percent(100),
		FilterEnforced:          percent(100),
		EnableXRatelimitHeaders: ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
	}
}

func limiter(t *testing.T, m *lrlv3.LocalRateLimit, perRoute bool, c *fakeClock) *Limiter {
	t.Helper()
	l, err := ParseMessage(m, perRoute, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRateHolds runs a bounded simulated minute of traffic far above the
// limit and checks the allowed count is within 5% of burst + rate * time.
func TestRateHolds(t *testing.T) {
	for _, c := range []struct {
		requests, burst uint32
		per             time.Duration
	}{
		{10, 10, time.Second},
		{100, 120, time.Second},
		{5, 50, 100 * time.Millisecond},
		{1, 1, time.Minute / 60},
	} {
		clk := &fakeClock{}
		b := NewBucket(c.burst, c.requests, c.per, clk.now)
		const run = time.Minute
		const step = 3 * time.Millisecond // 2 attempts per step: ~40000 attempts
		allowed := 0
		for elapsed := time.Duration(0); elapsed < run; elapsed += step {
			for range 2 {
				if b.Take() {
					allowed++
				}
			}
			clk.advance(step)
		}
		want := float64(c.burst) + float64(c.requests)*float64(run/c.per)
		if math.Abs(float64(allowed)-want) > 0.05*want {
			t.Errorf("%d per %v burst %d: %d allowed in %v, want %.0f ± 5%%", c.requests, c.per, c.burst, allowed, run, want)
		}
	}
}

// TestConcurrentTakes checks the compare-and-swap: goroutines racing for
// a bucket of N tokens get exactly N.
func TestConcurrentTakes(t *testing.T) {
	clk := &fakeClock{}
	b := NewBucket(1000, 1, time.Second, clk.now)
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				if b.Take() {
					got.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got.Load() != 1000 || b.Remaining() != 0 {
		t.Errorf("%d tokens taken, %d remaining; want 1000, 0", got.Load(), b.Remaining())
	}
	clk.advance(2500 * time.Millisecond)
	if b.Remaining() != 2 || b.Reset() != 500*time.Millisecond {
		t.Errorf("after 2.5 s: %d remaining, reset in %v", b.Remaining(), b.Reset())
	}
}

func TestLongIdle(t *testing.T) {
	clk := &fakeClock{}
	b := NewBucket(3, 1, time.Millisecond, clk.now)
	for b.Take() {
	}
	// 2^32 + 1 intervals later the 32-bit interval counter has wrapped.
	clk.advance((1<<32 + 1) * time.Millisecond)
	if n := b.Remaining(); n != 3 {
		t.Errorf("after a long idle spell %d tokens, want a full bucket (3)", n)
	}
}

func TestLimiter(t *testing.T) {
	clk := &fakeClock{}
	l := limiter(t, config(2, 2, time.Second), false, clk)
	chain := filter.Chain{l}
	send := func() (*httptest.ResponseRecorder, *filter.Exchange, bool) {
		w := httptest.NewRecorder()
		x := filter.NewExchange(w, httptest.NewRequest("GET", "/", nil))
		ok := x.Run(chain)
		if ok {
			x.Response(200, w.Header()) // as the runtime does for the upstream response
			w.WriteHeader(200)
		}
		return w, x, ok
	}
	clk.advance(300 * time.Millisecond)
	for i, want := range []string{"1", "0"} {
		w, _, ok := send()
		if !ok || w.Header().Get("X-Ratelimit-Remaining") != want || w.Header().Get("X-Ratelimit-Limit") != "2" ||
			w.Header().Get("X-Ratelimit-Reset") != "1" {
			t.Errorf("request %d: ok %v headers %v", i, ok, w.Header())
		}
	}
	w, x, ok := send()
	if ok || w.Code != 429 || w.Body.String() != LimitedBody || x.Flags&filter.RateLimited == 0 {
		t.Errorf("over the limit: ok %v %d %q flags %v", ok, w.Code, w.Body, x.Flags)
	}
	if w.Header().Get("X-Ratelimit-Remaining") != "0" || w.Header().Get("X-Ratelimit-Limit") != "2" {
		t.Errorf("limited response headers %v", w.Header())
	}
	clk.advance(700 * time.Millisecond)
	if _, _, ok := send(); !ok {
		t.Error("no token after the fill")
	}

	// Not enforced: counted, never refused. Not enabled: untouched.
	m := config(1, 1, time.Second)
	m.FilterEnforced = nil
	lax := limiter(t, m, false, clk)
	m = config(1, 1, time.Second)
	m.FilterEnabled = percent(0)
	off := limiter(t, m, false, clk)
	for i := range 3 {
		for _, f := range []*Limiter{lax, off} {
			w := httptest.NewRecorder()
			x := filter.NewExchange(w, httptest.NewRequest("GET", "/", nil))
			if !x.Run(filter.Chain{f}) {
				t.Errorf("request %d refused by a limiter not enforced/enabled", i)
			}
			x.Response(200, w.Header())
			if f == off && w.Header().Get("X-Ratelimit-Limit") != "" {
				t.Error("a disabled limiter added headers")
			}
		}
	}
}

func TestRouteReplacesListener(t *testing.T) {
	clk := &fakeClock{}
	hcm := limiter(t, config(1, 1, time.Second), false, clk)
	route := limiter(t, config(3, 3, time.Second), true, clk)
	// A route with its own limit: three requests, the listener's single
	// token untouched, and only the route's headers.
	for i := range 4 {
		w := httptest.NewRecorder()
		x := filter.NewExchange(w, httptest.NewRequest("GET", "/", nil))
		x.RouteFilters = filter.Chain{route}
		ok := x.Run(filter.Chain{hcm}) && x.Run(x.RouteFilters)
		if ok != (i < 3) {
			t.Fatalf("route request %d: ok %v", i, ok)
		}
		if ok {
			x.Response(200, w.Header())
			if w.Header().Get("X-Ratelimit-Limit") != "3" {
				t.Errorf("route request %d: headers %v", i, w.Header())
			}
		}
	}
	if hcm.Bucket().Remaining() != 1 {
		t.Error("the listener's bucket was consumed by a route with its own")
	}
	x := filter.NewExchange(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if !x.Run(filter.Chain{hcm}) || x.Run(filter.Chain{hcm}) {
		t.Error("the listener's bucket does not hold for other routes")
	}
}

func TestParseErrors(t *testing.T) {
	if l, err := ParseMessage(&lrlv3.LocalRateLimit{StatPrefix: "x"}, false, nil); l != nil || err != nil {
		t.Errorf("HCM config without bucket = %v, %v; want nil, nil", l, err)
	}
	for _, c := range []struct {
		mod      func(*lrlv3.LocalRateLimit)
		perRoute bool
		want     string
	}{
		{func(m *lrlv3.LocalRateLimit) { m.TokenBucket = nil }, true, "token_bucket: required"},
		{func(m *lrlv3.LocalRateLimit) { m.StatPrefix = "" }, false, "stat_prefix: required"},
		{func(m *lrlv3.LocalRateLimit) { m.TokenBucket.MaxTokens = 0 }, false, "token_bucket.max_tokens"},
		{func(m *lrlv3.LocalRateLimit) { m.TokenBucket.FillInterval = durationpb.New(time.Microsecond) }, false, "token_bucket.fill_interval: must be at least 1ms"},
		{func(m *lrlv3.LocalRateLimit) { m.Descriptors = []*ratelimitv3.LocalRateLimitDescriptor{{}} }, false, "descriptors: unsupported field"},
		{func(m *lrlv3.LocalRateLimit) { m.Status = &typev3.HttpStatus{Code: 200} }, false, "status.code: 200 not in [400, 600)"},
		{func(m *lrlv3.LocalRateLimit) { m.LocalRateLimitPerDownstreamConnection = true }, false, "local_rate_limit_per_downstream_connection"},
	} {
		m := config(1, 1, time.Second)
		c.mod(m)
		_, err := ParseMessage(m, c.perRoute, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to contain %q", err, c.want)
		}
	}
}

func BenchmarkTakeParallel(b *testing.B) {
	bk := NewBucket(math.MaxUint32, math.MaxUint32, time.Second, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Take()
		}
	})
}
