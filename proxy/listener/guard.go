package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

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

// guardConn is an HTTP listener's connection as Dispatch hands it over:
// it carries the listener's header Limits (they change with the
// configuration, without rebinding) and handshakes TLS on the connection's
// goroutine, never in the accept loop. The server serves HTTP/1.1 on it
// with proxy/http1, which refuses faulty framing (Content-Length with
// Transfer-Encoding, obs-fold, ...) and heads beyond the limits; HTTP/2
// requests, served by net/http, are checked against the limits by the
// handler (h2WithinLimits).
type guardConn struct {
	net.Conn
	limits  Limits
	tls     *tls.Conn // the TLS layer to handshake first, nil for plaintext
	tlsDone bool
	state   atomic.Pointer[tls.ConnectionState]
}

// newGuardConn wraps c (plaintext, or a not yet handshaken *tls.Conn).
func newGuardConn(c net.Conn, l Limits) *guardConn {
	g := &guardConn{Conn: c, limits: l}
	g.tls, _ = c.(*tls.Conn)
	return g
}

// handshake handshakes a TLS connection once (a plaintext one needs
// none), under the deadline the server set for it.
func (c *guardConn) handshake() error {
	if c.tls == nil || c.tlsDone {
		return nil
	}
	if err := c.tls.HandshakeContext(context.Background()); err != nil {
		return err
	}
	st := c.tls.ConnectionState()
	c.state.Store(&st)
	c.tlsDone = true
	return nil
}

func (c *guardConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection, as the codec does before it
// closes one it refused (the client then reads the answer, not a reset).
func (c *guardConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// tlsState returns the connection's TLS state once handshaken, else nil.
func (c *guardConn) tlsState() *tls.ConnectionState { return c.state.Load() }

// guardKey is the context key of a request's connection guard.
type guardKey struct{}

// NetConn returns the wrapped connection, so what lies beneath the guard
// (a captured connection's original destination) stays reachable.
func (c *guardConn) NetConn() net.Conn { return c.Conn }

// guardContext is the server's ConnContext: requests find their
// connection's guard (TLS state, limits) in their context.
// A connection the codec hands over to net/http (HTTP/2 with prior
// knowledge) wraps the guarded one: the guard is found beneath it.
func guardContext(ctx context.Context, c net.Conn) context.Context {
	for c != nil {
		switch v := c.(type) {
		case *guardConn:
			return context.WithValue(ctx, guardKey{}, v)
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return ctx
		}
	}
	return ctx
}

func guardOf(ctx context.Context) *guardConn {
	g, _ := ctx.Value(guardKey{}).(*guardConn)
	return g
}

// h2WithinLimits applies the listener's header limits to an HTTP/2
// request (HTTP/1.1 ones were checked as they were read), answering 431
// when they are exceeded.
func (c *guardConn) h2WithinLimits(w http.ResponseWriter, r *http.Request) bool {
	count, size := 1, len(r.Host)+len(r.Method)+len(r.RequestURI) // the pseudo-headers
	for k, vs := range r.Header {
		count += len(vs)
		for _, v := range vs {
			size += len(k) + len(v)
		}
	}
	why := ""
	switch {
	case count > c.limits.count():
		why = fmt.Sprintf("more than %d request headers", c.limits.count())
	case size > c.limits.bytes():
		why = fmt.Sprintf("request headers larger than %d KiB", c.limits.bytes()>>10)
	default:
		return true
	}
	http.Error(w, http.StatusText(http.StatusRequestHeaderFieldsTooLarge)+": "+why, http.StatusRequestHeaderFieldsTooLarge)
	return false
}
