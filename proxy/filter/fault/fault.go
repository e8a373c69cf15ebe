// Package fault implements Envoy's fault injection HTTP filter
// (envoy.filters.http.fault) from per-route HTTPFault config: a fixed delay
// and an abort, each sampled independently per request. See README.md.
package fault

import (
	"net/http"
	"strconv"
	"time"

	"github.com/weft-mesh/weft/proxy/filter"
)

// Clock makes timers; tests substitute a fake one.
type Clock interface {
	// After returns a channel that receives once d has passed, and a
	// function that stops the timer.
	After(d time.Duration) (<-chan time.Time, func() bool)
}

type realClock struct{}

func (realClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Fault is the compiled filter for one route. It is immutable.
type Fault struct {
	c     Config
	clock Clock
	// precomputed abort response
	grpcStatus  []string // for gRPC requests
	grpcMessage []string
	httpStatus  int
}

// New returns the filter for c; a nil clock means real time.
func New(c *Config, clock Clock) *Fault {
	if clock == nil {
		clock = realClock{}
	}
	f := &Fault{c: *c, clock: clock}
	gs := c.GRPCStatus
	if gs < 0 {
		gs = filter.GRPCStatus(c.HTTPStatus)
	}
	f.grpcStatus = []string{strconv.Itoa(gs)}
	f.grpcMessage = []string{c.Body}
	f.httpStatus = c.HTTPStatus
	if c.GRPCStatus >= 0 {
		f.httpStatus = http.StatusOK // Envoy: a gRPC abort of a non-gRPC request is a plain 200
	}
	return f
}

// Request delays and/or aborts the request. A client that goes away during
// the delay ends the exchange with flag DC.
func (f *Fault) Request(x *filter.Exchange) bool {
	if f.c.Delay > 0 && f.c.DelayPercent.Sample() {
		x.Flags |= filter.DelayInjected
		ch, stop := f.clock.After(f.c.Delay)
		select {
		case <-ch:
		case <-x.R.Context().Done():
			stop()
			x.Flags |= filter.DownstreamClosed
			x.Code = 499
			return false
		}
	}
	if f.c.Abort && f.c.AbortPercent.Sample() {
		x.Flags |= filter.FaultInjected
		if filter.IsGRPC(x.R.Header) {
			// Trailers-only gRPC response: HTTP 200 with the status in the
			// header block, as Envoy's gRPC local replies are.
			h := x.W.Header()
			h["Content-Type"] = grpcContentType
			h["Grpc-Status"] = f.grpcStatus
			h["Grpc-Message"] = f.grpcMessage
			x.Reply(http.StatusOK, "")
			return false
		}
		x.Reply(f.httpStatus, f.c.Body)
		return false
	}
	return true
}

var grpcContentType = []string{"application/grpc"}
