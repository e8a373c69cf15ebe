package e2e

import (
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// otlpSpan is a span as an OTLP receiver got it, flattened.
type otlpSpan struct {
	TraceID, SpanID, Parent string
	Name                    string
	Kind                    tracepb.Span_SpanKind
	Service                 string // resource attribute service.name
	Start, End              time.Time
	Attrs                   map[string]string
}

func (s otlpSpan) String() string {
	return fmt.Sprintf("%s/%s<-%s %s %q %s", s.TraceID[:8], s.SpanID, s.Parent, s.Service, s.Name, s.Kind)
}

// otlpReceiver is an OTLP/HTTP trace receiver (POST /v1/traces, protobuf
// or JSON, optionally gzipped), as a collector or Jaeger runs it.
type otlpReceiver struct {
	addr   string
	mu     sync.Mutex
	spans  []otlpSpan
	errors []string
	posts  int
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: l.Addr().String()}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *otlpReceiver) fail(w http.ResponseWriter, code int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.errors = append(r.errors, msg)
	r.mu.Unlock()
	http.Error(w, msg, code)
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		r.fail(w, http.StatusNotFound, "%s %s: want POST /v1/traces", req.Method, req.URL.Path)
		return
	}
	var body io.Reader = io.LimitReader(req.Body, 64<<20)
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(body)
		if err != nil {
			r.fail(w, http.StatusBadRequest, "gzip: %v", err)
			return
		}
		body = gz
	}
	b, err := io.ReadAll(body)
	if err != nil {
		r.fail(w, http.StatusBadRequest, "read: %v", err)
		return
	}
	var in collectortrace.ExportTraceServiceRequest
	ct := req.Header.Get("Content-Type")
	json := strings.HasPrefix(ct, "application/json")
	switch {
	case strings.HasPrefix(ct, "application/x-protobuf"):
		err = proto.Unmarshal(b, &in)
	case json:
		err = protojson.Unmarshal(b, &in)
	default:
		r.fail(w, http.StatusUnsupportedMediaType, "Content-Type %q", ct)
		return
	}
	if err != nil {
		r.fail(w, http.StatusBadRequest, "decode ExportTraceServiceRequest (%s): %v", ct, err)
		return
	}
	var got []otlpSpan
	for _, rs := range in.GetResourceSpans() {
		service := attrString(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, kv := range s.GetAttributes() {
					attrs[kv.GetKey()] = anyString(kv.GetValue())
				}
				got = append(got, otlpSpan{
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					Parent: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Kind: s.GetKind(),
					Service: service, Attrs: attrs,
					Start: time.Unix(0, int64(s.GetStartTimeUnixNano())), End: time.Unix(0, int64(s.GetEndTimeUnixNano())),
				})
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.posts++
	r.mu.Unlock()
	resp := &collectortrace.ExportTraceServiceResponse{}
	if json {
		out, _ := protojson.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
		return
	}
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func attrString(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return anyString(kv.GetValue())
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	}
	return ""
}

// trace returns the spans received for traceID.
func (r *otlpReceiver) trace(traceID string) []otlpSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []otlpSpan
	for _, s := range r.spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

func (r *otlpReceiver) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := map[string]int{}
	for _, s := range r.spans {
		ids[s.TraceID]++
	}
	return fmt.Sprintf("%d posts, %d spans in %d traces, errors %v", r.posts, len(r.spans), len(ids), r.errors)
}

// service names the Bookinfo service a span belongs to, from the
// resource's service.name ("reviews.default", "reviews-v2", ...).
func bookinfoService(s otlpSpan) string {
	name := s.Service
	for _, svc := range []string{"productpage", "reviews", "ratings", "details", "istio-ingressgateway"} {
		if strings.HasPrefix(name, svc) {
			return svc
		}
	}
	return ""
}

// checkTrace checks one trace: the spans of productpage, reviews and
// ratings are there; every parent is a span of the same trace, except the
// root's, which is root (the caller's span, "" for none); exactly one span
// hangs off root; children nest in their parents' time; and ratings'
// ancestors run through reviews, then productpage.
func checkTrace(spans []otlpSpan, root string) error {
	byID := map[string]otlpSpan{}
	for _, s := range spans {
		if _, dup := byID[s.SpanID]; dup {
			return fmt.Errorf("span id %s twice", s.SpanID)
		}
		byID[s.SpanID] = s
	}
	roots := 0
	seen := map[string]bool{}
	const slack = 5 * time.Millisecond
	for _, s := range spans {
		seen[bookinfoService(s)] = true
		if s.End.Before(s.Start) {
			return fmt.Errorf("span %v ends before it starts", s)
		}
		if s.Parent == root {
			roots++
			continue
		}
		p, ok := byID[s.Parent]
		if !ok {
			return fmt.Errorf("span %v: parent %s is not in the trace", s, s.Parent)
		}
		if s.Start.Before(p.Start.Add(-slack)) || s.End.After(p.End.Add(slack)) {
			return fmt.Errorf("span %v [%v, %v] is not within its parent %v [%v, %v]", s,
				s.Start.Format("15:04:05.000000"), s.End.Format("15:04:05.000000"), p, p.Start.Format("15:04:05.000000"), p.End.Format("15:04:05.000000"))
		}
	}
	if roots != 1 {
		return fmt.Errorf("%d spans with parent %q, want 1", roots, root)
	}
	for _, svc := range []string{"productpage", "reviews", "ratings"} {
		if !seen[svc] {
			return fmt.Errorf("no span of %s", svc)
		}
	}
	for _, s := range spans {
		if bookinfoService(s) != "ratings" {
			continue
		}
		var path []string
		for cur, n := s, 0; n < 50; n++ {
			if svc := bookinfoService(cur); len(path) == 0 || path[len(path)-1] != svc {
				path = append(path, svc)
			}
			p, ok := byID[cur.Parent]
			if !ok {
				break
			}
			cur = p
		}
		hops := strings.Join(path, " <- ")
		if !strings.Contains(hops, "ratings <- reviews <- productpage") {
			return fmt.Errorf("ratings span %v: ancestry %s, want ratings <- reviews <- productpage", s, hops)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

const reviewsAllV2 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
`

// TestOTLPTraces exports Bookinfo's traces to a real OTLP/HTTP receiver
// and checks that one request is one trace across productpage, reviews
// and ratings, with consistent parent/child links.
func TestOTLPTraces(t *testing.T) {
	recv := startOTLPReceiver(t)
	m, _ := upMeshWith(t, "bookinfo", "--otlp-endpoint", "http://"+recv.addr)
	// reviews v2 calls ratings on every page.
	m.apply("default", reviewsAllV2)
	eventually(t, 60*time.Second, "productpage served by reviews v2", func() error {
		code, body, err := get(m.gateway, "", "/productpage", nil)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		if mm := servedBy.FindStringSubmatch(body); mm == nil || mm[1] != "v2" {
			return fmt.Errorf("not v2 yet")
		}
		return nil
	})

	// Requests that carry a sampled W3C trace context, as a traced client
	// sends them: their trace ids are known.
	type req struct{ trace, parent string }
	var reqs []req
	for i := 0; i < 3; i++ {
		r := req{randomHex(16), randomHex(8)}
		code, body, err := get(m.gateway, "", "/productpage", map[string]string{"traceparent": "00-" + r.trace + "-" + r.parent + "-01"})
		if err != nil || code != 200 || !strings.Contains(body, "Reviews served by: reviews-v2") {
			t.Fatalf("productpage: %d %v\n%.300s", code, err, body)
		}
		reqs = append(reqs, r)
	}
	for _, r := range reqs {
		var spans []otlpSpan
		eventually(t, 30*time.Second, "the spans of trace "+r.trace, func() error {
			spans = recv.trace(r.trace)
			if err := checkTrace(spans, r.parent); err != nil {
				return fmt.Errorf("%v (%s)", err, recv.summary())
			}
			return nil
		})
		sort.Slice(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
		var lines []string
		for _, s := range spans {
			lines = append(lines, s.String())
		}
		t.Logf("trace %s: %d spans:\n  %s", r.trace, len(spans), strings.Join(lines, "\n  "))
	}

	// A request without trace context: the gateway starts the trace (weft
	// up --demo samples every request). Its x-request-id, which the
	// gateway keeps and tags its span with (guid:x-request-id), finds it
	// among the traces of other requests.
	rid := randomHex(16)
	if code, _, err := get(m.gateway, "", "/productpage", map[string]string{"x-request-id": rid}); err != nil || code != 200 {
		t.Fatalf("productpage: %d %v", code, err)
	}
	eventually(t, 30*time.Second, "the trace the gateway started", func() error {
		id := recv.traceOfRequest(rid)
		if id == "" {
			return fmt.Errorf("no span tagged guid:x-request-id=%s yet (%s)", rid, recv.summary())
		}
		if err := checkTrace(recv.trace(id), ""); err != nil {
			return fmt.Errorf("trace %s: %v (%s)", id, err, recv.summary())
		}
		t.Logf("trace %s started by the mesh: %d spans", id, len(recv.trace(id)))
		return nil
	})
}

// traceOfRequest returns the trace whose spans carry x-request-id rid, or "".
func (r *otlpReceiver) traceOfRequest(rid string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.Attrs["guid:x-request-id"] == rid {
			return s.TraceID
		}
	}
	return ""
}
