package runtime

import (
	"context"
	"net"
	"net/netip"
	"sync"

	"github.com/weft-mesh/weft/proxy/capture"
)

// steering sits between the socket of a listener that steers (one with
// use_original_dst, the original_dst listener filter, or destination_port
// chains) and its filter chains. Each accepted connection is looked at
// once, on the accept goroutine: a redirected connection gets its original
// destination restored (capture.Conn), then it is handed to the listener
// that serves that destination, or to the listener's own port group for
// it, or kept. Only what is kept is returned by Accept.
type steering struct {
	net.Listener
	p       *Proxy
	current func() *Listener
}

// Accept returns the next connection the listener keeps.
func (s *steering) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c = s.p.steer(c, s.current()); c != nil {
			return c, nil
		}
	}
}

// steer decides where connection c, accepted by listener l, goes: it
// returns c (perhaps wrapped) when l keeps it, nil when it was handed on
// or closed.
//
// A use_original_dst listener hands a connection to the listener (bound
// to no socket) whose address is the connection's destination, else to
// the one at the unspecified address and the same port, never to itself.
// Otherwise, when l has destination_port groups, the group for the
// destination's port takes it; with no group for it and no chains of its
// own, l closes it. A connection that was not redirected has its local
// address as destination: made to the capture port itself, it stays with
// the capture listener, whose ORIGINAL_DST clusters have no destination
// for it, so it cannot loop back in.
func (p *Proxy) steer(c net.Conn, l *Listener) net.Conn {
	if l == nil {
		return c // no configuration: the dispatcher closes it
	}
	dst := localAddrPort(c)
	if l.Captured() {
		if tc, ok := c.(*net.TCPConn); ok {
			d, redirected, err := capture.OriginalDst(tc)
			if err != nil {
				p.log.Debug("original destination unknown", "listener", l.Name, "err", err)
			}
			if redirected {
				c, dst = capture.NewConn(tc, d), d
			}
		}
	}
	queues := *p.queues.Load()
	if l.UseOriginalDst {
		if cfg := p.cur.Load(); cfg != nil {
			name, ok := cfg.handoff[dst]
			if !ok {
				name, ok = cfg.handoff[netip.AddrPortFrom(unspecified(dst.Addr()), dst.Port())]
			}
			if ok && name != l.Name {
				if q := queues[lkey{name: name}]; q != nil {
					q.deliver(c)
					return nil
				}
			}
		}
	}
	if len(l.ByPort) > 0 {
		if port := uint32(dst.Port()); l.ByPort[port] != nil {
			if q := queues[lkey{name: l.Name, port: port}]; q != nil {
				q.deliver(c)
				return nil
			}
		}
		if len(l.Chains) == 0 {
			c.Close() // no filter chain matches: closed, as in Envoy
			return nil
		}
	}
	return c
}

// localAddrPort is c's local address (IPv4-mapped addresses unmapped).
func localAddrPort(c net.Conn) netip.AddrPort {
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		return unmapAddrPort(a.AddrPort())
	}
	return netip.AddrPort{}
}

func unspecified(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// withOriginalDst is the HTTP servers' ConnContext: requests on a
// redirected connection carry its original destination, where an
// ORIGINAL_DST cluster connects them.
func withOriginalDst(ctx context.Context, c net.Conn) context.Context {
	if cc := capture.Find(c); cc != nil {
		return capture.WithConn(ctx, cc)
	}
	return ctx
}

// handoff is the net.Listener of a server that binds no socket: Accept
// returns the connections steering delivers.
type handoff struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once

	mu   sync.RWMutex // deliveries hold it shared; Close exclusively
	done bool
}

func newHandoff(address string) *handoff {
	var addr net.Addr = &net.TCPAddr{}
	if ap, err := netip.ParseAddrPort(address); err == nil {
		addr = net.TCPAddrFromAddrPort(ap)
	}
	return &handoff{addr: addr, ch: make(chan net.Conn, 64), closed: make(chan struct{})}
}

// deliver queues c for Accept, or closes it when the queue is closed.
func (h *handoff) deliver(c net.Conn) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.done {
		c.Close()
		return
	}
	select {
	case h.ch <- c:
	case <-h.closed:
		c.Close()
	}
}

// Accept returns the next delivered connection.
func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.closed:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: h.addr, Err: net.ErrClosed}
	}
}

// Close stops deliveries and closes the connections queued and not yet
// accepted.
func (h *handoff) Close() error {
	h.once.Do(func() {
		close(h.closed) // releases deliveries waiting for room
		h.mu.Lock()     // waits for the deliveries in progress
		h.done = true
		h.mu.Unlock()
		for {
			select {
			case c := <-h.ch:
				c.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr returns the listener's configured address.
func (h *handoff) Addr() net.Addr { return h.addr }
