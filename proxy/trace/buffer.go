package trace

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/weft-mesh/weft/telemetry"
)

// DefaultSampling is the percentage of requests without an incoming
// sampling decision that start a trace, as Istio's default.
const DefaultSampling = 1.0

// Sampler decides whether a request without an incoming decision is
// sampled. The zero value samples nothing.
type Sampler struct {
	perMillion uint64
}

// NewSampler samples percent (0..100) of requests; out-of-range values are
// clamped.
func NewSampler(percent float64) Sampler {
	percent = min(max(percent, 0), 100)
	return Sampler{perMillion: uint64(percent*10000 + 0.5)}
}

// Sample reports whether to sample one request. It is lock-free.
func (s Sampler) Sample() bool {
	switch s.perMillion {
	case 0:
		return false
	case 1000000:
		return true
	}
	return rand.Uint64N(1000000) < s.perMillion
}

// DefaultBufferSize bounds the finished spans kept between two reports.
const DefaultBufferSize = 4096

// Buffer holds finished spans until they are reported. When full, the
// oldest span is dropped and counted.
type Buffer struct {
	mu    sync.Mutex
	spans []telemetry.Span // ring of capacity max
	head  int              // index of the oldest span
	n     int
	max   int
	drops atomic.Uint64
}

// NewBuffer returns a buffer of up to size spans (DefaultBufferSize if <= 0).
func NewBuffer(size int) *Buffer {
	if size <= 0 {
		size = DefaultBufferSize
	}
	return &Buffer{max: size}
}

// Add appends s, dropping the oldest span when the buffer is full.
func (b *Buffer) Add(s telemetry.Span) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spans == nil {
		b.spans = make([]telemetry.Span, b.max)
	}
	if b.n == b.max {
		b.spans[b.head] = s
		b.head = (b.head + 1) % b.max
		b.drops.Add(1)
		return
	}
	b.spans[(b.head+b.n)%b.max] = s
	b.n++
}

// Drain removes and returns the buffered spans, oldest first.
func (b *Buffer) Drain() []telemetry.Span {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == 0 {
		return nil
	}
	out := make([]telemetry.Span, b.n)
	for i := range out {
		j := (b.head + i) % b.max
		out[i] = b.spans[j]
		b.spans[j] = telemetry.Span{}
	}
	b.head, b.n = 0, 0
	return out
}

// Requeue puts spans whose report failed back in front of newer ones, as
// far as room allows; the oldest are dropped and counted.
func (b *Buffer) Requeue(spans []telemetry.Span) {
	if len(spans) == 0 {
		return
	}
	newer := b.Drain()
	all := append(spans, newer...)
	if over := len(all) - b.max; over > 0 {
		b.drops.Add(uint64(over))
		all = all[over:]
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spans == nil {
		b.spans = make([]telemetry.Span, b.max)
	}
	// Spans added between Drain and here go after the requeued ones.
	var extra []telemetry.Span
	for i := 0; i < b.n; i++ {
		extra = append(extra, b.spans[(b.head+i)%b.max])
	}
	all = append(all, extra...)
	if over := len(all) - b.max; over > 0 {
		b.drops.Add(uint64(over))
		all = all[over:]
	}
	copy(b.spans, all)
	for i := len(all); i < b.max; i++ {
		b.spans[i] = telemetry.Span{}
	}
	b.head, b.n = 0, len(all)
}

// Dropped returns how many spans were dropped for lack of room so far.
func (b *Buffer) Dropped() uint64 { return b.drops.Load() }
