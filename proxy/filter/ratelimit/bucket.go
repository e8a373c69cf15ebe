package ratelimit

import (
	"sync/atomic"
	"time"
)

// Clock returns monotonic nanoseconds since an arbitrary origin; tests
// substitute a fake one.
type Clock func() int64

var origin = time.Now()

// Monotonic is the real Clock.
func Monotonic() int64 { return int64(time.Since(origin)) }

// Bucket is a token bucket as Envoy's local rate limiter keeps it: it
// starts full with max tokens, and at every fill interval boundary perFill
// tokens are added, up to max. It is lock-free: the token count and the
// number of the fill interval it was counted at share one atomic word,
// updated by compare-and-swap.
type Bucket struct {
	max, perFill uint32
	interval     int64 // nanoseconds
	clock        Clock
	epoch        int64
	// state: tokens in the low 32 bits, the low 32 bits of the fill
	// interval they were counted at in the high 32.
	state atomic.Uint64
	// seen is the last fill interval a caller observed, in full: after an
	// idle spell of 2^31 intervals or more the 32-bit difference in state
	// would wrap, and seen tells the bucket it is full again.
	seen atomic.Int64
}

// NewBucket returns a full bucket. A nil clock is Monotonic.
func NewBucket(max, perFill uint32, interval time.Duration, clock Clock) *Bucket {
	if clock == nil {
		clock = Monotonic
	}
	b := &Bucket{max: max, perFill: perFill, interval: int64(interval), clock: clock, epoch: clock()}
	b.state.Store(uint64(max))
	return b
}

// tick returns the current fill interval's number and the clock reading.
func (b *Bucket) tick() (int64, int64) {
	now := b.clock()
	return (now - b.epoch) / b.interval, now
}

// refill returns the tokens of state s at fill interval t, and the
// interval to store with them. A state already counted at a later interval
// (another goroutine read the clock after this one) is left as it is.
func (b *Bucket) refill(s uint64, t int64) (tokens, at uint32) {
	tokens, last := uint32(s), uint32(s>>32)
	if t-b.seen.Load() >= 1<<31 {
		return b.max, uint32(t)
	}
	d := uint32(t) - last
	if int32(d) <= 0 {
		return tokens, last
	}
	return uint32(min(uint64(b.max), uint64(tokens)+uint64(d)*uint64(b.perFill))), uint32(t)
}

// Take consumes one token; it reports false when none is left.
func (b *Bucket) Take() bool {
	t, _ := b.tick()
	defer b.observe(t)
	for {
		old := b.state.Load()
		tokens, at := b.refill(old, t)
		if tokens == 0 {
			return false
		}
		if b.state.CompareAndSwap(old, uint64(at)<<32|uint64(tokens-1)) {
			return true
		}
	}
}

// observe records fill interval t as seen, writing the shared word only
// once per interval.
func (b *Bucket) observe(t int64) {
	if s := b.seen.Load(); s < t {
		b.seen.CompareAndSwap(s, t)
	}
}

// Remaining returns the tokens left now.
func (b *Bucket) Remaining() uint32 {
	t, _ := b.tick()
	tokens, _ := b.refill(b.state.Load(), t)
	return tokens
}

// Max returns the bucket's capacity.
func (b *Bucket) Max() uint32 { return b.max }

// Reset returns the time until the next fill.
func (b *Bucket) Reset() time.Duration {
	t, now := b.tick()
	next := b.epoch + (t+1)*b.interval
	return time.Duration(next - now)
}
