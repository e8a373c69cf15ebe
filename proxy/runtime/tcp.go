package runtime

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/proxy/cluster"
	"github.com/weft-mesh/weft/proxy/filter"
	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

// tcpHandler serves one TCP listener (or destination-port group): every
// connection is proxied with the Config current when it was accepted.
type tcpHandler struct {
	p       *Proxy
	key     lkey
	retired atomic.Pointer[Config]
}

// tlsHandshakeTimeout bounds a TCP listener's downstream TLS handshake.
const tlsHandshakeTimeout = 10 * time.Second

func (h *tcpHandler) serve(conn net.Conn) {
	// A TLS chain's connection is handshaken first, so what runs next
	// knows the peer's identity.
	if tc, ok := conn.(*tls.Conn); ok {
		if err := mtls.Handshake(tc, tlsHandshakeTimeout); err != nil {
			h.p.log.Debug("downstream TLS handshake failed", "listener", h.key.name, "err", err)
			conn.Close()
			return
		}
	}
	cfg := h.p.cur.Load()
	l := cfg.lookup(h.key)
	if l == nil || l.TCP == nil {
		if cfg = h.retired.Load(); cfg != nil {
			l = cfg.lookup(h.key)
		}
	}
	if l == nil || l.TCP == nil {
		conn.Close()
		return
	}
	if len(l.ConnFilters) > 0 && !h.allowed(conn, l) {
		return
	}
	lookup := func(name string) *cluster.Cluster { return cfg.clusters[name] }
	tap := h.p.opts.Tap
	if tap == nil {
		res := tcpproxy.Serve(conn, h.key.name, l.TCP, lookup)
		if hook := h.p.opts.OnConnection; hook != nil {
			hook(res)
		}
		return
	}
	inbound := l.Inbound
	res := tcpproxy.ServeObserved(conn, h.key.name, l.TCP, lookup, func(r *tcpproxy.Result) { tap.TCPOpened(r, inbound) })
	tap.TCPClosed(res, inbound)
	if hook := h.p.opts.OnConnection; hook != nil {
		hook(res)
	}
}

// allowed runs the listener's network filters (RBAC) on conn. A refused
// connection is closed at once, before any byte reaches an upstream, and
// reported with flag RBAC.
func (h *tcpHandler) allowed(conn net.Conn, l *Listener) bool {
	start := time.Now()
	info, err := filter.InspectConn(conn, tlsHandshakeTimeout)
	if err == nil {
		ok := true
		for _, f := range l.ConnFilters {
			if ok = f.Allow(&info); !ok {
				break
			}
		}
		if ok {
			return true
		}
	}
	conn.Close()
	res := &tcpproxy.Result{Listener: h.key.name, Start: start, Duration: time.Since(start), Flags: FlagRBACDenied,
		MutualTLS: info.Cert != nil, PeerPrincipal: info.Principal}
	if tap := h.p.opts.Tap; tap != nil {
		tap.TCPClosed(res, l.Inbound)
	}
	if hook := h.p.opts.OnConnection; hook != nil {
		hook(res)
	}
	return false
}
