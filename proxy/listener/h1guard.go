package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weft-mesh/weft/proxy/contract"
)

// Envoy's default request header limits (HttpConnectionManager
// max_request_headers_kb and common_http_protocol_options.max_headers_count),
// which apply when a listener's HCM does not set them.
const (
	DefaultMaxRequestHeadersKB = 60
	DefaultMaxHeadersCount     = 100
	// MaxRequestHeadersKBLimit is the largest max_request_headers_kb Envoy
	// accepts.
	MaxRequestHeadersKBLimit = 8192
)

// Limits bound the request headers an HTTP listener reads. Zero fields
// mean Envoy's defaults.
type Limits struct {
	// MaxRequestHeadersKB bounds the request line and headers together, in
	// KiB.
	MaxRequestHeadersKB uint32
	// MaxHeadersCount bounds the number of header lines.
	MaxHeadersCount uint32
}

// headerLimits reads the HCM's header limits into s, with Envoy's bounds.
func headerLimits(m *hcmv3.HttpConnectionManager, s *Spec) error {
	if kb := m.GetMaxRequestHeadersKb(); kb != nil {
		if v := kb.GetValue(); v == 0 || v > MaxRequestHeadersKBLimit {
			return fmt.Errorf("max_request_headers_kb: %d, want 1 to %d", v, MaxRequestHeadersKBLimit)
		}
		s.Limits.MaxRequestHeadersKB = kb.GetValue()
	}
	if o := m.GetCommonHttpProtocolOptions(); o != nil {
		if err := contract.CheckFields(o, "max_headers_count"); err != nil {
			return fmt.Errorf("common_http_protocol_options.%w", err)
		}
		if c := o.GetMaxHeadersCount(); c != nil {
			if c.GetValue() == 0 {
				return errors.New("common_http_protocol_options.max_headers_count: 0, want at least 1")
			}
			s.Limits.MaxHeadersCount = c.GetValue()
		}
	}
	return nil
}

func (l Limits) bytes() int {
	if l.MaxRequestHeadersKB == 0 {
		return DefaultMaxRequestHeadersKB << 10
	}
	return int(l.MaxRequestHeadersKB) << 10
}

func (l Limits) count() int {
	if l.MaxHeadersCount == 0 {
		return DefaultMaxHeadersCount
	}
	return int(l.MaxHeadersCount)
}

// h1Conn is an HTTP listener's view of a connection: it follows the
// HTTP/1.1 message framing as net/http will read it, and stops a request
// before net/http sees all of its header section when the section breaks
// a rule net/http does not enforce:
//
//   - Content-Length together with Transfer-Encoding, and Transfer-Encoding
//     in an HTTP/1.0 request: RFC 9112 section 6.1 calls such framing
//     faulty (net/http reads the body as chunked, or ignores the
//     Transfer-Encoding, and keeps the connection: a smuggling vector);
//   - obs-fold, a header line continued on the next (net/http joins the
//     lines, so a folded "Transfer-Encoding:\r\n chunked" still frames the
//     body): RFC 9112 section 5.2 allows rejecting it, as Envoy does;
//   - more header lines or bytes than the listener's Limits.
//
// The request gets 400 (431 for the limits) with "Connection: close" and
// the connection is closed, as Envoy does. Everything else passes through
// untouched: the body bytes are only counted, and a connection that turns
// out to speak HTTP/2 (h2c prior knowledge, or h2 by ALPN) is not looked
// at any more.
//
// A TLS connection is handshaken here, on its first Read, rather than by
// net/http, which would need the *tls.Conn itself and so read past the
// guard; the handler takes the TLS state from the connection (see
// tlsState) to fill in r.TLS.
type h1Conn struct {
	net.Conn
	tls     *tls.Conn // the TLS layer to handshake first, nil for plaintext
	tlsDone bool
	state   atomic.Pointer[tls.ConnectionState]
	pass    bool // HTTP/2: no framing to follow
	frame   framing
	refusal *refusal // set once a request is refused; the connection ends
	// busy is set while net/http runs a handler for a request of this
	// connection (http.Server.ConnState): a refusal then writes nothing, so
	// its answer does not cut into that request's response.
	busy atomic.Bool
}

// newH1Conn wraps c (plaintext, or a not yet handshaken *tls.Conn).
func newH1Conn(c net.Conn, l Limits) *h1Conn {
	h := &h1Conn{Conn: c, frame: framing{maxBytes: l.bytes(), maxCount: l.count()}}
	h.tls, _ = c.(*tls.Conn)
	return h
}

// errRefused ends net/http's read of a refused request. It is a read
// OpError, which net/http takes for the client going away: it closes the
// connection without answering again.
var errRefused = errors.New("request refused by the HTTP/1.1 framing guard")

// handshake handshakes a TLS connection once (a plaintext one needs
// none), under the read deadline the server set for the request headers.
func (c *h1Conn) handshake() error {
	if c.tls == nil || c.tlsDone {
		return nil
	}
	if err := c.tls.HandshakeContext(context.Background()); err != nil {
		return err
	}
	st := c.tls.ConnectionState()
	c.state.Store(&st)
	c.tlsDone = true
	c.pass = c.pass || st.NegotiatedProtocol == "h2"
	return nil
}

// passThrough stops following the framing: the reader enforces it itself
// (proxy/http1), so the guard only handshakes and lends its limits.
func (c *h1Conn) passThrough() { c.pass = true }

func (c *h1Conn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	if c.pass {
		return c.Conn.Read(p)
	}
	if c.refusal != nil {
		return c.refuse()
	}
	n, err := c.Conn.Read(p)
	if n == 0 {
		return n, err
	}
	cut, r := c.frame.feed(p[:n])
	if r != nil {
		c.refusal = r
		if cut > 0 {
			// The bytes before the offending line: never the end of the
			// refused request's header section.
			return cut, nil
		}
		return c.refuse()
	}
	c.pass = c.frame.state == stPass
	return n, err
}

// refuse answers the refused request and ends the read. While a handler
// of an earlier (pipelined) request still runs, nothing is written, so
// the answer cannot cut into that handler's response: the read fails,
// net/http gives up on the connection, and the answer goes out when it
// next reads between requests, if it does.
func (c *h1Conn) refuse() (int, error) {
	if !c.busy.Load() && !c.refusal.sent {
		c.refusal.sent = true
		_ = c.Conn.SetWriteDeadline(time.Now().Add(refusalLinger))
		if _, err := io.WriteString(c.Conn, c.refusal.response()); err == nil {
			c.linger()
		}
	}
	return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errRefused}
}

// Closing a socket with unread bytes resets it, and a reset can make the
// client drop the answer it has not read yet. So, as net/http does before
// it closes a connection, a refusal half-closes and reads what the client
// still sends, up to refusalDrain bytes for up to refusalLinger, first.
const (
	refusalLinger = time.Second
	refusalDrain  = 256 << 10
)

func (c *h1Conn) linger() {
	_ = c.CloseWrite()
	_ = c.Conn.SetReadDeadline(time.Now().Add(refusalLinger))
	_, _ = io.CopyN(io.Discard, c.Conn, refusalDrain)
}

// CloseWrite half-closes the connection (net/http does before closing,
// to avoid resets).
func (c *h1Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// setConnState follows net/http's connection states.
func (c *h1Conn) setConnState(s http.ConnState) { c.busy.Store(s == http.StateActive) }

// tlsState returns the connection's TLS state once handshaken, else nil.
func (c *h1Conn) tlsState() *tls.ConnectionState { return c.state.Load() }

// refusal is why a request is refused.
type refusal struct {
	status int
	why    string
	sent   bool
}

func (r *refusal) response() string {
	body := http.StatusText(r.status) + ": " + r.why + "\n"
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		r.status, http.StatusText(r.status), len(body), body)
}

// guardKey is the context key of a request's connection guard.
type guardKey struct{}

// NetConn returns the wrapped connection, so what lies beneath the guard
// (a captured connection's original destination) stays reachable.
func (c *h1Conn) NetConn() net.Conn { return c.Conn }

// guardContext is the server's ConnContext: requests find their
// connection's guard (TLS state, limits) in their context.
// A connection the codec hands over to net/http (HTTP/2 with prior
// knowledge) wraps the guarded one: the guard is found beneath it.
func guardContext(ctx context.Context, c net.Conn) context.Context {
	for c != nil {
		switch v := c.(type) {
		case *h1Conn:
			return context.WithValue(ctx, guardKey{}, v)
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return ctx
		}
	}
	return ctx
}

// guardState is the server's ConnState hook.
func guardState(c net.Conn, s http.ConnState) {
	if g, ok := c.(*h1Conn); ok {
		g.setConnState(s)
	}
}

func guardOf(ctx context.Context) *h1Conn {
	g, _ := ctx.Value(guardKey{}).(*h1Conn)
	return g
}

// h2WithinLimits applies the listener's header limits to an HTTP/2
// request (HTTP/1.1 ones were checked as they were read), answering 431
// when they are exceeded.
func (c *h1Conn) h2WithinLimits(w http.ResponseWriter, r *http.Request) bool {
	count, size := 1, len(r.Host)+len(r.Method)+len(r.RequestURI) // the pseudo-headers
	for k, vs := range r.Header {
		count += len(vs)
		for _, v := range vs {
			size += len(k) + len(v)
		}
	}
	why := ""
	switch {
	case count > c.frame.maxCount:
		why = fmt.Sprintf("more than %d request headers", c.frame.maxCount)
	case size > c.frame.maxBytes:
		why = fmt.Sprintf("request headers larger than %d KiB", c.frame.maxBytes>>10)
	default:
		return true
	}
	http.Error(w, http.StatusText(http.StatusRequestHeaderFieldsTooLarge)+": "+why, http.StatusRequestHeaderFieldsTooLarge)
	return false
}
