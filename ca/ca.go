// Package ca is the mesh's certificate authority: it holds the signing key
// and issues the short-lived X.509 SVIDs that carry workloads' SPIFFE
// identities, plus the control plane's own serving certificate.
//
// The CA either lives in a state directory, where a self-signed root is
// generated on first start and reused afterwards (LoadOrCreate), or comes
// from Istio's plug-in "cacerts" layout supplied by the user (LoadPlugin).
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// Defaults and fixed parameters of issued certificates.
const (
	// DefaultTrustDomain is the SPIFFE trust domain when none is configured.
	DefaultTrustDomain = "cluster.local"
	// DefaultCertTTL is the lifetime of a workload certificate.
	DefaultCertTTL = time.Hour
	// Backdate is subtracted from NotBefore so peers whose clocks lag a
	// little still accept a fresh certificate.
	Backdate = time.Minute
	// RootTTL is the validity of a generated self-signed root.
	RootTTL = 10 * 365 * 24 * time.Hour
)

// SVID is an issued X.509 SPIFFE verifiable identity document.
type SVID struct {
	// ID is the SPIFFE ID in the certificate's URI SAN.
	ID string
	// CertChainPEM is the leaf certificate followed by the CA's chain up
	// to (and, for plug-in CAs, including) the root, PEM encoded.
	CertChainPEM []byte
	// KeyPEM is the leaf's private key (PKCS#8, PEM). Never log it.
	KeyPEM []byte
	// NotBefore and NotAfter bound the leaf's validity.
	NotBefore, NotAfter time.Time
}

// CA signs certificates. It is safe for concurrent use.
type CA struct {
	cert     *x509.Certificate // the signing certificate
	signer   crypto.Signer
	chainPEM []byte // sent after every leaf; empty for a self-signed root
	roots    []*x509.Certificate
	rootPEM  []byte
	// rootFile is the PEM file holding the roots, for proxies on this host.
	rootFile string
	now      func() time.Time
}

// RootPEM returns the trust bundle (the root certificates, PEM) peers
// verify SVIDs against.
func (c *CA) RootPEM() []byte { return append([]byte(nil), c.rootPEM...) }

// RootFile returns the path of the file holding RootPEM.
func (c *CA) RootFile() string { return c.rootFile }

// Roots returns the root certificates as a fresh pool.
func (c *CA) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	for _, r := range c.roots {
		p.AddCert(r)
	}
	return p
}

// Certificate returns the signing certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// DefaultServiceAccount is a workload's service account when none is
// given, as in Kubernetes.
const DefaultServiceAccount = "default"

// SPIFFEID returns spiffe://TRUST-DOMAIN/ns/NS/sa/SA, with
// DefaultTrustDomain and DefaultServiceAccount for empty ones: the one
// place the mesh spells an identity (the CA issuing it, translate naming
// the SANs a client expects, telemetry labelling principals).
func SPIFFEID(trustDomain, ns, sa string) string {
	if trustDomain == "" {
		trustDomain = DefaultTrustDomain
	}
	if sa == "" {
		sa = DefaultServiceAccount
	}
	return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa
}

// ParseSPIFFEID checks that id is a SPIFFE ID (spiffe://DOMAIN/PATH, no
// query, fragment or user info) and returns it parsed.
func ParseSPIFFEID(id string) (*url.URL, error) {
	u, err := url.Parse(id)
	if err != nil {
		return nil, fmt.Errorf("SPIFFE ID %q: %w", id, err)
	}
	switch {
	case u.Scheme != "spiffe":
		return nil, fmt.Errorf("SPIFFE ID %q: scheme must be spiffe", id)
	case u.Host == "" || strings.ContainsAny(u.Host, ":"):
		return nil, fmt.Errorf("SPIFFE ID %q: want a trust domain without a port", id)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, fmt.Errorf("SPIFFE ID %q: no user info, query or fragment allowed", id)
	case u.Path == "" || u.Path == "/" || strings.HasSuffix(u.Path, "/") || strings.Contains(u.Path, "//"):
		return nil, fmt.Errorf("SPIFFE ID %q: want a non-empty path without empty segments", id)
	}
	return u, nil
}

// SplitSPIFFEID parses a workload identity spiffe://TD/ns/NS/sa/SA into its
// trust domain, namespace and service account.
func SplitSPIFFEID(id string) (trustDomain, ns, sa string, err error) {
	u, err := ParseSPIFFEID(id)
	if err != nil {
		return "", "", "", err
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" {
		return "", "", "", fmt.Errorf("SPIFFE ID %q: want spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT", id)
	}
	return u.Host, parts[1], parts[3], nil
}

// Issue signs a fresh ECDSA P-256 leaf for the SPIFFE ID id, valid from a
// minute ago (Backdate) for ttl, but never past the CA's own expiry. The
// leaf serves as both TLS client and server certificate.
func (c *CA) Issue(id string, ttl time.Duration) (*SVID, error) {
	u, err := ParseSPIFFEID(id)
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("issue %s: ttl %v must be positive", id, ttl)
	}
	tmpl := &x509.Certificate{
		URIs:        []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	chain, key, err := c.sign(tmpl, ttl)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", id, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", id, err)
	}
	return &SVID{ID: id, CertChainPEM: chain, KeyPEM: keyPEM, NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter}, nil
}

// sign fills tmpl's serial, validity and key, signs it, and returns the
// leaf followed by the CA chain (PEM) and the new private key.
func (c *CA) sign(tmpl *x509.Certificate, ttl time.Duration) ([]byte, *ecdsa.PrivateKey, error) {
	now := c.now()
	if !now.Before(c.cert.NotAfter) {
		return nil, nil, fmt.Errorf("the CA certificate expired at %s", c.cert.NotAfter.Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	if tmpl.SerialNumber, err = serial(); err != nil {
		return nil, nil, err
	}
	// Certificates carry whole seconds: round the end up, so a leaf lives
	// at least ttl and a renewal at half of it is never due at once.
	tmpl.NotBefore = now.Add(-Backdate).Truncate(time.Second)
	tmpl.NotAfter = now.Add(ttl + time.Second - 1).Truncate(time.Second)
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter
	}
	if tmpl.NotBefore.Before(c.cert.NotBefore) {
		tmpl.NotBefore = c.cert.NotBefore
	}
	tmpl.BasicConstraintsValid = true
	if tmpl.SubjectKeyId, err = keyID(&key.PublicKey); err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.signer)
	if err != nil {
		return nil, nil, fmt.Errorf("sign: %w", err)
	}
	out := pemCert(der)
	out = append(out, c.chainPEM...)
	return out, key, nil
}

// serial returns a random positive 128-bit serial number, as RFC 5280
// allows up to 20 octets and unpredictable serials are recommended.
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// keyID is the RFC 5280 method-1 key identifier: SHA-1 of the public key bits.
func keyID(pub *ecdsa.PublicKey) ([]byte, error) {
	k, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("key id: %w", err)
	}
	sum := sha1.Sum(k.Bytes())
	return sum[:], nil
}

// newSelfSigned generates a root CA for trustDomain.
func newSelfSigned(trustDomain string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate root key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	ski, err := keyID(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{trustDomain}, CommonName: "weft root CA"},
		NotBefore:             now.Add(-Backdate).Truncate(time.Second),
		NotAfter:              now.Add(RootTTL).Truncate(time.Second),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("self-sign root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new root: %w", err)
	}
	return cert, key, nil
}

// checkSigner verifies that cert can sign certificates with key.
func checkSigner(cert *x509.Certificate, key crypto.Signer) error {
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return errors.New("not a CA certificate (basicConstraints CA:TRUE missing)")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("key usage lacks certificate signing (keyCertSign)")
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return errors.New("the private key does not match the certificate's public key")
	}
	return nil
}
