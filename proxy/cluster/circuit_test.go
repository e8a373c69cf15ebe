package cluster

import (
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/http1"
	"github.com/weft-mesh/weft/proxy/lb"
)

func TestThresholdDefaultsAndLimits(t *testing.T) {
	c := mustCompile(t, NewState(StateOptions{}), static(t, "c", "127.0.0.1:1"))
	if c.Limits != (Thresholds{1024, 1024, 1024, 3}) || c.HTTP.MaxConnsPerHost != 0 {
		t.Errorf("defaults: %+v, %+v", c.Limits, c.HTTP)
	}
	for range 3 {
		if !c.AdmitRetry() {
			t.Fatal("retry refused below max_retries 3")
		}
	}
	if c.AdmitRetry() {
		t.Fatal("4th concurrent retry admitted")
	}
	c.ReleaseRetry()
	if !c.AdmitRetry() {
		t.Fatal("retry refused after a release")
	}

	pc := static(t, "c", "127.0.0.1:1")
	pc.CircuitBreakers = breakers(0, 0, 2, 0)
	pc.CircuitBreakers.Thresholds = append(pc.CircuitBreakers.Thresholds, &clusterv3.CircuitBreakers_Thresholds{
		Priority: corev3.RoutingPriority_HIGH, MaxRequests: wrapperspb.UInt32(100)})
	c = mustCompile(t, NewState(StateOptions{}), pc)
	if !c.AdmitRequest() || !c.AdmitRequest() || c.AdmitRequest() {
		t.Fatal("max_requests 2 not enforced")
	}
	c.ReleaseRequest()
	if !c.AdmitRequest() {
		t.Fatal("request refused after a release")
	}
	if r, _, _ := c.Active(); r != 2 {
		t.Errorf("active requests %d", r)
	}
	pc.CircuitBreakers = breakers(1, 0, 0, 0)
	c = mustCompile(t, NewState(StateOptions{}), pc)
	if !c.AdmitConnection() || c.AdmitConnection() {
		t.Fatal("max_connections 1 not enforced for TCP")
	}
	pc.CircuitBreakers.Thresholds = append(pc.CircuitBreakers.Thresholds, breakers(2, 0, 0, 0).Thresholds[0])
	if _, err := Compile(pc, nil); err == nil || !strings.Contains(err.Error(), "circuit_breakers.thresholds[1].priority") {
		t.Errorf("err = %v", err)
	}
}

// Istio's connectionPool {http1MaxPendingRequests: 1, maxConnections: 1}:
// of 3 concurrent slow requests at least one overflows at once.
func TestCircuitBreakerOverflowsAtOnce(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 3) // requests the upstream is serving
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	pc := static(t, "c", srv.Listener.Addr().String())
	pc.CircuitBreakers = breakers(1, 1, 0, 0)
	c := mustCompile(t, NewState(StateOptions{}), pc)
	if c.HTTP.MaxConnsPerHost != 1 {
		t.Fatalf("MaxConnsPerHost = %d", c.HTTP.MaxConnsPerHost)
	}
	type outcome struct {
		code int
		at   time.Time
	}
	results := make(chan outcome, 3)
	h1, isH1 := c.Transport().(*http1.Transport)
	if !isH1 {
		t.Fatalf("HTTP/1.1 transport is %T", c.Transport())
	}
	addr := c.Pick(nil, lb.Hash{}).Address
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if !c.AdmitRequest() {
				results <- outcome{503, time.Now()}
				return
			}
			defer c.ReleaseRequest()
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			resp, err := c.Transport().RoundTrip(req)
			if err != nil {
				t.Error(err)
				results <- outcome{0, time.Now()}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- outcome{resp.StatusCode, time.Now()}
		})
	}
	first := <-results // nothing is released yet: only an overflow can finish
	if first.code != 503 {
		t.Fatalf("first result %d, want an immediate 503 overflow", first.code)
	}
	// Both admitted requests are in the transport at once: one on the only
	// connection max_connections allows, the other waiting for it.
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no admitted request reached the upstream")
	}
	deadline := time.Now().Add(10 * time.Second)
	for h1.Waiting(addr) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait for a connection, want the second admitted one", h1.Waiting(addr))
		}
		time.Sleep(time.Millisecond)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections with max_connections 1", n)
	}
	close(release)
	wg.Wait()
	close(results)
	ok := 0
	for r := range results {
		if r.code == 200 {
			ok++
		}
	}
	if ok != 2 {
		t.Errorf("%d requests succeeded, want the 2 admitted", ok)
	}
	// Both were served, the second after waiting: every connection the
	// transport opened was accepted and counted before its request ended.
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections with max_connections 1", n)
	}
}

// TestUnlimitedThresholds: Istio's defaults, every threshold at the
// maximum, admit any number of concurrent requests and retries, and put
// no per-endpoint connection cap on the transport.
func TestUnlimitedThresholds(t *testing.T) {
	const max = math.MaxUint32
	pc := static(t, "c", "127.0.0.1:1")
	pc.CircuitBreakers = breakers(max, max, max, max)
	c := mustCompile(t, NewState(StateOptions{}), pc)
	if c.Limits != (Thresholds{max, max, max, max}) || c.HTTP.MaxConnsPerHost != 0 {
		t.Fatalf("limits %+v, MaxConnsPerHost %d", c.Limits, c.HTTP.MaxConnsPerHost)
	}
	const n = 10000 // far beyond Envoy's 3 retries and 1024 requests
	for i := range n {
		if !c.AdmitRequest() || !c.AdmitRetry() {
			t.Fatalf("refused at %d outstanding", i)
		}
	}
	if req, ret, _ := c.Active(); req != n || ret != n {
		t.Fatalf("active %d requests, %d retries", req, ret)
	}
}
