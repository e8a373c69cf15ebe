package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// TransportOptions configure a Transport.
type TransportOptions struct {
	// Dial opens a connection (TCP, and TLS when the upstream wants it).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdlePerHost bounds the idle connections kept per address.
	MaxIdlePerHost int
	// MaxConnsPerHost bounds the connections per address; requests beyond
	// it wait for one (0: unlimited).
	MaxConnsPerHost int
	// IdleTimeout closes connections idle for this long (default 90s).
	IdleTimeout time.Duration
	// MaxRequestsPerConn closes a connection after it carried this many
	// requests (0: unlimited; 1: no keep-alive).
	MaxRequestsPerConn uint32
	// Limits bound response heads (default 1 MiB and 1000 header lines:
	// net/http's client reads up to 1 MiB; upstreams are not clients).
	Limits Limits
}

// Transport is an HTTP/1.1 http.RoundTripper for a proxy's upstreams: the
// request is written and its response read on the caller's goroutine (no
// hand-off to connection goroutines), over keep-alive connections pooled
// per address. A request that fails on a reused connection before any
// response byte arrived is sent again when it is safe (nothing was
// written, or it has no body and an idempotent method), as net/http does,
// past every idle connection the server closed meanwhile.
type Transport struct {
	o     TransportOptions
	hosts sync.Map // address -> *hostPool; read without a lock per request
}

// NewTransport returns a Transport.
func NewTransport(o TransportOptions) *Transport {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		o.Dial = d.DialContext
	}
	if o.Limits.MaxHeaderBytes == 0 {
		o.Limits.MaxHeaderBytes = 1 << 20
	}
	if o.Limits.MaxHeaders == 0 {
		o.Limits.MaxHeaders = 1000
	}
	return &Transport{o: o}
}

// hostPool holds the connections to one address.
type hostPool struct {
	t     *Transport
	addr  string
	mu    sync.Mutex
	idle  []*pconn // most recently used last
	conns int      // open connections, idle or busy
	wait  []chan *pconn
	timer *time.Timer // closes idle connections past the timeout
}

func (t *Transport) pool(addr string) *hostPool {
	if p, ok := t.hosts.Load(addr); ok {
		return p.(*hostPool)
	}
	p, _ := t.hosts.LoadOrStore(addr, &hostPool{t: t, addr: addr})
	return p.(*hostPool)
}

// Waiting returns how many requests to addr wait for a connection because
// MaxConnsPerHost are open (Envoy's pending requests).
func (t *Transport) Waiting(addr string) int {
	p, ok := t.hosts.Load(addr)
	if !ok {
		return 0
	}
	hp := p.(*hostPool)
	hp.mu.Lock()
	defer hp.mu.Unlock()
	return len(hp.wait)
}

// CloseIdleConnections closes the connections not carrying a request.
func (t *Transport) CloseIdleConnections() {
	t.hosts.Range(func(_, p any) bool {
		p.(*hostPool).closeIdle(time.Time{})
		return true
	})
}

// pconn is one upstream connection.
type pconn struct {
	p      *hostPool
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	uses   uint32
	reused bool
	head   []byte // the last response head, its buffer reused
	timed  bool   // a deadline is set on c
	idleAt time.Time
	broken atomic.Bool
}

// get returns an idle connection, a new one, or waits for one when the
// address has MaxConnsPerHost open.
func (p *hostPool) get(ctx context.Context) (*pconn, error) {
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		pc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		if time.Since(pc.idleAt) < p.t.o.IdleTimeout {
			p.mu.Unlock()
			pc.reused = true
			return pc, nil
		}
		p.conns--
		pc.c.Close()
	}
	if max := p.t.o.MaxConnsPerHost; max > 0 && p.conns >= max {
		ch := make(chan *pconn, 1)
		p.wait = append(p.wait, ch)
		p.mu.Unlock()
		select {
		case pc := <-ch:
			if pc == nil {
				return p.dial(ctx) // a slot freed by a closed connection
			}
			pc.reused = true
			return pc, nil
		case <-ctx.Done():
			p.mu.Lock()
			for i, w := range p.wait {
				if w == ch {
					p.wait = append(p.wait[:i], p.wait[i+1:]...)
					break
				}
			}
			p.mu.Unlock()
			select { // handed one meanwhile: give it back
			case pc := <-ch:
				if pc == nil {
					p.release()
				} else {
					p.put(pc)
				}
			default:
			}
			return nil, ctx.Err()
		}
	}
	p.conns++
	p.mu.Unlock()
	return p.dial(ctx)
}

// dial opens a connection counted in p.conns already.
func (p *hostPool) dial(ctx context.Context) (*pconn, error) {
	c, err := p.t.o.Dial(ctx, "tcp", p.addr)
	if err != nil {
		p.release()
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return &pconn{p: p, c: c, br: bufio.NewReaderSize(c, bufSize), bw: bufio.NewWriterSize(c, bufSize)}, nil
}

// release forgets a connection that was closed (or never opened), handing
// its slot to a waiter.
func (p *hostPool) release() {
	p.mu.Lock()
	if len(p.wait) > 0 {
		ch := p.wait[0]
		p.wait = p.wait[1:]
		p.mu.Unlock()
		ch <- nil
		return
	}
	p.conns--
	p.forgetIfUnused()
	p.mu.Unlock()
}

// forgetIfUnused drops p from its Transport when it holds nothing, so
// that pools of addresses no longer used (ORIGINAL_DST destinations, old
// endpoints) do not pile up. A request that found p just before keeps
// using it; the next one makes a new pool. Called with p.mu held.
func (p *hostPool) forgetIfUnused() {
	if p.conns == 0 && len(p.idle) == 0 && len(p.wait) == 0 {
		p.t.hosts.CompareAndDelete(p.addr, p)
	}
}

// put returns a connection after a complete exchange.
func (p *hostPool) put(pc *pconn) {
	o := &p.t.o
	if pc.broken.Load() || o.MaxRequestsPerConn > 0 && pc.uses >= o.MaxRequestsPerConn {
		pc.close()
		return
	}
	p.mu.Lock()
	if len(p.wait) > 0 {
		ch := p.wait[0]
		p.wait = p.wait[1:]
		p.mu.Unlock()
		ch <- pc
		return
	}
	if len(p.idle) >= max(o.MaxIdlePerHost, 1) {
		p.mu.Unlock()
		pc.close()
		return
	}
	pc.idleAt = time.Now()
	p.idle = append(p.idle, pc)
	if p.timer == nil {
		p.timer = time.AfterFunc(o.IdleTimeout, p.sweep)
	}
	p.mu.Unlock()
}

// sweep closes connections idle past the timeout, and runs again while
// any are idle.
func (p *hostPool) sweep() {
	p.closeIdle(time.Now().Add(-p.t.o.IdleTimeout))
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) > 0 {
		p.timer.Reset(p.t.o.IdleTimeout)
	} else {
		p.timer = nil
		p.forgetIfUnused()
	}
}

// closeIdle closes the idle connections that went idle before cutoff (all
// of them for the zero time).
func (p *hostPool) closeIdle(cutoff time.Time) {
	p.mu.Lock()
	keep := p.idle[:0]
	var drop []*pconn
	for _, pc := range p.idle {
		if cutoff.IsZero() || pc.idleAt.Before(cutoff) {
			drop = append(drop, pc)
		} else {
			keep = append(keep, pc)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.mu.Unlock()
	for _, pc := range drop {
		pc.close()
	}
}

func (pc *pconn) close() {
	pc.c.Close()
	pc.p.release()
}

// errServerClosedIdle is a reused connection the server had closed.
var errServerClosedIdle = errors.New("http1: server closed the idle connection")

// RoundTrip sends req and returns its response. The response body must
// be closed; reading it to the end (or closing it early, which drops the
// connection) ends the exchange.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Host == "" {
		return nil, errors.New("http1: request without a host")
	}
	if !validToken(req.Method) {
		return nil, fmt.Errorf("http1: invalid method %q", req.Method)
	}
	ctx := req.Context()
	p := t.pool(req.URL.Host)
	for {
		pc, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, written, err := pc.roundTrip(ctx, req)
		if err == nil {
			return resp, nil
		}
		pc.broken.Store(true)
		pc.close()
		if !pc.reused || !retriable(req, written, err) || ctx.Err() != nil {
			return nil, err
		}
		// The server closed a connection we kept idle. Servers close
		// their idle connections together (a graceful shutdown, a
		// drain, an idle timeout), so the ones idle longer are most
		// likely dead too: drop them rather than fail on each, and
		// send again. Every pass consumes a reused connection and a new
		// one ends the loop, so it is bounded by the pool: once the
		// server is gone the request fails as the dial does (nothing
		// reached the server; a proxy retries it elsewhere).
		p.closeIdle(pc.idleAt.Add(1))
	}
}

// retriable reports whether a request that failed on a reused connection
// may be sent again: nothing of it was written, or it has no body and an
// idempotent method and the server closed the connection before
// answering.
func retriable(req *http.Request, written bool, err error) bool {
	if !written {
		return true
	}
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
	default:
		if _, ok := req.Header["Idempotency-Key"]; !ok {
			return false
		}
	}
	return errors.Is(err, errServerClosedIdle)
}

// roundTrip does one exchange on pc. written reports whether any of the
// request may have reached the server.
func (pc *pconn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, bool, error) {
	pc.uses++
	if d, ok := ctx.Deadline(); ok {
		_ = pc.c.SetDeadline(d)
		pc.timed = true
	} else if pc.timed {
		_ = pc.c.SetDeadline(time.Time{})
		pc.timed = false
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, pc.interrupt)
	}
	resp, written, err := pc.exchange(req)
	if err != nil {
		if stop != nil {
			stop()
		}
		settle(ctx, err)
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return nil, written, err
	}
	b := resp.Body.(*clientBody)
	b.stop, b.ctx = stop, ctx
	return resp, true, nil
}

// settle waits, after a timeout error, for ctx to report the deadline
// that caused it: the connection's deadline is the context's, and its
// timer may fire a moment before the context's.
func settle(ctx context.Context, err error) {
	var ne net.Error
	if _, ok := ctx.Deadline(); ok && errors.As(err, &ne) && ne.Timeout() {
		<-ctx.Done()
	}
}

// interrupt ends the exchange in progress when its context ends.
func (pc *pconn) interrupt() {
	pc.broken.Store(true)
	_ = pc.c.SetDeadline(aLongTimeAgo)
}

func (pc *pconn) exchange(req *http.Request) (*http.Response, bool, error) {
	hasBody := req.Body != nil && req.Body != http.NoBody
	chunked := hasBody && req.ContentLength <= 0
	if err := pc.writeHead(req, hasBody, chunked); err != nil {
		return nil, false, err
	}
	var bodyErr chan error
	switch {
	case !hasBody:
		if err := pc.bw.Flush(); err != nil {
			return nil, false, err
		}
	case !chunked && req.ContentLength <= 64<<10:
		// A short body goes out before the response is read.
		if err := pc.writeBody(req, chunked); err != nil {
			return nil, true, err
		}
	default:
		// A long or streamed body is written while the response is read,
		// so a server answering early (or streaming back) cannot deadlock.
		bodyErr = make(chan error, 1)
		go func() { bodyErr <- pc.writeBody(req, chunked) }()
	}
	resp, err := pc.readResponse(req)
	if err != nil {
		if bodyErr != nil {
			_ = pc.c.SetDeadline(aLongTimeAgo)
			<-bodyErr
		}
		return nil, true, err
	}
	resp.Body.(*clientBody).bodyErr = bodyErr
	return resp, true, nil
}

// writeHead writes the request line and header fields.
func (pc *pconn) writeHead(req *http.Request, hasBody, chunked bool) error {
	bw := pc.bw
	u := req.URL
	_, _ = bw.WriteString(req.Method)
	_ = bw.WriteByte(' ')
	if u.Opaque != "" && strings.HasPrefix(u.Opaque, "/") {
		_, _ = bw.WriteString(u.Opaque)
	} else if p := u.EscapedPath(); p == "" {
		_ = bw.WriteByte('/')
	} else {
		_, _ = bw.WriteString(p)
	}
	if u.ForceQuery || u.RawQuery != "" {
		_ = bw.WriteByte('?')
		_, _ = bw.WriteString(u.RawQuery)
	}
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = u.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("http1: invalid Host %q", host)
	}
	_, _ = bw.WriteString(host)
	_, _ = bw.WriteString("\r\n")
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("http1: invalid header name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("http1: invalid value for header %q", k)
			}
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	switch {
	case chunked:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			_, _ = bw.WriteString("Trailer: ")
			first := true
			for k := range req.Trailer {
				if !first {
					_, _ = bw.WriteString(", ")
				}
				first = false
				_, _ = bw.WriteString(k)
			}
			_, _ = bw.WriteString("\r\n")
		}
	case hasBody || req.ContentLength > 0:
		var b [20]byte
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(b[:0], req.ContentLength, 10))
		_, _ = bw.WriteString("\r\n")
	case req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH":
		_, _ = bw.WriteString("Content-Length: 0\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// writeBody writes the request body (chunked, or exactly ContentLength
// bytes) and flushes.
func (pc *pconn) writeBody(req *http.Request, chunked bool) error {
	bw := pc.bw
	var err error
	if chunked {
		cw := chunkWriter{bw: bw}
		_, err = io.Copy(&cw, req.Body)
		if err == nil {
			_, _ = bw.WriteString("0\r\n")
			for k, vv := range req.Trailer {
				for _, v := range vv {
					if httpguts.ValidHeaderFieldName(k) && httpguts.ValidHeaderFieldValue(v) {
						_, _ = bw.WriteString(k + ": " + v + "\r\n")
					}
				}
			}
			_, err = bw.WriteString("\r\n")
		}
	} else {
		var n int64
		n, err = io.Copy(bw, io.LimitReader(req.Body, req.ContentLength))
		if err == nil && n != req.ContentLength {
			err = fmt.Errorf("http1: request body ended after %d of %d bytes", n, req.ContentLength)
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		pc.broken.Store(true)
	}
	return err
}

// chunkWriter writes each Write as one chunk, flushing it: a streamed
// request body reaches the server as it arrives.
type chunkWriter struct{ bw *bufio.Writer }

func (w *chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var b [20]byte
	_, _ = w.bw.Write(strconv.AppendInt(b[:0], int64(len(p)), 16))
	_, _ = w.bw.WriteString("\r\n")
	_, _ = w.bw.Write(p)
	_, _ = w.bw.WriteString("\r\n")
	return len(p), w.bw.Flush()
}

// clientResponse is a response with its storage, one allocation.
type clientResponse struct {
	resp http.Response
	body clientBody
	vals [inlineValues]string
}

// readResponse reads the response head (skipping interim 1xx responses
// other than 101) and sets up its body.
func (pc *pconn) readResponse(req *http.Request) (*http.Response, error) {
	for {
		head, lines, err := readHead(pc.br, pc.head, pc.p.t.o.Limits, false)
		pc.head = head[:0]
		if err != nil {
			if len(head) == 0 && (err == io.EOF || isReset(err)) {
				return nil, errServerClosedIdle
			}
			return nil, err
		}
		cr := &clientResponse{}
		if err := parseResponse(string(head), lines, req, cr); err != nil {
			return nil, err
		}
		resp := &cr.resp
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		return resp, pc.setBody(cr, req)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read" && !op.Timeout()
}

// parseResponse parses a status line and header section.
func parseResponse(head string, lines int, req *http.Request, cr *clientResponse) error {
	resp := &cr.resp
	line, i := lineAt(head, 0)
	proto, status, ok := strings.Cut(line, " ")
	if !ok {
		return errors.New("http1: malformed status line")
	}
	major, minor, ok := parseVersion(proto)
	if !ok {
		return fmt.Errorf("http1: malformed HTTP version %q", proto)
	}
	code, _, _ := strings.Cut(status, " ")
	if len(code) != 3 {
		return fmt.Errorf("http1: malformed status code %q", code)
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 100 {
		return fmt.Errorf("http1: malformed status code %q", code)
	}
	resp.Status, resp.StatusCode = status, n
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = proto, major, minor
	resp.Request = req
	h := make(http.Header, lines)
	if err := parseHeaders(head, i, h, cr.vals[:]); err != nil {
		return err
	}
	resp.Header = h
	return nil
}

// setBody reads the framing of resp and attaches its body.
func (pc *pconn) setBody(cr *clientResponse, req *http.Request) error {
	resp := &cr.resp
	b := &cr.body
	b.pc, b.resp = pc, resp
	resp.Body = b
	http10 := resp.ProtoMinor == 0
	conn := resp.Header["Connection"]
	b.keep = !hasToken(conn, "close") && (!http10 || hasToken(conn, "keep-alive"))
	if resp.StatusCode == http.StatusSwitchingProtocols {
		b.keep = false
		b.r.br, b.r.remaining, b.r.done = pc.br, 1<<62, false
		resp.ContentLength = -1
		return nil
	}
	if req.Method == http.MethodHead || resp.StatusCode == 204 || resp.StatusCode == 304 || resp.StatusCode < 200 {
		resp.ContentLength = 0
		if v := resp.Header["Content-Length"]; req.Method == http.MethodHead && len(v) > 0 {
			if n, ok := parseLength(v[0]); ok {
				resp.ContentLength = n
			}
		}
		b.r.done = true
		return nil
	}
	f, err := bodyFraming(resp.Header, false, http10)
	if err != nil {
		return err
	}
	switch {
	case f.chunked:
		delete(resp.Header, "Content-Length")
		delete(resp.Header, "Transfer-Encoding")
		resp.ContentLength, resp.TransferEncoding = -1, chunkedTE
		resp.Trailer = http.Header{}
		b.r = bodyReader{br: pc.br, chunked: true, trailer: resp.Trailer, limits: pc.p.t.o.Limits}
	case f.length >= 0:
		resp.ContentLength = f.length
		b.r = bodyReader{br: pc.br, remaining: f.length, done: f.length == 0}
	default:
		// Delimited by the connection's end.
		resp.ContentLength = -1
		b.keep = false
		b.r = bodyReader{br: pc.br, remaining: 1 << 62}
		b.untilEOF = true
	}
	return nil
}

// clientBody is a response body: at its end the connection goes back to
// the pool; closed before, the connection is dropped.
type clientBody struct {
	r        bodyReader
	pc       *pconn
	resp     *http.Response
	keep     bool
	untilEOF bool
	ctx      context.Context
	stop     func() bool // stops the context watch
	bodyErr  chan error  // the request body writer, when one runs
	released bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.released {
		return 0, ErrBodyClosed
	}
	n, err := b.r.read(p)
	if err == io.ErrUnexpectedEOF && b.untilEOF {
		err = io.EOF
	}
	if err != nil {
		if err != io.EOF {
			settle(b.ctx, err)
		}
		b.end(err == io.EOF && !b.untilEOF)
	}
	return n, err
}

func (b *clientBody) Close() error {
	if !b.released {
		b.end(b.r.done && b.r.err == nil)
	}
	return nil
}

// end releases the connection: back to the pool when the exchange ended
// cleanly, else closed.
func (b *clientBody) end(clean bool) {
	b.released = true
	if b.stop != nil && !b.stop() {
		clean = false // the context ended: the connection was interrupted
	}
	if b.bodyErr != nil {
		if clean {
			clean = <-b.bodyErr == nil
		} else {
			_ = b.pc.c.SetDeadline(aLongTimeAgo)
			<-b.bodyErr
		}
	}
	pc := b.pc
	if clean && b.keep && !pc.broken.Load() {
		pc.p.put(pc)
		return
	}
	pc.broken.Store(true)
	pc.close()
}
