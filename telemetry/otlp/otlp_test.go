package otlp

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/telemetry"
	"github.com/weft-mesh/weft/telemetry/store"
)

// receiver is an OTLP/HTTP collector stand-in that decodes with the
// official types.
type receiver struct {
	mu       sync.Mutex
	requests []*coltrace.ExportTraceServiceRequest
	fail     int // answer 503 this many times first
	errs     []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-protobuf" {
		r.errs = append(r.errs, req.Method+" "+req.URL.Path+" "+req.Header.Get("Content-Type"))
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if r.fail > 0 {
		r.fail--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(req.Body)
	var m coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &m); err != nil {
		r.errs = append(r.errs, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.requests = append(r.requests, &m)
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (r *receiver) spans() map[string][]*trace.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]*trace.Span{}
	for _, req := range r.requests {
		for _, rs := range req.ResourceSpans {
			svc := ""
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					svc = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				out[svc] = append(out[svc], ss.Spans...)
			}
		}
	}
	return out
}

func TestExportDecodedByOfficialTypes(t *testing.T) {
	rcv := &receiver{fail: 1} // the first POST is retried
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	exp, err := New(Options{Endpoint: srv.URL, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if exp.URL() != srv.URL+"/v1/traces" {
		t.Fatalf("url = %s", exp.URL())
	}
	st := store.New(store.Options{})
	st.Traces.OnSpans(exp.Enqueue)
	ctx, cancel := context.WithCancel(context.Background())
	go exp.Run(ctx)

	start := time.Unix(1_800_000_000, 0)
	tid := "4bf92f3577b34da6a3ce929d0e0e4736"
	st.Merge(&telemetry.Report{Node: "router~127.0.0.1~gw.istio-system~istio-system.svc.cluster.local", Spans: []telemetry.Span{
		{TraceID: tid, SpanID: "00f067aa0ba902b7", Name: "GET /productpage", Kind: "SERVER", Start: start, End: start.Add(5 * time.Millisecond),
			Attributes: map[string]string{"istio.canonical_service": "istio-ingressgateway", "http.status_code": "200"}},
		{TraceID: tid, SpanID: "00f067aa0ba902b8", ParentSpanID: "00f067aa0ba902b7", Name: "reviews", Kind: "CLIENT",
			Start: start.Add(time.Millisecond), End: start.Add(4 * time.Millisecond), Error: true,
			Attributes: map[string]string{"istio.canonical_service": "productpage"}},
		{TraceID: tid, SpanID: "00f067aa0ba902b9", Name: "no attributes", Kind: "SERVER", Start: start, End: start},
	}}, time.Now())
	cancel()
	select {
	case <-exp.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("exporter did not flush and stop")
	}
	if len(rcv.errs) > 0 {
		t.Fatalf("receiver errors: %v", rcv.errs)
	}
	got := rcv.spans()
	gw, pp, node := got["istio-ingressgateway"], got["productpage"], got["gw"]
	if len(gw) != 1 || len(pp) != 1 || len(node) != 1 {
		t.Fatalf("spans by service.name: %v", got)
	}
	s := gw[0]
	if hex.EncodeToString(s.TraceId) != tid || hex.EncodeToString(s.SpanId) != "00f067aa0ba902b7" || s.Kind != trace.Span_SPAN_KIND_SERVER ||
		s.StartTimeUnixNano != uint64(start.UnixNano()) || s.EndTimeUnixNano-s.StartTimeUnixNano != uint64(5*time.Millisecond) {
		t.Fatalf("gateway span = %v", s)
	}
	c := pp[0]
	if hex.EncodeToString(c.ParentSpanId) != "00f067aa0ba902b7" || c.Kind != trace.Span_SPAN_KIND_CLIENT || c.GetStatus().GetCode() != trace.Status_STATUS_CODE_ERROR {
		t.Fatalf("client span = %v", c)
	}
	var buf strings.Builder
	exp.WriteMetrics(&buf)
	if want := "weft_otlp_spans_sent_total 3"; !strings.Contains(buf.String(), want) {
		t.Fatalf("metrics lack %q:\n%s", want, buf.String())
	}
}

func TestQueueDropsInsteadOfBlocking(t *testing.T) {
	exp, err := New(Options{Endpoint: "http://127.0.0.1:1", Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	exp.Enqueue(make([]store.Span, 5))
	if exp.dropped.Load() != 3 {
		t.Fatalf("dropped = %d, want 3", exp.dropped.Load())
	}
	if _, err := New(Options{Endpoint: "127.0.0.1:4318"}); err == nil {
		t.Fatal("an endpoint without a scheme must be refused")
	}
}
