package filter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// ConnInfo describes the downstream connection a request (or a proxied TCP
// connection) arrived on, as RBAC's principals and permissions see it.
type ConnInfo struct {
	// Cert is the client certificate the TLS handshake verified (the leaf),
	// nil for plaintext or one-way TLS.
	Cert *x509.Certificate
	// Principal is Cert's identity for logs: its first URI SAN (the SPIFFE
	// ID), else its first DNS SAN, else its subject; "" without Cert.
	Principal string
	// Source is the downstream peer's address (Envoy's direct remote address).
	Source netip.AddrPort
	// Local is the address the connection was accepted on: the listener's
	// IP and port (Envoy's destination address).
	Local netip.AddrPort
	// SNI is the server name the client asked for in its TLS hello.
	SNI string
	// TLS is true when the connection is TLS.
	TLS bool
}

// Conn returns the request's connection attributes, computed on first use
// and kept for the rest of the exchange: several RBAC filters may ask.
func (x *Exchange) Conn() *ConnInfo {
	if !x.hasConn {
		x.conn = requestConn(x.R)
		x.hasConn = true
	}
	return &x.conn
}

// RemoteIP is Envoy's downstream remote address for RBAC's remote_ip: with
// useRemoteAddress (the HCM's use_remote_address) the connection's peer,
// otherwise the rightmost x-forwarded-for address when the request has a
// valid one, else the connection's peer.
func (x *Exchange) RemoteIP(useRemoteAddress bool) netip.Addr {
	if !useRemoteAddress {
		if xff := x.R.Header["X-Forwarded-For"]; len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return a.Unmap()
			}
		}
	}
	return x.Conn().Source.Addr()
}

func requestConn(r *http.Request) ConnInfo {
	var c ConnInfo
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.Source = unmap(ap)
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		c.Local = addrPort(a)
	}
	if r.TLS != nil {
		c.fillTLS(r.TLS)
	}
	return c
}

func (c *ConnInfo) fillTLS(cs *tls.ConnectionState) {
	c.TLS = true
	c.SNI = cs.ServerName
	if len(cs.PeerCertificates) > 0 {
		c.Cert = cs.PeerCertificates[0]
		c.Principal = CertPrincipal(c.Cert)
	}
}

// CertPrincipal is a certificate's identity as Envoy's RBAC reads it for
// logs and telemetry: the first URI SAN, else the first DNS SAN, else the
// subject.
func CertPrincipal(cert *x509.Certificate) string {
	switch {
	case len(cert.URIs) > 0:
		return cert.URIs[0].String()
	case len(cert.DNSNames) > 0:
		return cert.DNSNames[0]
	}
	return cert.Subject.String()
}

// tlsConn is what a TLS connection offers: *tls.Conn, or a wrapper of one.
type tlsConn interface {
	HandshakeContext(ctx context.Context) error
	ConnectionState() tls.ConnectionState
}

// InspectConn returns the attributes of an accepted TCP connection. A TLS
// connection (one with HandshakeContext and ConnectionState, as *tls.Conn)
// completes its handshake first, bounded by timeout, so the client's
// certificate is known; a failed handshake is an error and the caller
// closes the connection.
func InspectConn(conn net.Conn, timeout time.Duration) (ConnInfo, error) {
	var c ConnInfo
	c.Source = addrPort(conn.RemoteAddr())
	c.Local = addrPort(conn.LocalAddr())
	tc, ok := conn.(tlsConn)
	if !ok {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return c, fmt.Errorf("tls handshake with %s: %w", conn.RemoteAddr(), err)
	}
	cs := tc.ConnectionState()
	c.fillTLS(&cs)
	return c, nil
}

func addrPort(a net.Addr) netip.AddrPort {
	switch t := a.(type) {
	case *net.TCPAddr:
		return unmap(t.AddrPort())
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return unmap(ap)
}

// unmap turns an IPv4-mapped IPv6 address (a dual-stack socket's view of
// an IPv4 peer) into the IPv4 address CIDR ranges are written for.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// ConnFilter is a network filter run once when a TCP connection is
// accepted, before tcp_proxy (envoy.filters.network.rbac).
type ConnFilter interface {
	// Allow reports whether the connection may go on; the caller closes
	// it otherwise.
	Allow(c *ConnInfo) bool
}
