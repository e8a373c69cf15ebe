// Package store keeps what proxies report (telemetry.Report) in bounded
// memory: cumulative totals per full Istio label set for Prometheus
// exposition, per-edge time series at 2 s resolution for the console's
// graph and for canary analysis, and the most recent traces. README.md
// states the memory bound.
package store

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weft-mesh/weft/telemetry"
)

// Overflow is the label value of the series that absorbs label sets beyond
// a cap, so totals stay correct when detail is dropped.
const Overflow = "overflow"

// Defaults for Options.
const (
	DefaultMaxTotals   = 20000
	DefaultMaxEdges    = 5000
	DefaultRetention   = time.Hour
	DefaultMaxHistory  = 128 << 20 // bytes of edge history
	DefaultMaxTraces   = 2000
	DefaultMaxSpans    = 256 // per trace
	maxLabelValueBytes = 256
)

// Options bound a Store. Zero fields take the defaults above.
type Options struct {
	MaxTotals int           // distinct label sets kept for /metrics
	MaxEdges  int           // distinct edge series
	Retention time.Duration // idle series are removed after this long
	// MaxHistoryBytes caps edge history memory; beyond it the oldest
	// chunks of every series are released first.
	MaxHistoryBytes int64
	MaxTraces       int
	MaxSpans        int
}

func (o *Options) defaults() {
	if o.MaxTotals <= 0 {
		o.MaxTotals = DefaultMaxTotals
	}
	if o.MaxEdges <= 0 {
		o.MaxEdges = DefaultMaxEdges
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.MaxHistoryBytes <= 0 {
		o.MaxHistoryBytes = DefaultMaxHistory
	}
	if o.MaxTraces <= 0 {
		o.MaxTraces = DefaultMaxTraces
	}
	if o.MaxSpans <= 0 {
		o.MaxSpans = DefaultMaxSpans
	}
}

// Store aggregates reports. It is safe for concurrent use.
type Store struct {
	opts      Options
	maxChunks int64
	Traces    *Traces

	mu         sync.Mutex
	totals     map[string]*total
	edges      map[EdgeKey]*series
	liveChunks int64

	// Self-metrics, under mu.
	reports        uint64
	droppedTotals  uint64 // stats folded into the totals overflow series
	droppedEdges   uint64 // stats folded into the edge overflow series
	evictedChunks  uint64 // history released early to stay in budget
	expiredSeries  uint64
	rejectedStats  uint64
	lastReportTime map[string]time.Time // node -> last report, bounded by maxNodes
}

// maxNodes bounds the per-proxy bookkeeping; beyond it the least recent
// node is forgotten.
const maxNodes = 10000

// New returns an empty Store.
func New(opts Options) *Store {
	opts.defaults()
	return &Store{
		opts:           opts,
		maxChunks:      max(1, opts.MaxHistoryBytes/chunkBytes),
		Traces:         newTraces(opts.MaxTraces, opts.MaxSpans),
		totals:         map[string]*total{},
		edges:          map[EdgeKey]*series{},
		lastReportTime: map[string]time.Time{},
	}
}

// total is the cumulative state of one full label set.
type total struct {
	labels []string // values in telemetry.Labels order
	last   time.Time
	req    *reqTotals
	tcp    *tcpTotals
}

type reqTotals struct {
	count              uint64
	dur                [nDur]float64 // float: Prometheus exposes bucket counts as floats anyway
	durSum             float64
	reqBytes, rspBytes [nSize]uint64
	reqSum, rspSum     uint64
}

type tcpTotals struct{ opened, closed, sent, received uint64 }

// nSize is the number of size buckets: the finite bounds plus +Inf.
const nSize = 10

func init() {
	if len(telemetry.SizeBuckets)+1 != nSize {
		panic("store: nSize does not match telemetry.SizeBuckets")
	}
}

// labelIndex maps a label name to its position in telemetry.Labels.
var labelIndex = func() map[string]int {
	m := map[string]int{}
	for i, l := range telemetry.Labels {
		m[l] = i
	}
	return m
}()

// labelValues orders a stat's labels as telemetry.Labels, dropping
// unknown names and truncating huge values: a misbehaving proxy must not
// be able to grow one series without bound.
func labelValues(m map[string]string) []string {
	v := make([]string, len(telemetry.Labels))
	for k, val := range m {
		i, ok := labelIndex[k]
		if !ok {
			continue
		}
		if len(val) > maxLabelValueBytes {
			// Cut on a rune boundary: the exposition must stay UTF-8.
			val = strings.ToValidUTF8(val[:maxLabelValueBytes], "")
		}
		v[i] = val
	}
	return v
}

func get(v []string, name string) string { return v[labelIndex[name]] }

// Validate checks a report against the contract in package telemetry.
func Validate(r *telemetry.Report) error {
	for i, s := range r.Requests {
		if err := checkLen(s.DurationBuckets, nDur); err != nil {
			return fmt.Errorf("requests[%d].durationBuckets: %w", i, err)
		}
		if err := checkLen(s.RequestBytes, nSize); err != nil {
			return fmt.Errorf("requests[%d].requestBytes: %w", i, err)
		}
		if err := checkLen(s.ResponseBytes, nSize); err != nil {
			return fmt.Errorf("requests[%d].responseBytes: %w", i, err)
		}
	}
	return nil
}

func checkLen(b []uint64, want int) error {
	if len(b) != 0 && len(b) != want {
		return fmt.Errorf("%d buckets, want %d (the bounds plus +Inf) or none", len(b), want)
	}
	return nil
}

// Merge adds a report's deltas, received at now. Spans go to s.Traces.
// The report must have passed Validate.
func (s *Store) Merge(r *telemetry.Report, now time.Time) {
	s.mu.Lock()
	s.reports++
	if r.Node != "" {
		if _, ok := s.lastReportTime[r.Node]; !ok && len(s.lastReportTime) >= maxNodes {
			s.forgetOldestNode()
		}
		s.lastReportTime[r.Node] = now
	}
	idx := slotIndex(now)
	for i := range r.Requests {
		st := &r.Requests[i]
		lv := labelValues(st.Labels)
		t := s.total(lv, now)
		if t.req == nil {
			t.req = &reqTotals{}
		}
		rt := t.req
		rt.count += st.Count
		for k, c := range st.DurationBuckets {
			rt.dur[k] += float64(c)
		}
		rt.durSum += st.DurationSumMs
		for k, c := range st.RequestBytes {
			rt.reqBytes[k] += c
		}
		for k, c := range st.ResponseBytes {
			rt.rspBytes[k] += c
		}
		rt.reqSum += st.RequestBytesSum
		rt.rspSum += st.ResponseBytesSum

		if sl := s.edgeSlot(lv, idx, now); sl != nil {
			sl.requests = satAdd32(sl.requests, st.Count)
			if isError(get(lv, "response_code"), get(lv, "response_flags")) {
				sl.errors = satAdd32(sl.errors, st.Count)
			}
			if get(lv, "connection_security_policy") == "mutual_tls" {
				sl.mtls = satAdd32(sl.mtls, st.Count)
			}
			sl.bytes += st.RequestBytesSum + st.ResponseBytesSum
			for k, c := range st.DurationBuckets {
				sl.dur[k] = satAdd32(sl.dur[k], c)
			}
		}
	}
	for i := range r.TCP {
		st := &r.TCP[i]
		lv := labelValues(st.Labels)
		if lv[labelIndex["request_protocol"]] == "" {
			lv[labelIndex["request_protocol"]] = "tcp"
		}
		t := s.total(lv, now)
		if t.tcp == nil {
			t.tcp = &tcpTotals{}
		}
		t.tcp.opened += st.Opened
		t.tcp.closed += st.Closed
		t.tcp.sent += st.SentBytes
		t.tcp.received += st.ReceivedBytes
		if sl := s.edgeSlot(lv, idx, now); sl != nil {
			sl.requests = satAdd32(sl.requests, st.Opened)
			if get(lv, "connection_security_policy") == "mutual_tls" {
				sl.mtls = satAdd32(sl.mtls, st.Opened)
			}
			sl.bytes += st.SentBytes + st.ReceivedBytes
		}
	}
	s.mu.Unlock()
	if len(r.Spans) > 0 {
		s.Traces.Add(r.Node, r.Spans)
	}
}

func (s *Store) forgetOldestNode() {
	var oldest string
	var at time.Time
	for n, t := range s.lastReportTime {
		if oldest == "" || t.Before(at) {
			oldest, at = n, t
		}
	}
	delete(s.lastReportTime, oldest)
}

// isError is Kiali's and Istio dashboards' notion of a failed request: a
// 5xx, or a response flag other than an injected delay (the request may
// still have succeeded after it).
func isError(code, flags string) bool {
	if c, err := strconv.Atoi(code); err == nil && c >= 500 {
		return true
	}
	switch flags {
	case "", "-", "DI":
		return false
	}
	return true
}

// total returns the totals entry for lv, creating it, or folding into the
// overflow entry once MaxTotals label sets exist. Caller holds mu.
func (s *Store) total(lv []string, now time.Time) *total {
	key := strings.Join(lv, "\xff")
	t := s.totals[key]
	if t == nil {
		if len(s.totals) >= s.opts.MaxTotals {
			s.droppedTotals++
			lv = overflowLabels(get(lv, "reporter"))
			key = strings.Join(lv, "\xff")
			if t = s.totals[key]; t != nil {
				t.last = now
				return t
			}
			// The overflow entries (one per reporter) may exceed the cap
			// by those few: better than losing the counts.
		}
		t = &total{labels: lv}
		s.totals[key] = t
	}
	t.last = now
	return t
}

// overflowLabels is the label set of the totals overflow series: every
// label "overflow" but the reporter, so per-reporter sums stay right.
func overflowLabels(reporter string) []string {
	v := make([]string, len(telemetry.Labels))
	for i := range v {
		v[i] = Overflow
	}
	v[labelIndex["reporter"]] = reporter
	return v
}

// edgeSlot returns the slot at idx of lv's edge series, creating the
// series (or folding into overflow) and allocating history within the
// budget. Caller holds mu.
func (s *Store) edgeSlot(lv []string, idx int64, now time.Time) *slot {
	k := EdgeKey{
		SourceWorkload: get(lv, "source_workload"), SourceNamespace: get(lv, "source_workload_namespace"),
		SourceApp: get(lv, "source_app"), SourceVersion: get(lv, "source_version"),
		DestinationService:  get(lv, "destination_service"),
		DestinationWorkload: get(lv, "destination_workload"), DestinationNamespace: get(lv, "destination_workload_namespace"),
		DestinationApp: get(lv, "destination_app"), DestinationVersion: get(lv, "destination_version"),
		Protocol: get(lv, "request_protocol"), Reporter: get(lv, "reporter"),
	}
	se := s.edges[k]
	if se == nil {
		if len(s.edges) >= s.opts.MaxEdges {
			s.droppedEdges++
			k = overflowKey
			se = s.edges[k]
		}
		if se == nil {
			se = &series{key: k}
			s.edges[k] = se
		}
	}
	se.last = now
	sl, allocated, released := se.slotFor(idx, true)
	if released {
		s.liveChunks--
	}
	if allocated {
		s.liveChunks++
		if s.liveChunks > s.maxChunks {
			s.evictOldest(idx / slotsPerChunk)
		}
	}
	return sl
}

// evictOldest releases the oldest chunks of every series until history
// fits the budget again, never the chunk being written (current). Freeing
// every chunk of the oldest age at once amortizes the scan: with N busy
// series one scan frees about N chunks.
func (s *Store) evictOldest(current int64) {
	for s.liveChunks > s.maxChunks {
		oldest := int64(-1)
		for _, se := range s.edges {
			for _, c := range se.chunks {
				if c != nil && c.n < current && (oldest < 0 || c.n < oldest) {
					oldest = c.n
				}
			}
		}
		if oldest < 0 {
			return // only current chunks: the budget is below one chunk per series
		}
		for _, se := range s.edges {
			pos := oldest % ringChunks
			if c := se.chunks[pos]; c != nil && c.n == oldest {
				se.chunks[pos] = nil
				s.liveChunks--
				s.evictedChunks++
			}
		}
	}
}

// Sweep removes series idle longer than the retention and history older
// than it. The control plane calls it every few seconds.
func (s *Store) Sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cut := now.Add(-s.opts.Retention)
	for k, t := range s.totals {
		if t.last.Before(cut) {
			delete(s.totals, k)
			s.expiredSeries++
		}
	}
	oldestChunk := (slotIndex(now) - Slots) / slotsPerChunk
	for k, se := range s.edges {
		if se.last.Before(cut) {
			for _, c := range se.chunks {
				if c != nil {
					s.liveChunks--
				}
			}
			delete(s.edges, k)
			s.expiredSeries++
			continue
		}
		for i, c := range se.chunks {
			if c != nil && c.n < oldestChunk {
				se.chunks[i] = nil
				s.liveChunks--
			}
		}
	}
	for n, t := range s.lastReportTime {
		if t.Before(cut) {
			delete(s.lastReportTime, n)
		}
	}
	s.Traces.sweep(cut)
}

// Stats are the store's sizes and counters, for self-metrics and tests.
type Stats struct {
	Totals, Edges          int
	HistoryBytes           int64
	Reports                uint64
	DroppedTotals          uint64
	DroppedEdges           uint64
	EvictedChunks, Expired uint64
	Proxies                int
	Rejected               uint64 // reports refused as malformed
}

// Stats returns the current sizes and counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

// EdgeStat is one edge series summed over a window.
type EdgeStat struct {
	Key                           EdgeKey
	Requests, Errors, MTLS, Bytes uint64
	Duration                      [nDur]uint64 // per telemetry.DurationBuckets, plus +Inf
}

// Edges sums every edge series over the window ending at now. The current,
// partly filled slot is included; Seconds is the time the sums cover, so
// Requests/Seconds is a rate that reacts within one report to a change.
func (s *Store) Edges(window time.Duration, now time.Time) (stats []EdgeStat, seconds float64) {
	cur := slotIndex(now)
	n := int64(window / Resolution)
	n = min(max(n, 1), Slots-1)
	elapsed := now.Sub(time.Unix(0, cur*int64(Resolution)))
	seconds = (time.Duration(n)*Resolution + elapsed).Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, se := range s.edges {
		var a agg
		se.sum(cur-n, cur, &a)
		if a.requests == 0 && a.bytes == 0 {
			continue
		}
		stats = append(stats, EdgeStat{Key: k, Requests: a.requests, Errors: a.errors, MTLS: a.mtls, Bytes: a.bytes, Duration: a.dur})
	}
	return stats, seconds
}
