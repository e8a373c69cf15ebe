package runtime

import (
	"net/http"
	"sync/atomic"

	"github.com/weft-mesh/weft/proxy/filter"
	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

// Tap observes traffic for telemetry: metrics, traces and access logs. Its
// methods run on the request's (or connection's) goroutine, in the order
// Begin, Upstream (only for forwarded requests), End; they must not block
// and must not retain the Result after End.
type Tap interface {
	// Begin is called when a request arrives, with the Result's request
	// fields (Listener, Inbound, Start, Method, Path, Authority, ...) set.
	Begin(res *Result, r *http.Request)
	// Upstream is called once per forwarded request, before the first
	// attempt and any mirror, with the headers they all send. It may edit
	// hdr by setting or deleting keys; the value slices may be shared with
	// the downstream request and must not be modified in place.
	Upstream(res *Result, hdr http.Header)
	// End is called once with the finished Result.
	End(res *Result)
	// TCPOpened is called when a proxied TCP connection has reached its
	// upstream; TCPClosed when any proxied connection ends. inbound is the
	// listener's direction.
	TCPOpened(res *tcpproxy.Result, inbound bool)
	TCPClosed(res *tcpproxy.Result, inbound bool)
}

// countingBody counts the bytes read from a request body whose length is
// not known up front. The count is atomic: the transport may still be
// writing the body when the request's Result is reported.
type countingBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// begin builds the Result of a request on the named listener and calls the
// Tap.
func (p *Proxy) begin(r *http.Request, listener string, inbound bool, authority string) *Result {
	res := &Result{
		Listener:  listener,
		Inbound:   inbound,
		Method:    r.Method,
		Path:      r.URL.RequestURI(),
		Authority: authority,
		Protocol:  r.Proto,
		GRPC:      r.ProtoMajor == 2 && filter.IsGRPC(r.Header),
	}
	if r.RequestURI != "" && r.URL.Host == "" {
		res.Path = r.RequestURI // as received, without re-encoding
	}
	res.Start = startTime()
	h := r.Header
	if v := h["User-Agent"]; len(v) > 0 {
		res.UserAgent = v[0]
	}
	if v := h["X-Forwarded-For"]; len(v) > 0 {
		res.ForwardedFor = v[0]
	}
	if v := h["X-Request-Id"]; len(v) > 0 {
		res.RequestID = v[0]
	}
	res.Downstream = r.RemoteAddr
	if r.TLS != nil {
		res.PeerPrincipal, res.MutualTLS = mtls.Peer(r.TLS)
	}
	if hasBody(r) {
		if r.ContentLength >= 0 {
			res.RequestBytes = r.ContentLength
		} else {
			res.reqBody = &countingBody{rc: r.Body}
			r.Body = res.reqBody
		}
	}
	if p.opts.Tap != nil {
		p.opts.Tap.Begin(res, r)
	}
	return res
}

// finish completes res and hands it to the Tap and the OnRequest hook.
func (p *Proxy) finish(res *Result, w http.ResponseWriter) {
	if res.reqBody != nil {
		res.RequestBytes = res.reqBody.n.Load()
	}
	if res.GRPC {
		wh := w.Header()
		if v := wh["Grpc-Status"]; len(v) > 0 {
			res.GRPCStatus = v[0]
		} else if v := wh[http.TrailerPrefix+"Grpc-Status"]; len(v) > 0 {
			res.GRPCStatus = v[0]
		}
	}
	if p.opts.Tap != nil {
		p.opts.Tap.End(res)
	}
	if p.opts.OnRequest != nil {
		p.opts.OnRequest(res)
	}
}
