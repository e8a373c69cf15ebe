package store

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weft-mesh/weft/telemetry"
)

// Span is a stored span: the reported one plus the proxy that sent it.
type Span struct {
	telemetry.Span
	Node    string `json:"node,omitempty"`
	Service string `json:"service"` // see ServiceOf
}

// ServiceOf names the service a span belongs to: its
// istio.canonical_service attribute, else its workload attribute, else
// the workload part of the reporting proxy's node ID.
func ServiceOf(sp *telemetry.Span, node string) string {
	for _, k := range []string{"istio.canonical_service", "service.name", "istio.workload", "workload"} {
		if v := sp.Attributes[k]; v != "" {
			return v
		}
	}
	// Node IDs are TYPE~IP~NAME.NAMESPACE~DOMAIN.
	if parts := strings.Split(node, "~"); len(parts) == 4 {
		name, _, _ := strings.Cut(parts[2], ".")
		return name
	}
	if node != "" {
		return node
	}
	return "unknown"
}

// trace is one trace's spans, in arrival order.
type trace struct {
	id      string
	spans   []Span
	seen    time.Time // last span arrival, for expiry
	dropped int
}

// Traces keeps the most recent traces: at most max traces (oldest first
// out, by first arrival) of at most maxSpans spans each.
type Traces struct {
	max, maxSpans int

	mu           sync.Mutex
	byID         map[string]*trace
	order        []string // trace IDs by first arrival; may hold evicted IDs
	droppedSpans uint64
	sink         func([]Span)
}

func newTraces(max, maxSpans int) *Traces {
	return &Traces{max: max, maxSpans: maxSpans, byID: map[string]*trace{}}
}

// OnSpans registers f to receive every accepted span batch (the OTLP
// exporter). f must not block.
func (t *Traces) OnSpans(f func([]Span)) {
	t.mu.Lock()
	t.sink = f
	t.mu.Unlock()
}

// Add stores spans reported by node.
func (t *Traces) Add(node string, spans []telemetry.Span) {
	now := time.Now()
	accepted := make([]Span, 0, len(spans))
	t.mu.Lock()
	for i := range spans {
		sp := &spans[i]
		if len(sp.TraceID) != 32 || len(sp.SpanID) != 16 {
			t.droppedSpans++
			continue
		}
		s := Span{Span: *sp, Node: node, Service: ServiceOf(sp, node)}
		s.TraceID, s.SpanID, s.ParentSpanID = strings.ToLower(s.TraceID), strings.ToLower(s.SpanID), strings.ToLower(s.ParentSpanID)
		accepted = append(accepted, s)
		tr := t.byID[s.TraceID]
		if tr == nil {
			tr = &trace{id: s.TraceID}
			t.byID[s.TraceID] = tr
			t.order = append(t.order, s.TraceID)
			t.evict()
		}
		tr.seen = now
		if len(tr.spans) >= t.maxSpans {
			tr.dropped++
			t.droppedSpans++
			continue
		}
		tr.spans = append(tr.spans, s)
	}
	sink := t.sink
	t.mu.Unlock()
	if sink != nil && len(accepted) > 0 {
		sink(accepted)
	}
}

// evict drops the oldest traces beyond max. Caller holds mu.
func (t *Traces) evict() {
	for len(t.byID) > t.max && len(t.order) > 0 {
		delete(t.byID, t.order[0])
		t.order = t.order[1:]
	}
	// order only shrinks from the front, so its backing array is reused
	// by append; compact when stale IDs (swept traces) pile up.
	if len(t.order) > 2*t.max+64 {
		live := t.order[:0:0]
		for _, id := range t.order {
			if t.byID[id] != nil {
				live = append(live, id)
			}
		}
		t.order = live
	}
}

func (t *Traces) sweep(cut time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, tr := range t.byID {
		if tr.seen.Before(cut) {
			delete(t.byID, id)
		}
	}
	t.evict()
}

// TraceStats are the trace store's size and drops.
type TraceStats struct {
	Traces       int
	DroppedSpans uint64
}

// Stats returns the number of traces kept and spans dropped.
func (t *Traces) Stats() TraceStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TraceStats{Traces: len(t.byID), DroppedSpans: t.droppedSpans}
}

// TraceSummary describes one trace in a list.
type TraceSummary struct {
	TraceID    string    `json:"traceId"`
	RootName   string    `json:"rootName"`
	RootSvc    string    `json:"rootService"`
	Services   []string  `json:"services"`
	Spans      int       `json:"spans"`
	Start      time.Time `json:"start"`
	DurationMs float64   `json:"durationMs"`
	Error      bool      `json:"error"`
}

func summarize(tr *trace) TraceSummary {
	s := TraceSummary{TraceID: tr.id, Spans: len(tr.spans)}
	ids := make(map[string]bool, len(tr.spans))
	for i := range tr.spans {
		ids[tr.spans[i].SpanID] = true
	}
	var end time.Time
	svcs := map[string]bool{}
	var root *Span
	for i := range tr.spans {
		sp := &tr.spans[i]
		if s.Start.IsZero() || sp.Start.Before(s.Start) {
			s.Start = sp.Start
		}
		if sp.End.After(end) {
			end = sp.End
		}
		svcs[sp.Service] = true
		s.Error = s.Error || sp.Error
		// The root is the earliest span whose parent is not here: the
		// gateway's span, or the first hop we saw of a sampled trace.
		if (sp.ParentSpanID == "" || !ids[sp.ParentSpanID]) && (root == nil || sp.Start.Before(root.Start)) {
			root = sp
		}
	}
	if root != nil {
		s.RootName, s.RootSvc = root.Name, root.Service
	}
	for v := range svcs {
		s.Services = append(s.Services, v)
	}
	sort.Strings(s.Services)
	if !end.IsZero() {
		s.DurationMs = float64(end.Sub(s.Start)) / float64(time.Millisecond)
	}
	return s
}

// List returns summaries of the most recent traces (newest first) that
// involve service (any when empty), at most limit of them.
func (t *Traces) List(service string, limit int) []TraceSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []TraceSummary{}
	for i := len(t.order) - 1; i >= 0 && len(out) < limit; i-- {
		tr := t.byID[t.order[i]]
		if tr == nil {
			continue
		}
		s := summarize(tr)
		if service != "" && !matchService(s.Services, service) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// matchService accepts a service as spans name it ("reviews") or as a
// host ("reviews.default.svc.cluster.local").
func matchService(svcs []string, want string) bool {
	short, _, _ := strings.Cut(want, ".")
	for _, s := range svcs {
		if s == want || s == short {
			return true
		}
	}
	return false
}

// TraceDetail is one trace with its spans ordered by start time.
type TraceDetail struct {
	TraceSummary
	Spans        []Span `json:"spans"`
	DroppedSpans int    `json:"droppedSpans,omitempty"`
}

// Get returns the trace with id, or false.
func (t *Traces) Get(id string) (TraceDetail, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.byID[strings.ToLower(id)]
	if tr == nil {
		return TraceDetail{}, false
	}
	d := TraceDetail{TraceSummary: summarize(tr), Spans: append([]Span(nil), tr.spans...), DroppedSpans: tr.dropped}
	sort.SliceStable(d.Spans, func(i, j int) bool { return d.Spans[i].Start.Before(d.Spans[j].Start) })
	return d, true
}
