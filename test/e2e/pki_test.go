package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// authority is a certificate authority a test signs client certificates
// with: the mesh's own root (read from the state dir) or a stranger's.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool // the mesh's roots, to verify the server side
}

// meshCA loads the CA `weft up` generated in the mesh's state dir.
func meshCA(t *testing.T, m *mesh) *authority {
	t.Helper()
	dir := filepath.Join(m.dir, ".weft", "ca")
	cert := readPEM(t, filepath.Join(dir, "root-cert.pem"), "CERTIFICATE")
	c, err := x509.ParseCertificate(cert)
	if err != nil {
		t.Fatal(err)
	}
	keyDER := readPEM(t, filepath.Join(dir, "root-key.pem"), "")
	key, err := parseKey(keyDER)
	if err != nil {
		t.Fatalf("root-key.pem: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &authority{cert: c, key: key, pool: pool}
}

func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return x509.ParsePKCS1PrivateKey(der)
}

func readPEM(t *testing.T, path, typ string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || (typ != "" && blk.Type != typ) {
		t.Fatalf("%s: no PEM %s block", path, typ)
	}
	return blk.Bytes
}

// strangerCA is a self-signed CA the mesh has never heard of.
func strangerCA(t *testing.T) *authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{Organization: []string{"not the mesh"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &authority{cert: c, key: key}
}

// clientCert issues a client certificate for SPIFFE ID id.
func (a *authority) clientCert(t *testing.T, id string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		URIs:        []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverCert issues a server certificate for DNS name host.
func (a *authority) serverCert(t *testing.T, host string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{host}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mtlsClient returns an HTTP client that presents cert and, when roots is
// set, checks the server's chain against it (SPIFFE certificates carry no
// DNS name, so the host name is not checked). seen, when set, receives the
// server's leaf certificate of every handshake.
func mtlsClient(cert tls.Certificate, roots *x509.CertPool, seen func(*x509.Certificate)) *http.Client {
	cfg := mtlsConfig(cert, roots, seen)
	// The sidecar speaks TLS on its inbound port; the request itself is
	// plain HTTP inside that connection, so dial TLS for an http:// URL.
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := tls.Client(raw, cfg)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return c, nil
		},
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// mtlsConfig is the client side of a mesh mTLS connection: it presents
// cert and, when roots is set, checks the server's chain against it
// (SPIFFE certificates carry no DNS name, so the host name is not checked).
func mtlsConfig(cert tls.Certificate, roots *x509.CertPool, seen func(*x509.Certificate)) *tls.Config {
	return &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // verified below, without a host name
		NextProtos:         []string{"http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("server sent no certificate")
			}
			if seen != nil {
				seen(cs.PeerCertificates[0])
			}
			if roots == nil {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
	}
}

// issuer mints RS256 JWTs and serves its JWKS.
type issuer struct {
	name string
	kid  string
	key  *rsa.PrivateKey
}

func newIssuer(t *testing.T, name, kid string) *issuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &issuer{name: name, kid: kid, key: k}
}

// jwks is the issuer's key set as JSON.
func (is *issuer) jwks() string {
	b64 := base64.RawURLEncoding.EncodeToString
	e := big.NewInt(int64(is.key.E)).Bytes()
	doc := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": is.kid,
		"n": b64(is.key.N.Bytes()), "e": b64(e),
	}}}
	b, _ := json.Marshal(doc)
	return string(b)
}

// token signs claims (iss defaults to the issuer's name, exp to an hour
// ahead) with key, or with the issuer's own key when key is nil.
func (is *issuer) token(t *testing.T, claims map[string]any, key *rsa.PrivateKey) string {
	t.Helper()
	if key == nil {
		key = is.key
	}
	c := map[string]any{"iss": is.name, "sub": "user-1", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for k, v := range claims {
		c[k] = v
	}
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": is.kid})
	p, _ := json.Marshal(c)
	b64 := base64.RawURLEncoding.EncodeToString
	signing := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64(sig)
}
