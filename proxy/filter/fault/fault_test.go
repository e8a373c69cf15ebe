package fault

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weft-mesh/weft/proxy/filter"
)

func pct(n uint32, d typev3.FractionalPercent_DenominatorType) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: d}
}

func delayCfg(d time.Duration, p *typev3.FractionalPercent) *faultcommonv3.FaultDelay {
	return &faultcommonv3.FaultDelay{
		FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)},
		Percentage:         p,
	}
}

func abortHTTP(code uint32, p *typev3.FractionalPercent) *faultv3.FaultAbort {
	return &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: code}, Percentage: p}
}

func mustNew(t *testing.T, m *faultv3.HTTPFault, clock Clock) *Fault {
	t.Helper()
	c, err := ParseMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return New(c, clock)
}

// fakeClock fires timers only when told to, and records requested delays.
type fakeClock struct {
	asked chan time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{asked: make(chan time.Duration, 1), fire: make(chan time.Time)}
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	c.asked <- d
	return c.fire, func() bool { return true }
}

func run(f *Fault, r *http.Request) (*filter.Exchange, *httptest.ResponseRecorder, bool) {
	w := httptest.NewRecorder()
	x := filter.NewExchange(w, r)
	ok := filter.Chain{f}.Request(x)
	return x, w, ok
}

func TestDelayWaitsForClock(t *testing.T) {
	clock := newFakeClock()
	f := mustNew(t, &faultv3.HTTPFault{Delay: delayCfg(3*time.Second, pct(100, typev3.FractionalPercent_HUNDRED))}, clock)
	done := make(chan bool)
	var x *filter.Exchange
	go func() {
		var ok bool
		x, _, ok = run(f, httptest.NewRequest("GET", "/", nil))
		done <- ok
	}()
	if d := <-clock.asked; d != 3*time.Second {
		t.Fatalf("delay asked %v, want 3s", d)
	}
	select {
	case <-done:
		t.Fatal("request went on before the delay elapsed")
	case <-time.After(20 * time.Millisecond):
	}
	clock.fire <- time.Now()
	if ok := <-done; !ok {
		t.Fatal("delayed request was stopped")
	}
	if x.Flags != filter.DelayInjected || x.Flags.String() != "DI" {
		t.Errorf("flags = %q, want DI", x.Flags)
	}
}

func TestDelayRespectsCancellation(t *testing.T) {
	f := mustNew(t, &faultv3.HTTPFault{Delay: delayCfg(time.Hour, pct(100, typev3.FractionalPercent_HUNDRED))}, newFakeClock())
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	done := make(chan *filter.Exchange)
	go func() { x, _, _ := run(f, r); done <- x }()
	<-f.clock.(*fakeClock).asked
	cancel()
	x := <-done
	if x.Flags != filter.DelayInjected|filter.DownstreamClosed || x.Code != 499 {
		t.Errorf("flags %q code %d, want DI,DC 499", x.Flags, x.Code)
	}
}

func TestAbortHTTP(t *testing.T) {
	f := mustNew(t, &faultv3.HTTPFault{Abort: abortHTTP(503, pct(100, typev3.FractionalPercent_HUNDRED))}, nil)
	x, w, ok := run(f, httptest.NewRequest("GET", "/", nil))
	if ok || w.Code != 503 || w.Body.String() != "fault filter abort" || x.Flags.String() != "FI" || x.Code != 503 {
		t.Errorf("ok=%v code=%d body=%q flags=%q", ok, w.Code, w.Body, x.Flags)
	}
}

func TestAbortGRPC(t *testing.T) {
	for _, tt := range []struct {
		name  string
		abort *faultv3.FaultAbort
		want  string
	}{
		{"grpc status", &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}, Percentage: pct(100, typev3.FractionalPercent_HUNDRED)}, "14"},
		{"http status mapped", abortHTTP(404, pct(100, typev3.FractionalPercent_HUNDRED)), "12"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := mustNew(t, &faultv3.HTTPFault{Abort: tt.abort}, nil)
			r := httptest.NewRequest("POST", "/pkg.Svc/M", strings.NewReader(""))
			r.Header.Set("Content-Type", "application/grpc")
			_, w, ok := run(f, r)
			if ok || w.Code != 200 || w.Header().Get("Grpc-Status") != tt.want || w.Header().Get("Grpc-Message") != "fault filter abort" {
				t.Errorf("ok=%v code=%d headers=%v", ok, w.Code, w.Header())
			}
		})
	}
	// A gRPC abort of a plain HTTP request is Envoy's plain 200 local reply.
	f := mustNew(t, &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}, Percentage: pct(100, typev3.FractionalPercent_HUNDRED)}}, nil)
	if _, w, _ := run(f, httptest.NewRequest("GET", "/", nil)); w.Code != 200 || w.Body.String() != "fault filter abort" {
		t.Errorf("plain request: %d %q", w.Code, w.Body)
	}
}

// TestAbortPercentage checks 50% (as 500000 per million) over 2000 requests
// lands within 5 standard deviations of 1000.
func TestAbortPercentage(t *testing.T) {
	f := mustNew(t, &faultv3.HTTPFault{Abort: abortHTTP(500, pct(500000, typev3.FractionalPercent_MILLION))}, nil)
	const n = 2000
	aborted := 0
	for range n {
		if _, _, ok := run(f, httptest.NewRequest("GET", "/", nil)); !ok {
			aborted++
		}
	}
	sigma := math.Sqrt(n * 0.5 * 0.5)
	if math.Abs(float64(aborted)-n/2) > 5*sigma {
		t.Errorf("aborted %d of %d, want %d ± %.0f", aborted, n, n/2, 5*sigma)
	}
}

func TestDelayAndAbortIndependent(t *testing.T) {
	f := mustNew(t, &faultv3.HTTPFault{
		Delay: delayCfg(time.Millisecond, pct(10000, typev3.FractionalPercent_TEN_THOUSAND)),
		Abort: abortHTTP(418, pct(0, typev3.FractionalPercent_HUNDRED)),
	}, nil)
	x, _, ok := run(f, httptest.NewRequest("GET", "/", nil))
	if !ok || x.Flags != filter.DelayInjected {
		t.Errorf("ok=%v flags=%q", ok, x.Flags)
	}
	f = mustNew(t, &faultv3.HTTPFault{
		Delay: delayCfg(time.Millisecond, pct(100, typev3.FractionalPercent_HUNDRED)),
		Abort: abortHTTP(418, pct(100, typev3.FractionalPercent_HUNDRED)),
	}, nil)
	x, w, ok := run(f, httptest.NewRequest("GET", "/", nil))
	if ok || w.Code != 418 || x.Flags.String() != "DI,FI" {
		t.Errorf("ok=%v code=%d flags=%q", ok, w.Code, x.Flags)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    *faultv3.HTTPFault
		want string
	}{
		{"empty", &faultv3.HTTPFault{}, "at least one"},
		{"no fixed delay", &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{}}, "delay.fixed_delay: required"},
		{"zero delay", &faultv3.HTTPFault{Delay: delayCfg(0, nil)}, "delay.fixed_delay: must be a positive"},
		{"bad status", &faultv3.HTTPFault{Abort: abortHTTP(99, nil)}, "abort.http_status"},
		{"bad grpc", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 17}}}, "abort.grpc_status"},
		{"no error type", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{}}, "abort.error_type"},
		{"header abort", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}}}}, "abort.header_abort: unsupported"},
		{"unsupported field", &faultv3.HTTPFault{Abort: abortHTTP(500, nil), UpstreamCluster: "x"}, "upstream_cluster: unsupported field"},
		{"bad denominator", &faultv3.HTTPFault{Abort: abortHTTP(500, pct(1, 7))}, "abort.percentage.denominator"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMessage(tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := Parse(&anypb.Any{TypeUrl: "type.googleapis.com/wrong", Value: []byte{1}}); err == nil {
		t.Error("wrong type accepted")
	}
}

func TestRegisteredSetup(t *testing.T) {
	cfg, _ := anypb.New(&faultv3.HTTPFault{Abort: abortHTTP(500, pct(100, typev3.FractionalPercent_HUNDRED))})
	c, err := filter.Build(map[string]*anypb.Any{Name: cfg})
	if err != nil || len(c) != 1 {
		t.Fatalf("Build = %v, %v", c, err)
	}
	if _, ok := c[0].(*Fault); !ok {
		t.Errorf("chain holds %T", c[0])
	}
}
