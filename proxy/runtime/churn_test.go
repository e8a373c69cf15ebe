package runtime

import (
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/internal/testnet"
)

// TestRetriesWhileAnInstanceIsGone is the pod-churn case: one of three
// endpoints is gone (its port refuses connections) and has not left the
// cluster yet, and 32 clients send at once with Istio's default retry
// policy. With Istio's circuit breakers (every threshold at the maximum,
// as translate emits them) no request fails: each one routed to the gone
// instance is retried on another, however many retries run at once.
// (Envoy's default of 3 concurrent retries per cluster answers the rest
// 503 UO.)
func TestRetriesWhileAnInstanceIsGone(t *testing.T) {
	var served atomic.Int64
	ok := func(w http.ResponseWriter, r *http.Request) { served.Add(1); io.WriteString(w, "ok") }
	a, b := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) { ok(w, r) }),
		newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) { ok(w, r) })
	gone := testnet.Refusing(t)

	r := simple(t, "127.0.0.1:0", 0, a.addr(t), b.addr(t), gone)
	// Istio's default retry policy: 2 retries on connect failures and the
	// like, never the same host twice.
	rt := routeTo("c", 0)
	rt.GetRoute().RetryPolicy = &routev3.RetryPolicy{
		RetryOn:                       "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries:                    wrapperspb.UInt32(2),
		RetriableStatusCodes:          []uint32{503},
		HostSelectionRetryMaxAttempts: 5,
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(t, &previoushostsv3.PreviousHostsPredicate{})},
		}},
	}
	r.Routes["rc"] = routeConfig("rc", rt)
	r.Clusters["c"].CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: wrapperspb.UInt32(math.MaxUint32), MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
		MaxRequests: wrapperspb.UInt32(math.MaxUint32), MaxRetries: wrapperspb.UInt32(math.MaxUint32), TrackRemaining: true,
	}}}
	_, base := start(t, r, Options{})

	const clients, each = 32, 50
	c := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: clients}}
	t.Cleanup(c.CloseIdleConnections)
	var failed atomic.Int64
	var mu sync.Mutex
	var firstFailure string
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				resp, err := c.Get(base + "/")
				code := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				if code != 200 {
					failed.Add(1)
					mu.Lock()
					if firstFailure == "" {
						firstFailure = http.StatusText(code)
						if resp != nil {
							firstFailure += " " + resp.Header.Get("X-Envoy-Overloaded")
						}
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	// Round robin sends a third of the first attempts to the gone
	// instance: those are the retries.
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed with an instance gone (first: %s)", n, clients*each, firstFailure)
	}
	if served.Load() != clients*each {
		t.Fatalf("%d requests served, want %d", served.Load(), clients*each)
	}
}
