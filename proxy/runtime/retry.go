package runtime

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"github.com/weft-mesh/weft/proxy/cluster"
	"github.com/weft-mesh/weft/proxy/filter"
	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/route"
)

// forwarder carries one request through its upstream attempts. It lives on
// the serving goroutine's stack.
type forwarder struct {
	p         *Proxy
	cfg       *Config
	w         http.ResponseWriter
	r         *http.Request
	x         *filter.Exchange // nil when the route has no filters
	rt        *route.Route
	tgt       *route.WeightedCluster
	c         *cluster.Cluster
	authority string
	res       *Result // nil when nothing observes requests
	upgrade   bool    // the request asks to switch protocols (WebSocket)

	// outcome
	sent  int64        // body bytes sent downstream
	ep    *lb.Endpoint // endpoint of the last attempt
	code  int
	flags filter.Flag
	abort bool // the downstream response is incomplete
}

var trueValue = []string{"true"}

// maxTried bounds the endpoints remembered for previous_hosts.
const maxTried = 8

// run forwards the request, retrying per the route's retry policy. The route
// timeout bounds every attempt and back-off together; per_try_timeout bounds
// each attempt. Nothing is retried once response bytes went downstream.
func (f *forwarder) run() {
	r, rt := f.r, f.rt
	ctx := r.Context()
	if rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout)
		defer cancel()
	}
	u := *r.URL
	u.Scheme, u.User = "http", nil
	if rt.RewritesPath() {
		rt.RewritePath(&u)
	}
	host := f.authority
	if rt.HostRewrite != "" {
		host = rt.HostRewrite
	}
	hdr := headerPool.Get().(http.Header)
	defer func() { clear(hdr); headerPool.Put(hdr) }()
	upstreamHeaders(hdr, r)
	if f.upgrade = isUpgrade(r); f.upgrade {
		upgradeHeaders(hdr, r)
	}
	if rt.HasRequestHeaders(f.tgt) {
		rt.RequestHeaders(hdr, f.tgt)
	}
	if f.res != nil {
		if id := hdr["X-Request-Id"]; len(id) > 0 {
			f.res.RequestID = id[0]
		}
		if tap := f.p.opts.Tap; tap != nil {
			f.res.Cluster = f.tgt.Name
			tap.Upstream(f.res, hdr)
		}
	}
	var hash lb.Hash
	var setCookie string
	if rt.HasHash() {
		hash.Value, hash.OK, setCookie = rt.Hash(r, f.authority)
	}
	pol := rt.Retry
	if pol != nil && pol.NumRetries == 0 {
		pol = nil
	}
	var body *replayBody
	if hasBody(r) && (pol != nil || len(rt.Mirrors) > 0) {
		body = &replayBody{src: r.Body}
	}
	grpc := r.ProtoMajor == 2 && filter.IsGRPC(r.Header)
	for i := range rt.Mirrors {
		if m := &rt.Mirrors[i]; m.Fraction.Sample() {
			f.p.mirror(f.cfg, m, r, &u, hdr, host, body, grpc, rt.Timeout)
		}
	}

	var triedBuf [maxTried]*lb.Endpoint
	tried := triedBuf[:0]
	for retry := 0; ; retry++ {
		ep := f.pick(hash, pol, tried)
		if ep == nil {
			if retry > 0 {
				f.c.ReleaseRetry()
			}
			f.localReply(http.StatusServiceUnavailable, bodyNoHealthy, filter.NoHealthy)
			return
		}
		f.ep = ep
		if len(tried) < maxTried {
			tried = append(tried, ep)
		}
		if !f.c.AdmitRequest() {
			if retry > 0 {
				f.c.ReleaseRetry()
			}
			f.w.Header()["X-Envoy-Overloaded"] = trueValue // as Envoy marks overflow replies
			f.localReply(http.StatusServiceUnavailable, bodyOverflow, filter.Overflow)
			return
		}
		tr := f.p.transport(f.c, ep, grpc)
		if f.upgrade {
			tr = f.c.UpgradeTransport(ep)
		}
		a := f.attempt(ctx, tr, &u, hdr, host, body, ep, pol)
		if a.done {
			a.release(f.c, retry > 0)
			return
		}
		// Decide on a retry, before anything went downstream.
		retriable := false
		if pol != nil {
			if a.resp != nil {
				retriable = pol.RetriableStatus(a.resp.StatusCode, grpcStatus(a.resp.Header))
			} else {
				retriable = pol.RetriableFailure(a.fail)
			}
		}
		if retriable && f.canRetry(retry, pol, body) {
			if a.resp != nil {
				// Let the connection be reused when the body is short.
				_, _ = io.CopyN(io.Discard, a.resp.Body, 4<<10)
				a.resp.Body.Close()
			}
			a.release(f.c, retry > 0)
			if !f.backoff(ctx, pol, retry+1) {
				return
			}
			continue
		}
		if retriable && f.flags&filter.Overflow == 0 {
			f.flags |= filter.RetryLimitExceeded
		}
		if a.resp == nil {
			a.release(f.c, retry > 0)
			f.failureReply(a.fail, a.err)
			return
		}
		f.stream(ctx, a.ctx, a.resp, setCookie)
		a.release(f.c, retry > 0)
		return
	}
}

// transport returns what sends a request to ep of c: the cluster's
// transport for ep's transport socket (TLS to a mesh peer, plaintext
// otherwise), HTTP/2 for gRPC. Plaintext gRPC uses the proxy's shared h2c
// transport.
func (p *Proxy) transport(c *cluster.Cluster, ep *lb.Endpoint, grpc bool) http.RoundTripper {
	if tr := c.TransportFor(ep, grpc); tr != nil {
		return tr
	}
	if grpc {
		return p.h2
	}
	return p.h1
}

// pick chooses the endpoint of an attempt; with previous_hosts, a retry
// re-picks up to host_selection_retry_max_attempts times to avoid the
// endpoints already tried.
func (f *forwarder) pick(h lb.Hash, pol *route.RetryPolicy, tried []*lb.Endpoint) *lb.Endpoint {
	ep := f.c.Pick(f.r, h)
	if pol == nil || !pol.PreviousHosts || len(tried) == 0 {
		return ep
	}
	for i := 0; i < pol.HostSelectionMaxAttempts && ep != nil && contains(tried, ep); i++ {
		ep = f.c.Pick(f.r, h)
	}
	return ep
}

func contains(eps []*lb.Endpoint, ep *lb.Endpoint) bool {
	for _, e := range eps {
		if e == ep {
			return true
		}
	}
	return false
}

// canRetry reports whether retry number retry+1 may start: retries left,
// a replayable body, and room in the cluster's max_retries (else UO).
func (f *forwarder) canRetry(retry int, pol *route.RetryPolicy, body *replayBody) bool {
	if retry >= pol.NumRetries {
		return false
	}
	if body != nil && !body.replayable() {
		return false
	}
	if !f.c.AdmitRetry() {
		f.flags |= filter.Overflow
		return false
	}
	return true
}

// backoff waits before retry n. It returns false, having answered the
// request, when the route timeout fires or the client leaves meanwhile.
func (f *forwarder) backoff(ctx context.Context, pol *route.RetryPolicy, n int) bool {
	d := pol.Backoff(n, rand.Uint64())
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	}
	f.c.ReleaseRetry()
	if f.r.Context().Err() != nil {
		f.code, f.flags = 499, f.flags|filter.DownstreamClosed
		return false
	}
	f.localReply(http.StatusGatewayTimeout, bodyTimeout, filter.UpstreamTimeout)
	return false
}

// attemptResult is the outcome of one upstream attempt.
type attemptResult struct {
	resp   *http.Response // nil when the attempt failed without a response
	fail   route.Failure
	err    error
	ctx    context.Context // the attempt's context (per-try timeout)
	cancel context.CancelFunc
	ep     *lb.Endpoint
	body   *bodyReader
	done   bool // the request was answered (client gone, route timeout)
}

// release ends the attempt's accounting: endpoint, circuit breaker, retry
// budget, per-try timer and body reader.
func (a *attemptResult) release(c *cluster.Cluster, retry bool) {
	if a.cancel != nil {
		a.cancel()
	}
	if a.body != nil {
		a.body.detach()
	}
	a.ep.End()
	c.ReleaseRequest()
	if retry {
		c.ReleaseRetry()
	}
}

// attempt sends one upstream request to ep.
func (f *forwarder) attempt(ctx context.Context, tr http.RoundTripper, u *neturl.URL, hdr http.Header, host string,
	body *replayBody, ep *lb.Endpoint, pol *route.RetryPolicy) attemptResult {
	a := attemptResult{ctx: ctx, ep: ep}
	if pol != nil && pol.PerTryTimeout > 0 {
		a.ctx, a.cancel = context.WithTimeout(ctx, pol.PerTryTimeout)
	}
	r := f.r
	out := r.WithContext(a.ctx)
	au := *u
	au.Host = ep.Address
	out.URL = &au
	out.Host = host
	out.RequestURI = ""
	out.Close = false
	out.Header = hdr
	if body != nil {
		a.body = body.reader(true)
		out.Body = a.body
	}
	ep.Begin()
	resp, err := tr.RoundTrip(out)
	if err == nil {
		f.c.Observe(ep, resp.StatusCode, false)
		a.resp = resp
		return a
	}
	a.err = err
	switch {
	case r.Context().Err() != nil:
		f.code, f.flags = 499, f.flags|filter.DownstreamClosed
		a.done = true
		return a
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		f.c.Observe(ep, 0, true)
		f.localReply(http.StatusGatewayTimeout, bodyTimeout, filter.UpstreamTimeout)
		a.done = true
		return a
	case a.ctx.Err() != nil:
		a.fail = route.FailPerTryTimeout
	default:
		a.fail = classify(err)
		if remoteTLSAlert(err) {
			// Handshake failures are logged where they are dialed.
			f.p.log.Warn("upstream TLS connection refused by the peer", "cluster", f.c.Name, "endpoint", ep.Address, "err", err)
		}
	}
	f.c.Observe(ep, 0, true)
	return a
}

// classify tells why an exchange failed without a response. A TLS alert
// from the upstream is a connect failure too: with TLS 1.3 a server that
// refuses our certificate says so only after the client's handshake has
// finished, on the first read.
func classify(err error) route.Failure {
	var op *net.OpError
	if (errors.As(err, &op) && op.Op == "dial") || remoteTLSAlert(err) {
		return route.FailConnect
	}
	if strings.Contains(err.Error(), "REFUSED_STREAM") {
		return route.FailRefusedStream
	}
	return route.FailReset
}

// remoteTLSAlert reports whether err is a TLS alert the upstream sent.
func remoteTLSAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// remoteReset reports whether err is an HTTP/2 stream reset by the peer.
func remoteReset(err error) bool {
	s := err.Error()
	return strings.Contains(s, "stream error") && strings.Contains(s, "received from peer")
}

// failureReply answers an attempt that got no response and is not retried.
func (f *forwarder) failureReply(fail route.Failure, err error) {
	switch fail {
	case route.FailConnect:
		f.localReply(http.StatusServiceUnavailable, bodyConnectFailure, filter.ConnectFailure)
	case route.FailPerTryTimeout:
		f.localReply(http.StatusGatewayTimeout, bodyTimeout, filter.UpstreamTimeout)
	case route.FailRefusedStream:
		f.localReply(http.StatusServiceUnavailable, bodyRefused, filter.UpstreamReset)
	default:
		f.p.log.Debug("upstream exchange failed", "cluster", f.c.Name, "endpoint", f.ep.Address, "err", err)
		if remoteReset(err) {
			f.localReply(http.StatusServiceUnavailable, bodyRemoteReset, filter.UpstreamReset)
			return
		}
		f.localReply(http.StatusServiceUnavailable, bodyReset, filter.ConnectionTermination)
	}
}

// localReply answers the request from the proxy with flag added.
func (f *forwarder) localReply(code int, body string, flag filter.Flag) {
	reply(f.w, f.rt, f.tgt, f.x, code, body)
	f.code = code
	f.sent = int64(len(body))
	f.flags |= flag
}

// stream sends resp downstream: headers (with the route's response edits,
// the hash policy's Set-Cookie and the filters' response hooks), body and
// trailers. ctx is the route's context, actx the attempt's.
func (f *forwarder) stream(ctx, actx context.Context, resp *http.Response, setCookie string) {
	defer resp.Body.Close()
	w, r := f.w, f.r
	if resp.StatusCode == http.StatusSwitchingProtocols && f.upgrade {
		f.code = resp.StatusCode
		n, err := tunnel(w, resp)
		f.sent = n
		if err != nil {
			f.p.log.Debug("protocol switch failed", "err", err)
			f.flags |= filter.ConnectionTermination
		}
		return
	}
	wh := w.Header()
	for k, vv := range resp.Header {
		if !hopByHop(k) {
			wh[k] = vv
		}
	}
	dropListed(wh, resp.Header["Connection"])
	if f.rt.HasResponseHeaders(f.tgt) {
		f.rt.ResponseHeaders(wh, f.tgt)
	}
	if setCookie != "" {
		wh["Set-Cookie"] = append(wh["Set-Cookie"][:len(wh["Set-Cookie"]):len(wh["Set-Cookie"])], setCookie)
	}
	if f.x != nil {
		f.x.Response(resp.StatusCode, wh)
	}
	w.WriteHeader(resp.StatusCode)
	f.code = resp.StatusCode

	var flusher http.Flusher
	if r.ProtoMajor == 2 || resp.ContentLength < 0 {
		flusher, _ = w.(http.Flusher)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			f.sent += int64(n)
			if _, werr := w.Write(buf[:n]); werr != nil {
				f.flags |= filter.DownstreamClosed
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			switch {
			case r.Context().Err() != nil:
				f.flags |= filter.DownstreamClosed
				return
			case ctx.Err() != nil || actx.Err() != nil:
				f.flags |= filter.UpstreamTimeout
			case remoteReset(rerr):
				f.flags |= filter.UpstreamReset
			default:
				f.flags |= filter.ConnectionTermination
			}
			f.abort = true
			return
		}
	}
	for k, vv := range resp.Trailer {
		wh[http.TrailerPrefix+k] = vv
	}
}

// grpcStatus returns the grpc-status of a trailers-only gRPC response.
func grpcStatus(h http.Header) string {
	if v := h["Grpc-Status"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func hasBody(r *http.Request) bool { return r.Body != nil && r.Body != http.NoBody }
