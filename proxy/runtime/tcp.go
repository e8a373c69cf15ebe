package runtime

import (
	"net"
	"sync/atomic"

	"github.com/weft-mesh/weft/proxy/cluster"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

// tcpHandler serves one TCP listener: every connection is proxied with the
// Config current when it was accepted.
type tcpHandler struct {
	p       *Proxy
	name    string
	retired atomic.Pointer[Config]
}

func (h *tcpHandler) serve(conn net.Conn) {
	cfg := h.p.cur.Load()
	l := cfg.listeners[h.name]
	if l == nil || l.TCP == nil {
		if cfg = h.retired.Load(); cfg != nil {
			l = cfg.listeners[h.name]
		}
	}
	if l == nil || l.TCP == nil {
		conn.Close()
		return
	}
	lookup := func(name string) *cluster.Cluster { return cfg.clusters[name] }
	tap := h.p.opts.Tap
	if tap == nil {
		res := tcpproxy.Serve(conn, h.name, l.TCP, lookup)
		if hook := h.p.opts.OnConnection; hook != nil {
			hook(res)
		}
		return
	}
	inbound := l.Inbound
	res := tcpproxy.ServeObserved(conn, h.name, l.TCP, lookup, func(r *tcpproxy.Result) { tap.TCPOpened(r, inbound) })
	tap.TCPClosed(res, inbound)
	if hook := h.p.opts.OnConnection; hook != nil {
		hook(res)
	}
}
