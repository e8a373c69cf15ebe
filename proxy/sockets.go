package proxy

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/weft-mesh/weft/xds/node"
)

// socketSet holds the sockets bound before the proxy started, by address,
// for the proxy's whole life. A listener configured at one of those
// addresses leases the socket: it serves it until the listener goes away,
// and the socket then returns to the set, still bound, for the next
// listener at that address. No other process can take the port meanwhile;
// connections arriving while no listener holds the socket wait in its
// accept queue.
type socketSet struct {
	mu      sync.Mutex
	sockets map[string]*heldSocket
}

// heldSocket is one pre-bound socket and whether a listener holds it.
type heldSocket struct {
	ln     net.Listener
	leased bool // guarded by socketSet.mu
}

// deadliner is a listener whose Accept can be woken without closing it
// (*net.TCPListener); others are handed out once and closed with their
// listener.
type deadliner interface {
	SetDeadline(time.Time) error
}

func newSocketSet(m map[string]net.Listener) *socketSet {
	s := &socketSet{sockets: map[string]*heldSocket{}}
	for a, l := range m {
		s.sockets[a] = &heldSocket{ln: l}
	}
	return s
}

// add holds l for addr.
func (s *socketSet) add(addr string, l net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sockets[addr] = &heldSocket{ln: l}
}

// has reports whether a socket is held for addr.
func (s *socketSet) has(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sockets[addr] != nil
}

// take leases the socket bound at addr, or returns nil when there is none
// or a listener holds it already. Closing the lease returns the socket.
func (s *socketSet) take(addr string) net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.sockets[addr]
	if h == nil || h.leased {
		return nil
	}
	if _, ok := h.ln.(deadliner); !ok {
		delete(s.sockets, addr) // cannot be handed back: the listener owns it
		return h.ln
	}
	h.leased = true
	return &lease{set: s, h: h}
}

// release makes h available again.
func (s *socketSet) release(h *heldSocket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.leased = false
}

// closeAll closes every socket; the proxy has stopped.
func (s *socketSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, h := range s.sockets {
		h.ln.Close()
		delete(s.sockets, a)
	}
}

// lease is a listener's use of a held socket. Close ends the use, not the
// socket.
type lease struct {
	set *socketSet
	h   *heldSocket

	mu      sync.Mutex
	closed  bool
	accepts sync.WaitGroup // Accept calls in progress
}

// Accept accepts on the held socket until the lease is closed.
func (l *lease) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, l.errClosed()
	}
	l.accepts.Add(1)
	l.mu.Unlock()
	defer l.accepts.Done()
	c, err := l.h.ln.Accept()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		// Woken by Close, or accepted just as the listener went away:
		// the connection belongs to no listener any more.
		if c != nil {
			c.Close()
		}
		return nil, l.errClosed()
	}
	return c, err
}

// Close wakes a blocked Accept without closing the socket, waits for it to
// return, and gives the socket back to the set.
func (l *lease) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	d := l.h.ln.(deadliner)
	_ = d.SetDeadline(time.Now())
	l.accepts.Wait()
	_ = d.SetDeadline(time.Time{})
	l.set.release(l.h)
	return nil
}

func (l *lease) Addr() net.Addr { return l.h.ln.Addr() }

func (l *lease) errClosed() error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
}

// bindNodeAddresses binds, before anything is configured, the addresses
// the node serves that no socket was given for: a sidecar's inbound and
// outbound addresses and a gateway's mapped ports. A port 0 is replaced in
// meta (a copy the caller owns) by the port bound, so the control plane
// configures listeners where the sockets are. The first address that
// cannot be bound is an error naming it; sockets bound until then are
// closed.
func bindNodeAddresses(meta *node.Meta, sockets *socketSet) error {
	var bound []net.Listener
	fail := func(err error) error {
		for _, l := range bound {
			l.Close()
		}
		return err
	}
	bind := func(what, addr string) (string, error) {
		if addr == "" || sockets.has(addr) {
			return addr, nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", fmt.Errorf("proxy: %s address: %w", what, err)
		}
		bound = append(bound, ln)
		addr = BoundAddress(addr, ln)
		sockets.add(addr, ln)
		return addr, nil
	}
	var err error
	if meta.Inbound, err = bind("inbound", meta.Inbound); err != nil {
		return fail(err)
	}
	if meta.Outbound, err = bind("outbound", meta.Outbound); err != nil {
		return fail(err)
	}
	if len(meta.GatewayPorts) > 0 {
		ports := make(map[uint32]string, len(meta.GatewayPorts))
		for p, a := range meta.GatewayPorts {
			if ports[p], err = bind(fmt.Sprintf("gateway port %d", p), a); err != nil {
				return fail(err)
			}
		}
		meta.GatewayPorts = ports
	}
	return nil
}

// BoundAddress is addr as configured, with the port ln was given when addr
// asked for port 0: the address to configure listeners at (and to key
// Options.Sockets by) for a socket bound at addr.
func BoundAddress(addr string, ln net.Listener) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
	return addr
}
