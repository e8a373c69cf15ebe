// Package accesslog writes the proxy's access log: one line per request or
// TCP connection, in Istio's default text format (Envoy's format string
// with Istio's fields) or as JSON with Istio's field names. Lines are
// formatted on the request's goroutine into pooled buffers and written by
// a single goroutine through a bounded queue: a slow or blocked output
// drops lines (counted), it never blocks a request.
package accesslog

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Format is an access log format.
type Format string

// Formats.
const (
	Off  Format = "off"
	Text Format = "text"
	JSON Format = "json"
)

// ParseFormat accepts "off" (or ""), "text" and "json".
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", Off:
		return Off, nil
	case Text, JSON:
		return Format(s), nil
	}
	return Off, fmt.Errorf("access log format %q: want off, text or json", s)
}

// Entry is one request or connection. Empty strings and negative numbers
// print as "-" (text) or null (JSON).
type Entry struct {
	Start    time.Time
	Method   string // "" for TCP
	Path     string
	Protocol string // "HTTP/1.1", "HTTP/2", "-" for TCP
	Code     int    // 0 for TCP
	Flags    string
	// BytesReceived from and BytesSent to the downstream.
	BytesReceived int64
	BytesSent     int64
	Duration      time.Duration
	// UpstreamServiceTime is -1 when unknown.
	UpstreamServiceTime time.Duration
	ForwardedFor        string
	UserAgent           string
	RequestID           string
	Authority           string
	UpstreamHost        string
	UpstreamCluster     string
	DownstreamLocal     string
	DownstreamRemote    string
	Route               string
	TraceID             string
	// Audit is true when an AUDIT AuthorizationPolicy matched; RBACPolicy
	// names the DENY policy that refused the request. JSON only: the text
	// format stays Envoy's default.
	Audit      bool
	RBACPolicy string
}

// DefaultQueue is the number of lines buffered before lines are dropped.
const DefaultQueue = 4096

// Logger writes entries asynchronously.
type Logger struct {
	format Format
	out    io.Writer
	queue  chan *[]byte
	done   chan struct{}
	drops  atomic.Uint64
	once   sync.Once
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// New starts a Logger writing format lines to out (queue lines buffered,
// DefaultQueue when <= 0). It returns nil for Off; a nil Logger discards.
// Close flushes it.
func New(format Format, out io.Writer, queue int) *Logger {
	if format == Off || format == "" || out == nil {
		return nil
	}
	if queue <= 0 {
		queue = DefaultQueue
	}
	l := &Logger{format: format, out: out, queue: make(chan *[]byte, queue), done: make(chan struct{})}
	go l.run()
	return l
}

// Log formats e and queues the line; when the queue is full the line is
// dropped. It never blocks. Safe on a nil Logger.
func (l *Logger) Log(e *Entry) {
	if l == nil {
		return
	}
	bp := bufs.Get().(*[]byte)
	if l.format == JSON {
		*bp = AppendJSON((*bp)[:0], e)
	} else {
		*bp = AppendText((*bp)[:0], e)
	}
	select {
	case l.queue <- bp:
	default:
		l.drops.Add(1)
		bufs.Put(bp)
	}
}

// Dropped returns the lines dropped because the queue was full.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.drops.Load()
}

// Close writes the queued lines and stops the writer. Log must not be
// called after Close.
func (l *Logger) Close() {
	if l == nil {
		return
	}
	l.once.Do(func() { close(l.queue) })
	<-l.done
}

func (l *Logger) run() {
	defer close(l.done)
	w := bufio.NewWriterSize(l.out, 64<<10)
	for bp := range l.queue {
		_, _ = w.Write(*bp)
		bufs.Put(bp)
		// Flush once the queue is momentarily empty: batched under load,
		// immediate when idle.
		if len(l.queue) == 0 {
			_ = w.Flush()
		}
	}
	_ = w.Flush()
}

// StartTimeLayout is Envoy's %START_TIME% default layout, in UTC.
const StartTimeLayout = "2006-01-02T15:04:05.000Z"

// AppendText appends e in Istio's default text format:
//
//	[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS%
//	%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED%
//	%BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//	"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS%
//	%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%
//
// on one line, ending in a newline. Details weft does not track print "-".
func AppendText(b []byte, e *Entry) []byte {
	b = append(b, '[')
	b = e.Start.UTC().AppendFormat(b, StartTimeLayout)
	b = append(b, "] \""...)
	b = dash(b, e.Method)
	b = append(b, ' ')
	b = dash(b, RedactPath(e.Path))
	b = append(b, ' ')
	b = dash(b, e.Protocol)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = append(b, ' ')
	b = dash(b, e.Flags)
	b = append(b, ` - - "-" `...)
	b = strconv.AppendInt(b, max(e.BytesReceived, 0), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, max(e.BytesSent, 0), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Duration.Milliseconds(), 10)
	b = append(b, ' ')
	if e.UpstreamServiceTime >= 0 && e.UpstreamHost != "" {
		b = strconv.AppendInt(b, e.UpstreamServiceTime.Milliseconds(), 10)
	} else {
		b = append(b, '-')
	}
	for _, s := range [...]string{e.ForwardedFor, e.UserAgent, e.RequestID, e.Authority, e.UpstreamHost} {
		b = append(b, " \""...)
		b = dash(b, s)
		b = append(b, '"')
	}
	for _, s := range [...]string{e.UpstreamCluster, "", e.DownstreamLocal, e.DownstreamRemote, "", e.Route} {
		b = append(b, ' ')
		b = dash(b, s)
	}
	return append(b, '\n')
}

// TokenParam is the query parameter a JWT may travel in (jwt_authn's
// default from_params, Istio's too); its value is a credential.
const TokenParam = "access_token"

// RedactPath returns path with the value of every access_token query
// parameter replaced by "[redacted]", so bearer tokens sent in the URL do
// not end up in logs or spans. A path without one is returned as is,
// without allocating. A RequestAuthentication naming other fromParams is
// not covered.
func RedactPath(path string) string {
	q := strings.IndexByte(path, '?')
	if q < 0 || !strings.Contains(path[q:], TokenParam+"=") {
		return path
	}
	var b strings.Builder
	b.WriteString(path[:q+1])
	for i, param := range strings.Split(path[q+1:], "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		if name, _, ok := strings.Cut(param, "="); ok && name == TokenParam {
			b.WriteString(TokenParam + "=[redacted]")
			continue
		}
		b.WriteString(param)
	}
	return b.String()
}

// AppendJSON appends e as one JSON object with Istio's field names, ending
// in a newline.
func AppendJSON(b []byte, e *Entry) []byte {
	b = append(b, `{"start_time":"`...)
	b = e.Start.UTC().AppendFormat(b, StartTimeLayout)
	b = append(b, '"')
	b = jsonStr(b, "method", e.Method)
	b = jsonStr(b, "path", RedactPath(e.Path))
	b = jsonStr(b, "protocol", e.Protocol)
	b = append(b, `,"response_code":`...)
	b = strconv.AppendInt(b, int64(e.Code), 10)
	b = jsonStr(b, "response_flags", e.Flags)
	b = jsonStr(b, "response_code_details", "")
	b = jsonStr(b, "connection_termination_details", "")
	b = jsonStr(b, "upstream_transport_failure_reason", "")
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendInt(b, max(e.BytesReceived, 0), 10)
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendInt(b, max(e.BytesSent, 0), 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, e.Duration.Milliseconds(), 10)
	b = append(b, `,"upstream_service_time":`...)
	if e.UpstreamServiceTime >= 0 && e.UpstreamHost != "" {
		b = append(b, '"')
		b = strconv.AppendInt(b, e.UpstreamServiceTime.Milliseconds(), 10)
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	b = jsonStr(b, "x_forwarded_for", e.ForwardedFor)
	b = jsonStr(b, "user_agent", e.UserAgent)
	b = jsonStr(b, "request_id", e.RequestID)
	b = jsonStr(b, "authority", e.Authority)
	b = jsonStr(b, "upstream_host", e.UpstreamHost)
	b = jsonStr(b, "upstream_cluster", e.UpstreamCluster)
	b = jsonStr(b, "upstream_local_address", "")
	b = jsonStr(b, "downstream_local_address", e.DownstreamLocal)
	b = jsonStr(b, "downstream_remote_address", e.DownstreamRemote)
	b = jsonStr(b, "requested_server_name", "")
	b = jsonStr(b, "route_name", e.Route)
	b = jsonStr(b, "trace_id", e.TraceID)
	b = jsonStr(b, "rbac_policy", e.RBACPolicy)
	b = append(b, `,"audit":`...)
	b = strconv.AppendBool(b, e.Audit)
	return append(b, "}\n"...)
}

func dash(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return append(b, s...)
}

// jsonStr appends `,"key":"value"`, or `,"key":null` for "".
func jsonStr(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if v == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, v)
}

// appendJSONString appends v as a JSON string: quotes, backslashes and
// control characters escaped, other bytes as they are.
func appendJSONString(b []byte, v string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
