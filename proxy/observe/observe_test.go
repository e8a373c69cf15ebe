package observe

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weft-mesh/weft/proxy/accesslog"
	"github.com/weft-mesh/weft/proxy/stats"
	"github.com/weft-mesh/weft/proxy/trace"
	"github.com/weft-mesh/weft/telemetry"
	"github.com/weft-mesh/weft/xds/node"
)

const reviews = "outbound|9080|v2|reviews.default.svc.cluster.local"

// mesh is productpage's sidecar (outbound) -> reviews' sidecar (inbound)
// -> the reviews app, each proxy with its own Tap.
type mesh struct {
	out, in        *Tap
	outStats, inSt *stats.Registry
	outSpans, inSp *trace.Buffer
	base           string
	mu             sync.Mutex
	appSaw         []http.Header
}

func newMesh(t *testing.T, sampling float64) *mesh {
	m := &mesh{outStats: stats.NewRegistry(0), inSt: stats.NewRegistry(0), outSpans: trace.NewBuffer(0), inSp: trace.NewBuffer(0)}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.appSaw = append(m.appSaw, r.Header.Clone())
		m.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("reviews!"))
	}))
	t.Cleanup(app.Close)
	m.in = New(Options{Meta: &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "reviews-v2-abc", Namespace: "default",
		WorkloadName: "reviews-v2", Labels: map[string]string{"app": "reviews", "version": "v2"}},
		Stats: m.inSt, Sampling: sampling, Spans: m.inSp})
	inBase := serve(t, oneHop(t, corev3.TrafficDirection_INBOUND, "inbound|9080||", hostOf(app.URL), nil), m.in)
	m.out = New(Options{Meta: &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "productpage-v1-xyz", Namespace: "default",
		WorkloadName: "productpage-v1", Labels: map[string]string{"app": "productpage", "version": "v1"}},
		Stats: m.outStats, Sampling: sampling, Spans: m.outSpans})
	m.base = serve(t, oneHop(t, corev3.TrafficDirection_OUTBOUND, reviews, hostOf(inBase), map[string]any{
		"workload": "reviews-v2", "namespace": "default", "service_account": "bookinfo-reviews",
		"labels": map[string]any{"app": "reviews", "version": "v2"},
	}), m.out)
	return m
}

func (m *mesh) get(t *testing.T, hdr http.Header, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", m.base+"/reviews/1", strings.NewReader(body))
	req.Host = "reviews:9080"
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func labelsOf(t *testing.T, r *stats.Registry) []telemetry.RequestStat {
	t.Helper()
	return r.Delta().Requests
}

func TestLabelsBothSides(t *testing.T) {
	m := newMesh(t, 0)
	if resp := m.get(t, nil, "hello"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := m.appSaw[0].Get(stats.PeerHeader); got != "" {
		t.Errorf("the app saw %s: %q; the inbound side must strip it", stats.PeerHeader, got)
	}
	out := labelsOf(t, m.outStats)
	if len(out) != 1 {
		t.Fatalf("outbound series %+v", out)
	}
	want := map[string]string{
		"reporter": "source", "source_workload": "productpage-v1", "source_workload_namespace": "default",
		"source_app": "productpage", "source_version": "v1", "source_principal": "unknown",
		"destination_service": "reviews.default.svc.cluster.local", "destination_service_name": "reviews",
		"destination_service_namespace": "default", "destination_workload": "reviews-v2",
		"destination_workload_namespace": "default", "destination_app": "reviews", "destination_version": "v2",
		"destination_principal": "unknown", "request_protocol": "http", "response_code": "200", "response_flags": "-",
		"connection_security_policy": "unknown", "grpc_response_status": "",
	}
	for k, v := range want {
		if out[0].Labels[k] != v {
			t.Errorf("outbound %s = %q, want %q", k, out[0].Labels[k], v)
		}
	}
	if out[0].RequestBytesSum != 5 || out[0].ResponseBytesSum != 8 {
		t.Errorf("outbound bytes %d/%d, want 5/8", out[0].RequestBytesSum, out[0].ResponseBytesSum)
	}
	in := labelsOf(t, m.inSt)
	if len(in) != 1 {
		t.Fatalf("inbound series %+v", in)
	}
	want["reporter"], want["connection_security_policy"] = "destination", "none"
	for k, v := range want {
		if in[0].Labels[k] != v {
			t.Errorf("inbound %s = %q, want %q", k, in[0].Labels[k], v)
		}
	}
}

func TestInboundWithoutPeer(t *testing.T) {
	reg := stats.NewRegistry(0)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	tap := New(Options{Meta: &node.Meta{Type: node.Sidecar, Name: "r", Namespace: "default", WorkloadName: "ratings-v1",
		Labels: map[string]string{"app": "ratings"}}, Stats: reg})
	base := serve(t, oneHop(t, corev3.TrafficDirection_INBOUND, "inbound|9080||", hostOf(app.URL), nil), tap)
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Host = "ratings.default.svc.cluster.local:9080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := reg.Delta().Requests[0].Labels
	if got["source_workload"] != "unknown" || got["source_app"] != "unknown" ||
		got["destination_service"] != "ratings.default.svc.cluster.local" || got["destination_workload"] != "ratings-v1" {
		t.Errorf("labels %v", got)
	}
}

func TestNoClusterLabels(t *testing.T) {
	reg := stats.NewRegistry(0)
	tap := New(Options{Meta: &node.Meta{Type: node.Router, Name: "gw", Namespace: "istio-system", WorkloadName: "gw"}, Stats: reg})
	r := oneHop(t, corev3.TrafficDirection_OUTBOUND, reviews, "127.0.0.1:1", nil)
	delete(r.Clusters, reviews) // the route names a cluster that does not exist: NC
	delete(r.Endpoints, reviews)
	base := serve(t, r, tap)
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Host = "shop.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := reg.Delta().Requests[0].Labels
	// A gateway names no service from the Host header (Istio's gateways
	// disable that fallback): the destination is unknown.
	if got["response_flags"] != "NC" || got["response_code"] != "503" || got["destination_service"] != "unknown" ||
		got["destination_service_name"] != "unknown" || got["destination_service_namespace"] != "unknown" ||
		got["destination_workload"] != "unknown" || got["reporter"] != "source" {
		t.Errorf("labels %v", got)
	}
}

func TestTracePropagation(t *testing.T) {
	m := newMesh(t, 0)
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	m.get(t, http.Header{"Traceparent": {"00-" + tid + "-" + sid + "-01"}, "X-Request-Id": {"req-1"}}, "")
	outSpans, inSpans := m.outSpans.Drain(), m.inSp.Drain()
	if len(outSpans) != 1 || len(inSpans) != 1 {
		t.Fatalf("spans: %d outbound, %d inbound", len(outSpans), len(inSpans))
	}
	o, i := outSpans[0], inSpans[0]
	if o.TraceID != tid || i.TraceID != tid || o.ParentSpanID != sid || i.ParentSpanID != o.SpanID || o.SpanID == sid {
		t.Errorf("trace ids: out %s/%s<-%s in %s/%s<-%s", o.TraceID, o.SpanID, o.ParentSpanID, i.TraceID, i.SpanID, i.ParentSpanID)
	}
	if o.Kind != "CLIENT" || i.Kind != "SERVER" || o.Name != "reviews:9080/*" {
		t.Errorf("kinds %s %s, name %q", o.Kind, i.Kind, o.Name)
	}
	for k, v := range map[string]string{"http.method": "POST", "http.url": "/reviews/1", "http.status_code": "200",
		"upstream_cluster": reviews, "istio.canonical_service": "productpage", "response_flags": "-", "component": "proxy",
		"peer.address": "127.0.0.1", "guid:x-request-id": "req-1"} {
		if o.Attributes[k] != v {
			t.Errorf("span attribute %s = %q, want %q", k, o.Attributes[k], v)
		}
	}
	if o.Attributes["node_id"] == "" {
		t.Error("no node_id")
	}
	saw := m.appSaw[0]
	if !strings.HasPrefix(saw.Get("traceparent"), "00-"+tid+"-"+i.SpanID+"-01") || saw.Get("x-b3-traceid") != tid ||
		saw.Get("x-b3-spanid") != i.SpanID || saw.Get("x-b3-parentspanid") != o.SpanID || saw.Get("x-b3-sampled") != "1" ||
		saw.Get("x-request-id") != "req-1" {
		t.Errorf("app saw trace headers %v", saw)
	}

	// Not sampled by the caller: propagated, no span.
	m.get(t, http.Header{"Traceparent": {"00-" + tid + "-" + sid + "-00"}}, "")
	if n := len(m.outSpans.Drain()) + len(m.inSp.Drain()); n != 0 {
		t.Errorf("%d spans for an unsampled trace", n)
	}
	if got := m.appSaw[1].Get("x-b3-sampled"); got != "0" {
		t.Errorf("x-b3-sampled %q, want 0", got)
	}
	// No trace, 0% sampling: nothing.
	m.get(t, nil, "")
	if n := len(m.outSpans.Drain()) + len(m.inSp.Drain()); n != 0 || m.appSaw[2].Get("traceparent") != "" {
		t.Errorf("untraced request: %d spans, traceparent %q", n, m.appSaw[2].Get("traceparent"))
	}
}

func TestSampleAll(t *testing.T) {
	m := newMesh(t, 100)
	m.get(t, nil, "")
	o, i := m.outSpans.Drain(), m.inSp.Drain()
	if len(o) != 1 || len(i) != 1 || o[0].TraceID != i[0].TraceID || o[0].ParentSpanID != "" {
		t.Fatalf("spans out %+v in %+v", o, i)
	}
}

func TestAccessLogLine(t *testing.T) {
	var buf syncWriter
	lg := accesslog.New(accesslog.JSON, &buf, 0)
	reg := stats.NewRegistry(0)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer app.Close()
	tap := New(Options{Meta: &node.Meta{Type: node.Router, Name: "gw", Namespace: "istio-system"}, Stats: reg, AccessLog: lg})
	base := serve(t, oneHop(t, corev3.TrafficDirection_OUTBOUND, reviews, hostOf(app.URL), nil), tap)
	req, _ := http.NewRequest("GET", base+"/p?q=1", nil)
	req.Header.Set("User-Agent", "ua/1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	lg.Close()
	var e map[string]any
	if err := json.Unmarshal(buf.Bytes(), &e); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	if e["path"] != "/p?q=1" || e["response_code"] != 200.0 || e["bytes_sent"] != 2.0 || e["user_agent"] != "ua/1" ||
		e["upstream_cluster"] != reviews || e["upstream_host"] != hostOf(app.URL) || e["request_id"] == nil {
		t.Errorf("entry %v", e)
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncWriter) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
