package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"
)

// ServerCert is a TLS serving certificate signed by the CA and renewed
// at half its lifetime, for the control plane's own listeners.
type ServerCert struct {
	ca    *CA
	tmpl  x509.Certificate // SANs only; copied for every issue
	ttl   time.Duration
	mu    sync.Mutex
	cur   *tls.Certificate
	renew time.Time
}

// NewServerCert returns a serving certificate source for the given hosts
// (IP addresses or DNS names) and SPIFFE IDs, issuing the first
// certificate now so a bad name fails at once.
func (c *CA) NewServerCert(hosts, ids []string, ttl time.Duration) (*ServerCert, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("server certificate: ttl %v must be positive", ttl)
	}
	s := &ServerCert{ca: c, ttl: ttl}
	for _, h := range hosts {
		switch ip := net.ParseIP(h); {
		case ip != nil:
			s.tmpl.IPAddresses = append(s.tmpl.IPAddresses, ip)
		case h == "":
			return nil, errors.New("server certificate: empty host name")
		default:
			s.tmpl.DNSNames = append(s.tmpl.DNSNames, h)
		}
	}
	for _, id := range ids {
		u, err := ParseSPIFFEID(id)
		if err != nil {
			return nil, fmt.Errorf("server certificate: %w", err)
		}
		s.tmpl.URIs = append(s.tmpl.URIs, u)
	}
	if len(s.tmpl.IPAddresses)+len(s.tmpl.DNSNames)+len(s.tmpl.URIs) == 0 {
		return nil, errors.New("server certificate: no host or SPIFFE ID to name")
	}
	if _, err := s.get(); err != nil {
		return nil, err
	}
	return s, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *ServerCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.get() }

// TLSConfig returns a server configuration serving this certificate.
func (s *ServerCert) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.GetCertificate, NextProtos: []string{"h2"}}
}

func (s *ServerCert) get() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.ca.now()
	if s.cur != nil && now.Before(s.renew) {
		return s.cur, nil
	}
	tmpl := s.tmpl
	tmpl.DNSNames = append([]string(nil), s.tmpl.DNSNames...)
	tmpl.IPAddresses = append([]net.IP(nil), s.tmpl.IPAddresses...)
	tmpl.URIs = append([]*url.URL(nil), s.tmpl.URIs...)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	chainPEM, key, err := s.ca.sign(&tmpl, s.ttl)
	if err != nil {
		if s.cur != nil && now.Before(s.cur.Leaf.NotAfter) {
			return s.cur, nil // keep serving the valid one; renewal retries on the next handshake
		}
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	s.cur = &cert
	s.renew = tmpl.NotBefore.Add(tmpl.NotAfter.Sub(tmpl.NotBefore) / 2)
	return s.cur, nil
}

// ClientTLS returns a client configuration that trusts only roots, for
// proxies dialing the control plane (server name from the dialed address).
func ClientTLS(roots *x509.CertPool) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
}
