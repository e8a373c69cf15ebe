// Package telemetry is the contract between proxies and the control plane
// for metrics and traces: Istio's standard metric and label names, the
// histogram buckets, and the report a proxy sends (POST /api/v1/telemetry)
// every second with what happened since its previous report.
package telemetry

import "time"

// Istio's standard metric names.
const (
	RequestsTotal        = "istio_requests_total"
	RequestDuration      = "istio_request_duration_milliseconds"
	RequestBytes         = "istio_request_bytes"
	ResponseBytes        = "istio_response_bytes"
	TCPSentBytes         = "istio_tcp_sent_bytes_total"
	TCPReceivedBytes     = "istio_tcp_received_bytes_total"
	TCPConnectionsOpened = "istio_tcp_connections_opened_total"
	TCPConnectionsClosed = "istio_tcp_connections_closed_total"
)

// Labels are Istio's standard metric labels, in the order they are exposed.
var Labels = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_app", "source_version", "source_principal",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"destination_workload", "destination_workload_namespace", "destination_app", "destination_version", "destination_principal",
	"request_protocol", "response_code", "response_flags", "connection_security_policy", "grpc_response_status",
}

// DurationBuckets are Istio's default upper bounds (ms) for
// istio_request_duration_milliseconds.
var DurationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// SizeBuckets are Istio's default upper bounds (bytes) for request and
// response sizes: 1, 10, 100, ... 1e8.
var SizeBuckets = []float64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// Report is what a proxy sends: deltas since its previous report.
type Report struct {
	Node     string        `json:"node"` // xDS node ID
	Time     time.Time     `json:"time"`
	Requests []RequestStat `json:"requests,omitempty"`
	TCP      []TCPStat     `json:"tcp,omitempty"`
	Spans    []Span        `json:"spans,omitempty"`
}

// RequestStat aggregates HTTP/gRPC requests with one label set.
type RequestStat struct {
	Labels map[string]string `json:"labels"` // keys from Labels
	Count  uint64            `json:"count"`
	// DurationBuckets[i] counts requests with duration <= DurationBuckets[i]
	// (not cumulative); the last element counts the rest (+Inf).
	DurationBuckets  []uint64 `json:"durationBuckets"`
	DurationSumMs    float64  `json:"durationSumMs"`
	RequestBytes     []uint64 `json:"requestBytes"` // per SizeBuckets, plus +Inf
	RequestBytesSum  uint64   `json:"requestBytesSum"`
	ResponseBytes    []uint64 `json:"responseBytes"`
	ResponseBytesSum uint64   `json:"responseBytesSum"`
}

// TCPStat aggregates TCP connections with one label set.
type TCPStat struct {
	Labels        map[string]string `json:"labels"`
	Opened        uint64            `json:"opened"`
	Closed        uint64            `json:"closed"`
	SentBytes     uint64            `json:"sentBytes"`
	ReceivedBytes uint64            `json:"receivedBytes"`
}

// Span is one finished span, in OpenTelemetry's terms.
type Span struct {
	TraceID      string            `json:"traceId"` // 32 hex digits
	SpanID       string            `json:"spanId"`  // 16 hex digits
	ParentSpanID string            `json:"parentSpanId,omitempty"`
	Name         string            `json:"name"`
	Kind         string            `json:"kind"` // SERVER or CLIENT
	Start        time.Time         `json:"start"`
	End          time.Time         `json:"end"`
	Attributes   map[string]string `json:"attributes,omitempty"`
	Error        bool              `json:"error,omitempty"`
}
