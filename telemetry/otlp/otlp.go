// Package otlp exports the spans proxies report to an OpenTelemetry
// collector (or Jaeger, Tempo, ...) over OTLP/HTTP with protobuf bodies,
// using the official generated types.
package otlp

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/telemetry/store"
)

// Defaults for Options.
const (
	DefaultQueue    = 8192 // spans waiting to be sent; beyond it new spans are dropped
	DefaultBatch    = 512
	DefaultInterval = time.Second
	DefaultTimeout  = 10 * time.Second
)

// Options configure an Exporter.
type Options struct {
	// Endpoint is the collector's base URL, e.g. http://127.0.0.1:4318;
	// spans go to Endpoint/v1/traces (kept as is if it already ends so).
	Endpoint string
	Queue    int
	Batch    int
	Interval time.Duration
	Timeout  time.Duration // per POST
	Client   *http.Client
	Log      *slog.Logger
}

// Exporter batches spans and POSTs them. Enqueueing never blocks the
// caller (the telemetry intake): when the collector is slow or down, spans
// beyond the queue are dropped and counted.
type Exporter struct {
	url   string
	opts  Options
	queue chan store.Span
	wake  chan struct{}
	done  chan struct{}

	sent, dropped, failed, batches atomic.Uint64
}

// New validates the endpoint and returns an Exporter; Run sends.
func New(o Options) (*Exporter, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("otlp endpoint %q: want http(s)://HOST:PORT (OTLP/HTTP, usually port 4318)", o.Endpoint)
	}
	target := strings.TrimSuffix(u.String(), "/")
	if !strings.HasSuffix(target, "/v1/traces") {
		target += "/v1/traces"
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Exporter{url: target, opts: o, queue: make(chan store.Span, o.Queue), wake: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// URL is where spans are POSTed.
func (e *Exporter) URL() string { return e.url }

// Enqueue adds spans to the queue without blocking.
func (e *Exporter) Enqueue(spans []store.Span) {
	for _, sp := range spans {
		select {
		case e.queue <- sp:
		default:
			e.dropped.Add(1)
		}
	}
	if len(e.queue) >= e.opts.Batch {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

// Run sends batches until ctx is done, then flushes what is queued (for at
// most one timeout) and returns.
func (e *Exporter) Run(ctx context.Context) {
	defer close(e.done)
	tick := time.NewTicker(e.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), e.opts.Timeout)
			for e.flush(fctx) > 0 && fctx.Err() == nil {
			}
			cancel()
			return
		case <-tick.C:
		case <-e.wake:
		}
		for e.flush(ctx) >= e.opts.Batch {
		}
	}
}

// Done is closed when Run has returned.
func (e *Exporter) Done() <-chan struct{} { return e.done }

// flush sends up to one batch and returns how many spans it took.
func (e *Exporter) flush(ctx context.Context) int {
	var batch []store.Span
	for len(batch) < e.opts.Batch {
		select {
		case sp := <-e.queue:
			batch = append(batch, sp)
			continue
		default:
		}
		break
	}
	if len(batch) == 0 {
		return 0
	}
	req := Request(batch)
	body, err := proto.Marshal(req)
	if err != nil {
		e.failed.Add(uint64(len(batch)))
		e.opts.Log.Error("otlp: encode spans", "err", err)
		return len(batch)
	}
	// A few quick retries ride out a collector restart; longer outages
	// drop batches rather than grow memory.
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err = e.post(ctx, body)
		if err == nil {
			e.sent.Add(uint64(len(batch)))
			e.batches.Add(1)
			return len(batch)
		}
		if attempt == 3 || ctx.Err() != nil || !retryable(err) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	e.failed.Add(uint64(len(batch)))
	e.opts.Log.Warn("otlp: export failed; spans dropped", "url", e.url, "spans", len(batch), "err", err)
	return len(batch)
}

type statusError struct {
	code int
	body string
}

func (s statusError) Error() string { return fmt.Sprintf("collector answered %d: %s", s.code, s.body) }

func retryable(err error) bool {
	if se, ok := err.(statusError); ok {
		return se.code == http.StatusTooManyRequests || se.code >= 500
	}
	return true // network errors
}

func (e *Exporter) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("otlp request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := e.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("otlp post: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return statusError{resp.StatusCode, strings.TrimSpace(string(msg))}
	}
	return nil
}

// WriteMetrics appends the exporter's counters in Prometheus text format.
func (e *Exporter) WriteMetrics(w io.Writer) {
	for _, m := range []struct {
		name, help string
		v          uint64
	}{
		{"weft_otlp_spans_sent_total", "Spans accepted by the OTLP collector.", e.sent.Load()},
		{"weft_otlp_spans_dropped_total", "Spans dropped because the export queue was full.", e.dropped.Load()},
		{"weft_otlp_spans_failed_total", "Spans dropped after failed exports.", e.failed.Load()},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v)
	}
}

// Request converts spans into one ExportTraceServiceRequest, one
// ResourceSpans per service (resource attribute service.name). Spans whose
// IDs are not hex of the right length are left out.
func Request(spans []store.Span) *coltrace.ExportTraceServiceRequest {
	byService := map[string]*trace.ResourceSpans{}
	var order []string
	for i := range spans {
		sp := &spans[i]
		tid, err1 := hex.DecodeString(sp.TraceID)
		sid, err2 := hex.DecodeString(sp.SpanID)
		if err1 != nil || err2 != nil || len(tid) != 16 || len(sid) != 8 {
			continue
		}
		var pid []byte
		if sp.ParentSpanID != "" {
			if p, err := hex.DecodeString(sp.ParentSpanID); err == nil && len(p) == 8 {
				pid = p
			}
		}
		svc := sp.Service
		if svc == "" {
			svc = store.ServiceOf(&sp.Span, sp.Node)
		}
		rs := byService[svc]
		if rs == nil {
			rs = &trace.ResourceSpans{
				Resource: &resource.Resource{Attributes: []*common.KeyValue{str("service.name", svc)}},
				ScopeSpans: []*trace.ScopeSpans{{
					Scope: &common.InstrumentationScope{Name: "github.com/weft-mesh/weft"},
				}},
			}
			byService[svc] = rs
			order = append(order, svc)
		}
		out := &trace.Span{
			TraceId: tid, SpanId: sid, ParentSpanId: pid, Name: sp.Name, Kind: kind(sp.Kind),
			StartTimeUnixNano: uint64(sp.Start.UnixNano()), EndTimeUnixNano: uint64(sp.End.UnixNano()),
		}
		for _, k := range slices.Sorted(maps.Keys(sp.Attributes)) {
			out.Attributes = append(out.Attributes, str(k, sp.Attributes[k]))
		}
		if sp.Node != "" {
			out.Attributes = append(out.Attributes, str("weft.node_id", sp.Node))
		}
		if sp.Error {
			out.Status = &trace.Status{Code: trace.Status_STATUS_CODE_ERROR}
		}
		rs.ScopeSpans[0].Spans = append(rs.ScopeSpans[0].Spans, out)
	}
	req := &coltrace.ExportTraceServiceRequest{}
	for _, svc := range order {
		req.ResourceSpans = append(req.ResourceSpans, byService[svc])
	}
	return req
}

func kind(k string) trace.Span_SpanKind {
	switch strings.ToUpper(k) {
	case "SERVER":
		return trace.Span_SPAN_KIND_SERVER
	case "CLIENT":
		return trace.Span_SPAN_KIND_CLIENT
	case "PRODUCER":
		return trace.Span_SPAN_KIND_PRODUCER
	case "CONSUMER":
		return trace.Span_SPAN_KIND_CONSUMER
	case "INTERNAL":
		return trace.Span_SPAN_KIND_INTERNAL
	}
	return trace.Span_SPAN_KIND_UNSPECIFIED
}

func str(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}
