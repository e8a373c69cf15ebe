package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/weft-mesh/weft/proxy/sds"
)

// ServerConfig returns the tls.Config serving d. Its certificate and trust
// bundle are read from store at each handshake (GetCertificate,
// VerifyConnection), so publishing new secrets takes effect on the next
// handshake. A client certificate, when one is required or presented, must
// chain to the trust bundle and match the SAN matchers; with a bundle from
// SDS (mesh identity) it must also carry a spiffe:// URI SAN.
func (d *Downstream) ServerConfig(store *sds.Store) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: d.alpn}
	if d.certSDS != "" {
		ref := store.Ref(d.certSDS)
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return ref.Certificate() }
	} else {
		cfg.Certificates = []tls.Certificate{*d.cert}
	}
	if !d.Verifies() {
		return cfg
	}
	cfg.ClientAuth = tls.RequestClientCert
	if d.RequireClientCertificate {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	roots := d.rootsFunc(store)
	require := d.RequireClientCertificate
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			if require {
				return errors.New("client certificate required")
			}
			return nil
		}
		if err := d.verify(cs.PeerCertificates, roots); err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		return nil
	}
	return cfg
}

// ClientConfig returns the tls.Config dialing with u, offering the ALPN
// protocols alpn (nil offers none). The client certificate and trust bundle
// are read from store at each handshake. The server's certificate must
// chain to the trust bundle (when one is configured: SIMPLE with
// insecureSkipVerify has none) and match a SAN matcher (when there are
// any); with a bundle from SDS it must carry a spiffe:// URI SAN. Host
// names are checked only through SAN matchers, as Envoy does.
func (u *Upstream) ClientConfig(store *sds.Store, alpn []string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: u.SNI,
		NextProtos: alpn,
		// The chain and SANs are checked in VerifyConnection, against the
		// bundle current at handshake time.
		InsecureSkipVerify: true,
	}
	switch {
	case u.certSDS != "":
		ref := store.Ref(u.certSDS)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return ref.Certificate() }
	case u.cert != nil:
		cfg.Certificates = []tls.Certificate{*u.cert}
	}
	if !u.Verifies() {
		return cfg
	}
	roots := u.rootsFunc(store)
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server certificate: none presented")
		}
		if err := u.verify(cs.PeerCertificates, roots); err != nil {
			return fmt.Errorf("server certificate: %w", err)
		}
		return nil
	}
	return cfg
}

// rootsFunc returns how to get the current trust bundle.
func (c *common) rootsFunc(store *sds.Store) func() (*x509.CertPool, error) {
	if c.rootsSDS == "" {
		pool := c.roots
		return func() (*x509.CertPool, error) { return pool, nil }
	}
	return store.Ref(c.rootsSDS).Roots
}

// verify checks a peer's chain against the current bundle, then its SANs.
func (c *common) verify(chain []*x509.Certificate, roots func() (*x509.CertPool, error)) error {
	pool, err := roots()
	if err != nil {
		return err
	}
	leaf := chain[0]
	opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if len(chain) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return err
	}
	for _, cert := range chain {
		if c.revoked[revocationKey(cert.RawIssuer, cert.SerialNumber)] {
			return fmt.Errorf("certificate serial %s revoked by the CRL", cert.SerialNumber)
		}
	}
	if c.MeshIdentity() && SPIFFEID(leaf) == "" {
		return errors.New("no spiffe:// URI SAN: not a mesh identity")
	}
	if !anySAN(c.sans, leaf) {
		return fmt.Errorf("SANs %s match none of the %d allowed", describeSANs(leaf), len(c.sans))
	}
	return nil
}

// SPIFFEID returns the first spiffe:// URI SAN of cert, "" when none.
func SPIFFEID(cert *x509.Certificate) string {
	for _, u := range cert.URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			return u.String()
		}
	}
	return ""
}

// Peer reads a finished handshake: mutual is true when the peer presented
// a certificate (which the config verified: weft's configs refuse any
// other), principal is that certificate's SPIFFE ID ("" when none).
func Peer(cs *tls.ConnectionState) (principal string, mutual bool) {
	if cs == nil || !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return "", false
	}
	return SPIFFEID(cs.PeerCertificates[0]), true
}

// Handshake runs c's handshake within timeout (none when 0) and clears the
// deadline afterwards. Errors carry the remote address.
func Handshake(c *tls.Conn, timeout time.Duration) error {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := c.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake with %s: %w", addrOf(c.RemoteAddr()), err)
	}
	return nil
}

func addrOf(a net.Addr) string {
	if a == nil {
		return "?"
	}
	return a.String()
}

// describeSANs lists a certificate's SANs for error messages.
func describeSANs(c *x509.Certificate) string {
	var all []string
	for _, u := range c.URIs {
		all = append(all, "URI:"+u.String())
	}
	for _, n := range c.DNSNames {
		all = append(all, "DNS:"+n)
	}
	for _, ip := range c.IPAddresses {
		all = append(all, "IP:"+ip.String())
	}
	for _, e := range c.EmailAddresses {
		all = append(all, "EMAIL:"+e)
	}
	if len(all) == 0 {
		return "(none)"
	}
	return "[" + strings.Join(all, " ") + "]"
}
