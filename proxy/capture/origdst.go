package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h) at SOL_IP, and
// IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h) at SOL_IPV6:
// both are 80.
const soOriginalDst = 80

// OriginalDst returns the destination the client of c, a connection
// accepted on a capture port, addressed before a REDIRECT rule rewrote it,
// and whether a rule did rewrite it. A connection made to the capture port
// itself (not redirected), or one conntrack does not know, reports its own
// local address and false: handing it on to "where it was going" would
// send it right back.
//
// The lookup is one getsockopt on the socket; it allocates nothing beyond
// what the standard library's SyscallConn does (see BenchmarkOriginalDst).
func OriginalDst(c *net.TCPConn) (netip.AddrPort, bool, error) {
	la, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false, errors.New("capture: connection has no TCP local address")
	}
	local := la.AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	rc, err := c.SyscallConn()
	if err != nil {
		return local, false, fmt.Errorf("capture: original destination: %w", err)
	}
	l := lookups.Get().(*lookup)
	// An IPv4 peer of a dual-stack socket is IPv4 to conntrack: SOL_IP.
	l.v6 = !local.Addr().Is4()
	if cerr := rc.Control(l.fn); cerr != nil {
		l.err = cerr
	}
	dst, err := l.dst, l.err
	l.dst, l.err = netip.AddrPort{}, nil
	lookups.Put(l)
	switch {
	case errors.Is(err, unix.ENOENT):
		// No conntrack entry (nothing was translated): not redirected.
		return local, false, nil
	case err != nil:
		return local, false, fmt.Errorf("capture: getsockopt SO_ORIGINAL_DST: %w", err)
	case dst == local || !dst.IsValid():
		return local, false, nil
	}
	return dst, true, nil
}

// lookup is one getsockopt call's state. Its callback is bound once per
// pooled lookup, so a call allocates no closure.
type lookup struct {
	v6  bool
	dst netip.AddrPort
	err error
	fn  func(fd uintptr)
}

var lookups = sync.Pool{New: func() any {
	l := &lookup{}
	l.fn = l.run
	return l
}}

func (l *lookup) run(fd uintptr) {
	if l.v6 {
		var sa unix.RawSockaddrInet6
		size := uint32(unsafe.Sizeof(sa))
		if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IPV6, soOriginalDst,
			uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
			l.err = e
			return
		}
		l.dst = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), ntohs(sa.Port))
		return
	}
	var sa unix.RawSockaddrInet4
	size := uint32(unsafe.Sizeof(sa))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IP, soOriginalDst,
		uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		l.err = e
		return
	}
	l.dst = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
}

// ntohs reads a port as the kernel stores it in a sockaddr: network order.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// Conn is a redirected connection: LocalAddr reports its original
// destination, as Envoy's original_dst listener filter restores it, so what
// runs next (filter chain match on destination_port, RBAC destination_ip
// and destination_port, ORIGINAL_DST clusters) sees where the client meant
// to go. The rest is the accepted *net.TCPConn, splice included.
type Conn struct {
	*net.TCPConn
	dst  netip.AddrPort
	addr net.TCPAddr
	ip   [16]byte // addr.IP's storage: one allocation per Conn
}

// NewConn wraps c, whose original destination is dst.
func NewConn(c *net.TCPConn, dst netip.AddrPort) *Conn {
	w := &Conn{TCPConn: c, dst: dst}
	a := dst.Addr()
	n := copy(w.ip[:], a.AsSlice())
	w.addr = net.TCPAddr{IP: w.ip[:n:n], Port: int(dst.Port()), Zone: a.Zone()}
	return w
}

// LocalAddr returns the original destination.
func (c *Conn) LocalAddr() net.Addr { return &c.addr }

// OriginalDst returns the original destination.
func (c *Conn) OriginalDst() netip.AddrPort { return c.dst }

// NetConn returns the accepted connection, as crypto/tls's Conn does.
func (c *Conn) NetConn() net.Conn { return c.TCPConn }

// Find returns the redirected Conn that c is or wraps (through NetConn,
// as *tls.Conn does), nil when there is none.
func Find(c net.Conn) *Conn {
	for range 8 { // wrappers nest a few deep at most
		switch t := c.(type) {
		case *Conn:
			return t
		case interface{ NetConn() net.Conn }:
			c = t.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// Destination returns the original destination of c when c is, or wraps,
// a redirected Conn.
func Destination(c net.Conn) (netip.AddrPort, bool) {
	if cc := Find(c); cc != nil {
		return cc.dst, true
	}
	return netip.AddrPort{}, false
}

type connKey struct{}

// WithConn returns ctx carrying c, the redirected connection requests on
// ctx arrive on (http.Server's ConnContext sets it). It holds the pointer,
// so the context's value costs no allocation of its own.
func WithConn(ctx context.Context, c *Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// DestinationFrom returns the original destination of the connection
// WithConn put in ctx.
func DestinationFrom(ctx context.Context) (netip.AddrPort, bool) {
	if c, ok := ctx.Value(connKey{}).(*Conn); ok && c != nil {
		return c.dst, true
	}
	return netip.AddrPort{}, false
}
