// Package trace is the proxy's distributed-tracing support: it reads the
// trace context a request arrives with (W3C traceparent/tracestate, B3 multi
// and single header), decides whether this hop is sampled, writes the
// context for the next hop in both formats, and buffers finished spans
// until the proxy reports them.
//
// Nothing here allocates for a request that is neither traced upstream nor
// sampled here, which is the common case at the default 1% sampling.
package trace

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
)

// Header names, in Go's canonical form (http.Header keys).
const (
	HeaderTraceparent  = "Traceparent"
	HeaderTracestate   = "Tracestate"
	HeaderB3           = "B3"
	HeaderB3TraceID    = "X-B3-Traceid"
	HeaderB3SpanID     = "X-B3-Spanid"
	HeaderB3ParentSpan = "X-B3-Parentspanid"
	HeaderB3Sampled    = "X-B3-Sampled"
	HeaderB3Flags      = "X-B3-Flags"
)

// TraceID is a 128-bit trace id; 64-bit B3 ids are kept in the low half.
type TraceID [16]byte

// SpanID is a 64-bit span id.
type SpanID [8]byte

// IsZero reports whether id is all zeros (invalid in both formats).
func (id TraceID) IsZero() bool { return id == TraceID{} }

// IsZero reports whether id is all zeros.
func (id SpanID) IsZero() bool { return id == SpanID{} }

// String returns the 32 lower-case hex digits of id.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// String returns the 16 lower-case hex digits of id; "" for the zero id.
func (id SpanID) String() string {
	if id.IsZero() {
		return ""
	}
	return hex.EncodeToString(id[:])
}

// Incoming is the trace context found on a request.
type Incoming struct {
	TraceID TraceID
	SpanID  SpanID // the caller's span: the parent of this hop's span
	// HasTrace is true when a valid trace and span id were found.
	HasTrace bool
	// HasDecision is true when the caller decided sampling (W3C flags,
	// x-b3-sampled, x-b3-flags, b3's third field), Sampled holds it.
	HasDecision bool
	Sampled     bool
}

// Context is this hop's span context.
type Context struct {
	// Valid is false when the request is not traced at all: no incoming
	// trace and not sampled here. Nothing is propagated or recorded then.
	Valid    bool
	Sampled  bool
	TraceID  TraceID
	SpanID   SpanID // this hop's span
	ParentID SpanID // the caller's span, zero for a root span
}

// Extract reads the incoming trace context: traceparent wins over B3
// single, which wins over B3 multi headers. Malformed headers are ignored.
func Extract(h http.Header) Incoming {
	if v := h[HeaderTraceparent]; len(v) > 0 {
		if in, ok := parseTraceparent(v[0]); ok {
			return in
		}
	}
	if v := h[HeaderB3]; len(v) > 0 {
		if in, ok := parseB3Single(v[0]); ok {
			return in
		}
	}
	var in Incoming
	if tv, sv := h[HeaderB3TraceID], h[HeaderB3SpanID]; len(tv) > 0 && len(sv) > 0 {
		tid, ok1 := parseTraceID(tv[0])
		sid, ok2 := parseSpanID(sv[0])
		if ok1 && ok2 {
			in.TraceID, in.SpanID, in.HasTrace = tid, sid, true
		}
	}
	if f := h[HeaderB3Flags]; len(f) > 0 && f[0] == "1" {
		in.HasDecision, in.Sampled = true, true // debug implies sampled
	} else if s := h[HeaderB3Sampled]; len(s) > 0 {
		switch s[0] {
		case "1", "true", "d":
			in.HasDecision, in.Sampled = true, true
		case "0", "false":
			in.HasDecision = true
		}
	}
	return in
}

// Start returns this hop's span context: a child of in when it carries a
// trace (sampled as the caller decided, else per sampler), else a new root
// span when sampler says so, else an invalid (untraced) context. A caller's
// explicit "not sampled" without ids is respected: no trace starts.
func Start(in Incoming, s Sampler) Context {
	if in.HasTrace {
		sampled := in.Sampled
		if !in.HasDecision {
			sampled = s.Sample()
		}
		return Context{Valid: true, Sampled: sampled, TraceID: in.TraceID, ParentID: in.SpanID, SpanID: NewSpanID()}
	}
	if in.HasDecision && !in.Sampled {
		return Context{}
	}
	if (in.HasDecision && in.Sampled) || s.Sample() {
		return Context{Valid: true, Sampled: true, TraceID: NewTraceID(), SpanID: NewSpanID()}
	}
	return Context{}
}

// Inject writes c for the next hop in W3C and B3 multi-header form, with
// c's span as the parent; an incoming single b3 header is rewritten too,
// and tracestate is left as the caller sent it. Values are new slices, so
// h may share slices with the downstream request's headers.
func Inject(h http.Header, c Context) {
	if !c.Valid {
		return
	}
	var buf [55]byte // 00-<32>-<16>-<2>
	tid := c.TraceID.String()
	sid := hex.EncodeToString(c.SpanID[:])
	copy(buf[:], "00-")
	copy(buf[3:], tid)
	buf[35] = '-'
	copy(buf[36:], sid)
	copy(buf[52:], "-00")
	sampled := "0"
	if c.Sampled {
		buf[54] = '1'
		sampled = "1"
	}
	h[HeaderTraceparent] = []string{string(buf[:])}
	h[HeaderB3TraceID] = []string{tid}
	h[HeaderB3SpanID] = []string{sid}
	h[HeaderB3Sampled] = []string{sampled}
	delete(h, HeaderB3Flags)
	if c.ParentID.IsZero() {
		delete(h, HeaderB3ParentSpan)
	} else {
		h[HeaderB3ParentSpan] = []string{c.ParentID.String()}
	}
	if _, ok := h[HeaderB3]; ok {
		single := tid + "-" + sid + "-" + sampled
		if !c.ParentID.IsZero() {
			single += "-" + c.ParentID.String()
		}
		h[HeaderB3] = []string{single}
	}
}

// NewTraceID returns a random, non-zero trace id.
func NewTraceID() TraceID {
	var id TraceID
	for id.IsZero() {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := range 8 {
			id[i], id[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
		}
	}
	return id
}

// NewSpanID returns a random, non-zero span id.
func NewSpanID() SpanID {
	var id SpanID
	for id.IsZero() {
		v := rand.Uint64()
		for i := range 8 {
			id[i] = byte(v >> (56 - 8*i))
		}
	}
	return id
}

// parseTraceparent parses version 00 "00-TRACEID-SPANID-FLAGS" (and, as the
// spec asks, the same prefix of a higher version).
func parseTraceparent(v string) (Incoming, bool) {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' || (len(v) > 55 && v[55] != '-') {
		return Incoming{}, false
	}
	if v[:2] == "ff" || (v[:2] == "00" && len(v) != 55) {
		return Incoming{}, false
	}
	var in Incoming
	if !decodeHex(in.TraceID[:], v[3:35]) || !decodeHex(in.SpanID[:], v[36:52]) {
		return Incoming{}, false
	}
	var flags [1]byte
	if !decodeHex(flags[:], v[53:55]) || in.TraceID.IsZero() || in.SpanID.IsZero() {
		return Incoming{}, false
	}
	in.HasTrace, in.HasDecision, in.Sampled = true, true, flags[0]&1 == 1
	return in, true
}

// parseB3Single parses "TRACEID-SPANID[-SAMPLED[-PARENT]]" or a lone
// sampling decision ("0", "1", "d").
func parseB3Single(v string) (Incoming, bool) {
	var in Incoming
	switch v {
	case "0":
		in.HasDecision = true
		return in, true
	case "1", "d":
		in.HasDecision, in.Sampled = true, true
		return in, true
	}
	var parts [4]string
	n := 0
	for n < 4 {
		i := indexByte(v, '-')
		if i < 0 {
			parts[n] = v
			n++
			break
		}
		parts[n], v = v[:i], v[i+1:]
		n++
	}
	if n < 2 {
		return Incoming{}, false
	}
	tid, ok1 := parseTraceID(parts[0])
	sid, ok2 := parseSpanID(parts[1])
	if !ok1 || !ok2 {
		return Incoming{}, false
	}
	in.TraceID, in.SpanID, in.HasTrace = tid, sid, true
	if n > 2 {
		switch parts[2] {
		case "1", "d":
			in.HasDecision, in.Sampled = true, true
		case "0":
			in.HasDecision = true
		}
	}
	return in, true
}

// parseTraceID accepts 32 or 16 hex digits (64-bit B3 ids, zero-extended).
func parseTraceID(s string) (TraceID, bool) {
	var id TraceID
	switch len(s) {
	case 32:
		if !decodeHex(id[:], s) {
			return id, false
		}
	case 16:
		if !decodeHex(id[8:], s) {
			return id, false
		}
	default:
		return id, false
	}
	return id, !id.IsZero()
}

func parseSpanID(s string) (SpanID, bool) {
	var id SpanID
	if len(s) != 16 || !decodeHex(id[:], s) {
		return id, false
	}
	return id, !id.IsZero()
}

// decodeHex decodes lower- or upper-case hex s into dst without allocating.
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
