// Package stats keeps Istio's standard metrics in the proxy: request count,
// duration and sizes for HTTP and gRPC, bytes and connections for TCP, each
// with exactly the labels of telemetry.Labels. It exposes them in the
// Prometheus text format and as deltas for the control plane's report.
//
// The hot path is lock-free: label values that do not change per request
// (reporter, source and destination identity) are interned once into a
// Static, which callers cache (on the endpoint, or per peer); the per-request
// labels (protocol, code, flags, grpc status) select a Series from a small
// copy-on-write slice; counters are atomics in fixed arrays.
package stats

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/telemetry"
)

// Values used for labels whose value is not known, as Istio spells them.
const (
	Unknown = "unknown"
	NoFlags = "-"
)

// Reporter label values.
const (
	ReporterSource      = "source"
	ReporterDestination = "destination"
)

// Request protocols.
const (
	ProtoHTTP = "http"
	ProtoGRPC = "grpc"
	ProtoTCP  = "tcp"
)

// DefaultMaxSeries bounds the series a Registry creates; requests that would
// need more are counted in Registry.Overflow instead.
const DefaultMaxSeries = 10000

// nDur and nSize are the histogram bucket counts, +Inf included.
var (
	nDur  = len(telemetry.DurationBuckets) + 1
	nSize = len(telemetry.SizeBuckets) + 1
)

const (
	maxDur  = 20 // >= nDur; checked in init
	maxSize = 10 // >= nSize
)

func init() {
	if nDur > maxDur || nSize > maxSize {
		panic("stats: telemetry buckets exceed the fixed arrays")
	}
}

// Identity is the label values fixed for a Static: everything but
// request_protocol, response_code, response_flags and grpc_response_status.
// Empty values are exposed as "unknown".
type Identity struct {
	Reporter string

	SourceWorkload, SourceNamespace, SourceApp, SourceVersion, SourcePrincipal string

	DestinationService, DestinationServiceName, DestinationServiceNamespace string

	DestinationWorkload, DestinationNamespace, DestinationApp, DestinationVersion, DestinationPrincipal string

	SecurityPolicy string
}

// values returns id's label values in telemetry.Labels order, with the four
// per-request labels left empty.
func (id Identity) values() [19]string {
	u := func(s string) string {
		if s == "" {
			return Unknown
		}
		return s
	}
	return [19]string{
		u(id.Reporter),
		u(id.SourceWorkload), u(id.SourceNamespace), u(id.SourceApp), u(id.SourceVersion), u(id.SourcePrincipal),
		u(id.DestinationService), u(id.DestinationServiceName), u(id.DestinationServiceNamespace),
		u(id.DestinationWorkload), u(id.DestinationNamespace), u(id.DestinationApp), u(id.DestinationVersion), u(id.DestinationPrincipal),
		"", "", "", u(id.SecurityPolicy), "",
	}
}

// Label positions of the per-request labels in telemetry.Labels.
const (
	idxProtocol = 14
	idxCode     = 15
	idxFlags    = 16
	idxGRPC     = 18
)

// Registry holds every series of one proxy.
type Registry struct {
	maxSeries int

	mu      sync.Mutex // guards statics, http, tcp, count; held only on misses
	statics map[Identity]*Static
	http    []*Series
	tcp     []*TCPSeries
	count   int

	overflow atomic.Uint64
	deltaMu  sync.Mutex // serializes Delta/commit
}

// NewRegistry returns an empty registry of at most maxSeries series
// (DefaultMaxSeries when <= 0).
func NewRegistry(maxSeries int) *Registry {
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	return &Registry{maxSeries: maxSeries, statics: map[Identity]*Static{}}
}

// Overflow returns the requests and connections not counted because the
// series limit was reached.
func (r *Registry) Overflow() uint64 { return r.overflow.Load() }

// Intern returns the Static for id, the same pointer for equal identities.
// It takes a lock: callers cache the result.
func (r *Registry) Intern(id Identity) *Static {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.statics[id]; s != nil {
		return s
	}
	s := &Static{reg: r, labels: id.values()}
	r.statics[id] = s
	return s
}

// Static is an interned set of fixed label values and the series under it.
type Static struct {
	reg    *Registry
	labels [19]string

	mu   sync.Mutex // guards creating series
	http atomic.Pointer[[]*Series]
	tcp  atomic.Pointer[[]*TCPSeries]
}

// Label returns the value of the named label, "" for per-request labels
// and unknown names.
func (s *Static) Label(name string) string {
	for i, n := range telemetry.Labels {
		if n == name {
			return s.labels[i]
		}
	}
	return ""
}

// Series is the counters of one HTTP/gRPC label set.
type Series struct {
	static *Static
	proto  string
	code   int
	flags  string
	grpc   string

	count     atomic.Uint64
	dur       [maxDur]atomic.Uint64
	durNanos  atomic.Uint64
	req       [maxSize]atomic.Uint64
	reqSum    atomic.Uint64
	resp      [maxSize]atomic.Uint64
	respSum   atomic.Uint64
	lastHTTP  httpSnap // last reported; under Registry.deltaMu
	codeLabel string
}

// RecordHTTP counts one request. flags "" means none; grpc is the gRPC
// status ("" for plain HTTP). It does not lock unless the label set is new.
func (s *Static) RecordHTTP(proto string, code int, flags, grpc string, d time.Duration, reqBytes, respBytes int64) {
	if flags == "" {
		flags = NoFlags
	}
	se := s.series(proto, code, flags, grpc)
	if se == nil {
		return
	}
	se.count.Add(1)
	ms := float64(d) / float64(time.Millisecond)
	se.dur[durBucket(ms)].Add(1)
	se.durNanos.Add(uint64(max(d, 0)))
	rb, sb := uint64(max(reqBytes, 0)), uint64(max(respBytes, 0))
	se.req[sizeBucket(rb)].Add(1)
	se.reqSum.Add(rb)
	se.resp[sizeBucket(sb)].Add(1)
	se.respSum.Add(sb)
}

func (s *Static) series(proto string, code int, flags, grpc string) *Series {
	if p := s.http.Load(); p != nil {
		for _, se := range *p {
			if se.code == code && se.proto == proto && se.flags == flags && se.grpc == grpc {
				return se
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []*Series
	if p := s.http.Load(); p != nil {
		cur = *p
		for _, se := range cur {
			if se.code == code && se.proto == proto && se.flags == flags && se.grpc == grpc {
				return se
			}
		}
	}
	r := s.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.count >= r.maxSeries {
		r.overflow.Add(1)
		return nil
	}
	se := &Series{static: s, proto: proto, code: code, flags: flags, grpc: grpc, codeLabel: itoa(code)}
	next := append(cur[:len(cur):len(cur)], se)
	s.http.Store(&next)
	r.http = append(r.http, se)
	r.count++
	return se
}

// TCPSeries is the counters of one TCP label set.
type TCPSeries struct {
	static *Static
	flags  string

	opened, closed, sent, received atomic.Uint64
	lastTCP                        tcpSnap // last reported; under Registry.deltaMu
}

// TCP returns the TCP series for flags ("" means none), nil when the series
// limit is reached.
func (s *Static) TCP(flags string) *TCPSeries {
	if flags == "" {
		flags = NoFlags
	}
	if p := s.tcp.Load(); p != nil {
		for _, se := range *p {
			if se.flags == flags {
				return se
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []*TCPSeries
	if p := s.tcp.Load(); p != nil {
		cur = *p
		for _, se := range cur {
			if se.flags == flags {
				return se
			}
		}
	}
	r := s.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.count >= r.maxSeries {
		r.overflow.Add(1)
		return nil
	}
	se := &TCPSeries{static: s, flags: flags}
	next := append(cur[:len(cur):len(cur)], se)
	s.tcp.Store(&next)
	r.tcp = append(r.tcp, se)
	r.count++
	return se
}

// Opened counts an opened connection; safe on a nil series.
func (t *TCPSeries) Opened() {
	if t != nil {
		t.opened.Add(1)
	}
}

// Closed counts a closed connection and its bytes: sent to the downstream
// and received from it. Safe on a nil series.
func (t *TCPSeries) Closed(sent, received int64) {
	if t == nil {
		return
	}
	t.closed.Add(1)
	t.sent.Add(uint64(max(sent, 0)))
	t.received.Add(uint64(max(received, 0)))
}

// durBucket returns the index of the duration bucket for ms.
func durBucket(ms float64) int {
	for i, b := range telemetry.DurationBuckets {
		if ms <= b {
			return i
		}
	}
	return len(telemetry.DurationBuckets)
}

// sizeBucket returns the index of the size bucket for n bytes.
func sizeBucket(n uint64) int {
	for i, b := range telemetry.SizeBuckets {
		if float64(n) <= b {
			return i
		}
	}
	return len(telemetry.SizeBuckets)
}

func itoa(n int) string {
	if n >= 0 && n < 1000 {
		var b [3]byte
		i := len(b)
		for {
			i--
			b[i] = byte('0' + n%10)
			n /= 10
			if n == 0 {
				break
			}
		}
		return string(b[i:])
	}
	return formatInt(int64(n))
}
