package store

import (
	"math"
	"time"

	"github.com/weft-mesh/weft/telemetry"
)

// Resolution is the width of one time-series slot.
const Resolution = 2 * time.Second

const (
	// slotsPerChunk slots make one chunk (2 minutes). History is allocated
	// a chunk at a time, so a series that is quiet costs no slot memory.
	slotsPerChunk = 60
	// historyChunks chunks hold the retained hour (1800 slots); one more
	// is the chunk being filled, so a full hour is always readable.
	historyChunks = 30
	ringChunks    = historyChunks + 1
	// nDur is the number of duration buckets per slot: the finite bounds
	// plus +Inf.
	nDur = 20
)

// Slots is the number of retained slots per edge series (one hour).
const Slots = historyChunks * slotsPerChunk

func init() {
	if len(telemetry.DurationBuckets)+1 != nDur {
		panic("store: nDur does not match telemetry.DurationBuckets")
	}
}

// EdgeKey identifies one edge series: who called whom, how, and who said so.
type EdgeKey struct {
	SourceWorkload, SourceNamespace, SourceApp, SourceVersion string
	DestinationService                                        string
	DestinationWorkload, DestinationNamespace                 string
	DestinationApp, DestinationVersion                        string
	Protocol                                                  string // http, grpc, tcp, ...
	Reporter                                                  string // source or destination
}

// overflowKey is where edges beyond the series cap are folded.
var overflowKey = EdgeKey{
	SourceWorkload: Overflow, SourceNamespace: Overflow, DestinationService: Overflow,
	DestinationWorkload: Overflow, DestinationNamespace: Overflow, Protocol: Overflow, Reporter: Overflow,
}

// slot is one Resolution's worth of one edge. Counts are uint32 and
// saturate: 4 billion requests in 2 s on one edge is not a real load, and
// half-width counters halve the history's memory.
type slot struct {
	requests uint32 // HTTP/gRPC requests, or TCP connections opened
	errors   uint32 // 5xx or a failure response flag
	mtls     uint32 // requests made over mutual TLS
	bytes    uint64 // request + response bytes (TCP: sent + received)
	dur      [nDur]uint32
}

// chunk is slotsPerChunk consecutive slots starting at slot n*slotsPerChunk.
type chunk struct {
	n     int64
	slots [slotsPerChunk]slot
}

// chunkBytes is the memory one chunk takes, for the budget.
const chunkBytes = int64(8 + slotsPerChunk*(4*3+4+8+4*nDur))

// series is one edge's history: a ring of lazily allocated chunks.
type series struct {
	key    EdgeKey
	chunks [ringChunks]*chunk
	last   time.Time // last update, for expiry
}

func satAdd32(a uint32, b uint64) uint32 {
	if s := uint64(a) + b; s < math.MaxUint32 {
		return uint32(s)
	}
	return math.MaxUint32
}

// slotIndex returns the absolute slot number of t.
func slotIndex(t time.Time) int64 { return t.UnixNano() / int64(Resolution) }

// slotFor returns the slot for absolute slot number i, allocating its
// chunk when alloc is set. The boolean reports whether a chunk was
// allocated; a replaced chunk (an hour old) is reported as released.
func (s *series) slotFor(i int64, alloc bool) (sl *slot, allocated, released bool) {
	n := i / slotsPerChunk
	pos := n % ringChunks
	c := s.chunks[pos]
	if c == nil || c.n != n {
		if !alloc || (c != nil && c.n > n) {
			return nil, false, false // not allocated, or a late write older than the ring
		}
		released = c != nil
		c = &chunk{n: n}
		s.chunks[pos] = c
		allocated = true
	}
	return &c.slots[i%slotsPerChunk], allocated, released
}

// agg is the sum of an edge's slots over a window.
type agg struct {
	requests, errors, mtls, bytes uint64
	// secured counts the requests whose connection security is known: those
	// a destination proxy reported (a caller's proxy cannot tell whether
	// its upstream handshake was mutual, so it reports "unknown"). mtls is
	// a part of it.
	secured uint64
	dur     [nDur]uint64
}

func (a *agg) add(b *agg) {
	a.requests += b.requests
	a.errors += b.errors
	a.mtls += b.mtls
	a.secured += b.secured
	a.bytes += b.bytes
	for i := range a.dur {
		a.dur[i] += b.dur[i]
	}
}

// sum adds slots [from, to] (absolute slot numbers) into a.
func (s *series) sum(from, to int64, a *agg) {
	for i := from; i <= to; {
		n := i / slotsPerChunk
		end := min((n+1)*slotsPerChunk-1, to)
		c := s.chunks[n%ringChunks]
		if c != nil && c.n == n {
			for j := i; j <= end; j++ {
				sl := &c.slots[j%slotsPerChunk]
				if sl.requests == 0 && sl.bytes == 0 {
					continue
				}
				a.requests += uint64(sl.requests)
				a.errors += uint64(sl.errors)
				a.mtls += uint64(sl.mtls)
				a.bytes += sl.bytes
				for k, v := range sl.dur {
					a.dur[k] += uint64(v)
				}
			}
		}
		i = end + 1
	}
}

// Quantile estimates the q-quantile (0..1) of a duration histogram given
// as non-cumulative counts per telemetry.DurationBuckets (plus +Inf), the
// way Prometheus' histogram_quantile does: linear interpolation inside the
// bucket holding the rank, 0 as the lower bound of the first bucket, and
// the highest finite bound when the rank falls in +Inf. It returns NaN
// for an empty histogram.
func Quantile(q float64, counts []uint64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	bounds := telemetry.DurationBuckets
	rank := q * float64(total)
	var cum uint64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if float64(cum+c) >= rank {
			if i >= len(bounds) {
				return bounds[len(bounds)-1]
			}
			lo := 0.0
			if i > 0 {
				lo = bounds[i-1]
			}
			hi := bounds[i]
			return lo + (hi-lo)*(rank-float64(cum))/float64(c)
		}
		cum += c
	}
	return bounds[len(bounds)-1]
}
