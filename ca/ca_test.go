package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testID = "spiffe://cluster.local/ns/shop/sa/catalog"

// verifySVID checks s the way a peer does: the leaf, with the chain sent
// after it as intermediates, must verify against roots for both TLS uses
// and carry id as its only URI SAN; the key must match the leaf.
func verifySVID(t *testing.T, s *SVID, roots *x509.CertPool, id string) *x509.Certificate {
	t.Helper()
	certs, err := ParseCerts(s.CertChainPEM)
	if err != nil {
		t.Fatalf("chain: %v", err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Fatalf("verify leaf for %v: %v", u, err)
		}
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
		t.Fatalf("URI SANs %v, want [%s]", leaf.URIs, id)
	}
	if leaf.IsCA {
		t.Fatal("leaf is a CA")
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("leaf key %T, want ECDSA", leaf.PublicKey)
	}
	if _, err := tls.X509KeyPair(s.CertChainPEM, s.KeyPEM); err != nil {
		t.Fatalf("key does not match the leaf: %v", err)
	}
	if !leaf.NotBefore.Equal(s.NotBefore) || !leaf.NotAfter.Equal(s.NotAfter) {
		t.Fatalf("SVID validity %v..%v, certificate %v..%v", s.NotBefore, s.NotAfter, leaf.NotBefore, leaf.NotAfter)
	}
	return leaf
}

func TestSelfSignedCreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	c, err := LoadOrCreate(dir, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{".": 0o700, RootKeyFile: 0o600, RootCertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", name, got, want)
		}
	}
	if c.RootFile() != filepath.Join(dir, RootCertFile) {
		t.Errorf("RootFile %s", c.RootFile())
	}
	root := c.Certificate()
	if !root.IsCA || root.Subject.Organization[0] != "example.org" {
		t.Errorf("root %v CA=%v", root.Subject, root.IsCA)
	}
	if k, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("root key %T, want ECDSA P-256", root.PublicKey)
	}

	// Issued between begin and end; certificate times are whole seconds.
	begin := time.Now()
	s, err := c.Issue(testID, 10*time.Minute)
	end := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifySVID(t, s, c.Roots(), testID)
	within := func(v, from, to time.Time) bool {
		return !v.Before(from.Add(-time.Second)) && !v.After(to.Add(time.Second))
	}
	if !within(leaf.NotBefore, begin.Add(-Backdate), end.Add(-Backdate)) {
		t.Errorf("NotBefore %v, want %v before issuing (between %v and %v)", leaf.NotBefore, Backdate, begin, end)
	}
	if !within(leaf.NotAfter, begin.Add(10*time.Minute), end.Add(10*time.Minute)) {
		t.Errorf("NotAfter %v, want 10m after issuing (between %v and %v)", leaf.NotAfter, begin, end)
	}
	if certs, _ := ParseCerts(s.CertChainPEM); len(certs) != 1 {
		t.Errorf("a self-signed CA sends %d certificates, want the leaf alone", len(certs))
	}

	// The second start reuses the same root, and the first one's SVIDs
	// stay valid under it.
	c2, err := LoadOrCreate(dir, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Certificate().Equal(root) || !bytes.Equal(c2.RootPEM(), c.RootPEM()) {
		t.Fatal("reload generated a new root")
	}
	verifySVID(t, s, c2.Roots(), testID)
	s2, err := c2.Issue(testID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	verifySVID(t, s2, c.Roots(), testID)
}

func TestForgedCertificateRejected(t *testing.T) {
	mesh, err := LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	forged, err := other.Issue(testID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certs, _ := ParseCerts(forged.CertChainPEM)
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: mesh.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Fatal("a certificate from another CA verified against the mesh root")
	}
}

func TestIssueRejectsBadInput(t *testing.T) {
	c, err := LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{
		"", "catalog", "https://cluster.local/ns/a/sa/b", "spiffe:///ns/a/sa/b", "spiffe://cluster.local",
		"spiffe://cluster.local/", "spiffe://cluster.local:8080/ns/a", "spiffe://cluster.local/ns//sa/b",
		"spiffe://cluster.local/ns/a?x=1", "spiffe://u@cluster.local/ns/a", "spiffe://cluster.local/ns/a#f",
	} {
		if _, err := c.Issue(id, time.Hour); err == nil {
			t.Errorf("Issue(%q) accepted", id)
		}
	}
	if _, err := c.Issue(testID, 0); err == nil {
		t.Error("Issue with ttl 0 accepted")
	}
	if got := SPIFFEID("td", "ns1", "sa1"); got != "spiffe://td/ns/ns1/sa/sa1" {
		t.Errorf("SPIFFEID = %s", got)
	}
}

func TestLifetimeCappedAtCAExpiry(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir, ""); err != nil {
		t.Fatal(err)
	}
	c, err := loadOrCreate(dir, "", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	end := c.Certificate().NotAfter
	c.now = func() time.Time { return end.Add(-time.Hour) }
	s, err := c.Issue(testID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !s.NotAfter.Equal(end) {
		t.Errorf("NotAfter %v, want the CA's %v", s.NotAfter, end)
	}
	c.now = func() time.Time { return end.Add(time.Second) }
	if _, err := c.Issue(testID, time.Hour); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("issuing after the CA expired: %v", err)
	}
}

func TestSelfSignedPartialState(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir, ""); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, RootKeyFile))
	os.Remove(filepath.Join(dir, RootKeyFile))
	if _, err := LoadOrCreate(dir, ""); err == nil || !strings.Contains(err.Error(), RootKeyFile) {
		t.Fatalf("root without key: %v", err)
	}
	os.WriteFile(filepath.Join(dir, RootKeyFile), key, 0o600)
	os.Remove(filepath.Join(dir, RootCertFile))
	if _, err := LoadOrCreate(dir, ""); err == nil || !strings.Contains(err.Error(), RootCertFile) {
		t.Fatalf("key without root: %v", err)
	}
	// A key of another root next to the certificate.
	other := t.TempDir()
	if _, err := LoadOrCreate(other, ""); err != nil {
		t.Fatal(err)
	}
	cert, _ := os.ReadFile(filepath.Join(other, RootCertFile))
	os.WriteFile(filepath.Join(dir, RootCertFile), cert, 0o644)
	if _, err := LoadOrCreate(dir, ""); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched key: %v", err)
	}
	os.WriteFile(filepath.Join(dir, RootCertFile), []byte("not pem"), 0o644)
	if _, err := LoadOrCreate(dir, ""); err == nil || !strings.Contains(err.Error(), RootCertFile) {
		t.Fatalf("garbage root: %v", err)
	}
}

// pki builds certificates for plug-in tests.
type pki struct {
	t *testing.T
}

func (p pki) cert(tmpl *x509.Certificate, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	p.t.Helper()
	sn, _ := serial()
	tmpl.SerialNumber = sn
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyPEM(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	t.Fatalf("key %T", k)
	return nil
}

// pluginDir writes root -> intermediate -> ca-cert, Istio's layout with an
// RSA root and intermediate and an ECDSA signing CA.
func pluginDir(t *testing.T) (dir string, root *x509.Certificate) {
	t.Helper()
	p := pki{t}
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	root = p.cert(caTemplate("Root CA"), nil, &rootKey.PublicKey, rootKey)
	interKey := ecKey(t)
	inter := p.cert(caTemplate("Intermediate CA"), root, &interKey.PublicKey, rootKey)
	caKey := ecKey(t)
	caCert := p.cert(caTemplate("weft plug-in CA"), inter, &caKey.PublicKey, interKey)

	dir = t.TempDir()
	write := func(name string, data ...[]byte) {
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Join(data, nil), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(PluginCertFile, pemCert(caCert.Raw))
	write(PluginKeyFile, keyPEM(t, caKey))
	write(PluginRootFile, pemCert(root.Raw))
	write(PluginChainFile, pemCert(caCert.Raw), pemCert(inter.Raw), pemCert(root.Raw))
	return dir, root
}

func TestPluginRoundTrip(t *testing.T) {
	dir, root := pluginDir(t)
	c, err := Load(Options{CACertsDir: dir, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if c.RootFile() != filepath.Join(dir, PluginRootFile) {
		t.Errorf("RootFile %s", c.RootFile())
	}
	s, err := c.Issue(testID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A peer trusting only the user's root verifies the leaf through the
	// chain sent after it.
	pool := x509.NewCertPool()
	pool.AddCert(root)
	verifySVID(t, s, pool, testID)
	if certs, _ := ParseCerts(s.CertChainPEM); len(certs) != 4 {
		t.Errorf("leaf + cert-chain.pem = %d certificates, want 4", len(certs))
	}
	if !bytes.Equal(c.RootPEM(), pemCert(root.Raw)) {
		t.Error("RootPEM is not root-cert.pem")
	}
}

func TestPluginBadFiles(t *testing.T) {
	p := pki{t}
	cases := map[string]struct {
		edit func(t *testing.T, dir string)
		want string
	}{
		"missing key":   {func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, PluginKeyFile)) }, PluginKeyFile},
		"missing chain": {func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, PluginChainFile)) }, PluginChainFile},
		"garbage cert": {func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, PluginCertFile), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
		}, PluginCertFile},
		"key of another CA": {func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, PluginKeyFile), keyPEM(t, ecKey(t)), 0o600)
		}, "does not match"},
		"not a CA": {func(t *testing.T, dir string) {
			k := ecKey(t)
			leaf := p.cert(&x509.Certificate{Subject: pkix.Name{CommonName: "leaf"}}, nil, &k.PublicKey, k)
			os.WriteFile(filepath.Join(dir, PluginCertFile), pemCert(leaf.Raw), 0o600)
			os.WriteFile(filepath.Join(dir, PluginKeyFile), keyPEM(t, k), 0o600)
		}, "not a CA"},
		"chain starts elsewhere": {func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, PluginChainFile))
			certs, _ := ParseCerts(b)
			os.WriteFile(filepath.Join(dir, PluginChainFile), append(pemCert(certs[1].Raw), pemCert(certs[2].Raw)...), 0o600)
		}, PluginChainFile},
		"other root": {func(t *testing.T, dir string) {
			k := ecKey(t)
			other := p.cert(caTemplate("Other Root"), nil, &k.PublicKey, k)
			os.WriteFile(filepath.Join(dir, PluginRootFile), pemCert(other.Raw), 0o600)
		}, "does not chain"},
		"key is a certificate": {func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, PluginCertFile))
			os.WriteFile(filepath.Join(dir, PluginKeyFile), b, 0o600)
		}, PluginKeyFile},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir, _ := pluginDir(t)
			tc.edit(t, dir)
			_, err := LoadPlugin(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestPluginSingleTierAndRSAKey(t *testing.T) {
	// The root itself as the signing CA, with an RSA key.
	p := pki{t}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	root := p.cert(caTemplate("Root"), nil, &k.PublicKey, k)
	dir := t.TempDir()
	for name, data := range map[string][]byte{PluginCertFile: pemCert(root.Raw), PluginKeyFile: keyPEM(t, k),
		PluginRootFile: pemCert(root.Raw), PluginChainFile: pemCert(root.Raw)} {
		os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
	c, err := LoadPlugin(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Issue(testID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	verifySVID(t, s, c.Roots(), testID)
}

func TestServerCertHandshakeAndRenewal(t *testing.T) {
	c, err := LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cpID := SPIFFEID("cluster.local", "istio-system", "weft-controlplane")
	sc, err := c.NewServerCert([]string{"127.0.0.1", "localhost"}, []string{cpID}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", sc.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.(*tls.Conn).Handshake()
				io.Copy(io.Discard, conn)
			}()
		}
	}()
	handshake := func(name string, roots *x509.CertPool) (*x509.Certificate, error) {
		cfg := ClientTLS(roots)
		cfg.ServerName = name
		cfg.Time = c.now // the client's clock moves with the CA's
		conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	first, err := handshake("127.0.0.1", c.Roots())
	if err != nil {
		t.Fatal(err)
	}
	if len(first.URIs) != 1 || first.URIs[0].String() != cpID {
		t.Errorf("server URI SANs %v", first.URIs)
	}
	if _, err := handshake("localhost", c.Roots()); err != nil {
		t.Errorf("DNS SAN: %v", err)
	}
	if _, err := handshake("example.com", c.Roots()); err == nil {
		t.Error("a name not in the SANs verified")
	}
	other, _ := LoadOrCreate(t.TempDir(), "")
	if _, err := handshake("127.0.0.1", other.Roots()); err == nil {
		t.Error("the server verified against another root")
	}
	// Before half its lifetime the certificate is reused; after, renewed.
	mu.Lock()
	now = now.Add(20 * time.Minute)
	mu.Unlock()
	again, err := handshake("127.0.0.1", c.Roots())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(20 * time.Minute)
	mu.Unlock()
	renewed, err := handshake("127.0.0.1", c.Roots())
	if err != nil {
		t.Fatal(err)
	}
	if !again.Equal(first) || renewed.Equal(first) {
		t.Errorf("renewal: at 20m same=%v, at 40m same=%v; want true, false", again.Equal(first), renewed.Equal(first))
	}
	if _, err := c.NewServerCert(nil, nil, time.Hour); err == nil {
		t.Error("a server certificate without names")
	}
	if _, err := c.NewServerCert([]string{"x"}, []string{"http://x"}, time.Hour); err == nil {
		t.Error("a server certificate with a bad SPIFFE ID")
	}
}

func TestRedact(t *testing.T) {
	c, err := LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Issue(testID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sec := CertificateSecret(SecretDefault, s)
	red := Redact(sec)
	if got := red.GetTlsCertificate().GetPrivateKey().GetInlineString(); got != Redacted {
		t.Errorf("redacted key = %q", got)
	}
	if len(red.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) != 0 {
		t.Error("inline key bytes left")
	}
	if !bytes.Equal(red.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), s.CertChainPEM) {
		t.Error("certificate chain not kept")
	}
	if !bytes.Equal(sec.GetTlsCertificate().GetPrivateKey().GetInlineBytes(), s.KeyPEM) {
		t.Error("Redact modified its input")
	}
	root := RootSecret(SecretRoot, c.RootPEM())
	if r := Redact(root); !bytes.Equal(r.GetValidationContext().GetTrustedCa().GetInlineBytes(), c.RootPEM()) {
		t.Error("the trust bundle was redacted")
	}
	if bytes.Contains([]byte(red.String()), []byte("PRIVATE KEY")) {
		t.Error("redacted secret still prints a private key")
	}
}

func TestSPIFFEIDDefaults(t *testing.T) {
	for _, tc := range []struct{ td, ns, sa, want string }{
		{"", "default", "", "spiffe://cluster.local/ns/default/sa/default"},
		{"example.org", "istio-system", "istio-ingressgateway-service-account", "spiffe://example.org/ns/istio-system/sa/istio-ingressgateway-service-account"},
	} {
		if got := SPIFFEID(tc.td, tc.ns, tc.sa); got != tc.want {
			t.Errorf("SPIFFEID(%q, %q, %q) = %q, want %q", tc.td, tc.ns, tc.sa, got, tc.want)
		}
	}
}

// TestFromMemory loads the CA material a Kubernetes Secret holds: a
// generated root (NewRoot, FromRoot) and plug-in material (FromPlugin),
// with errors naming the source and key.
func TestFromMemory(t *testing.T) {
	certPEM, keyPEM, err := NewRoot("example.org")
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromRoot("secret ns/istio-ca-secret", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if c.RootFile() != "" || !bytes.Equal(c.RootPEM(), certPEM) || c.Certificate().Subject.Organization[0] != "example.org" {
		t.Errorf("root CA: file %q, subject %v", c.RootFile(), c.Certificate().Subject)
	}
	s, err := c.Issue(testID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	verifySVID(t, s, c.Roots(), testID)
	otherCert, _, err := NewRoot("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromRoot("secret ns/istio-ca-secret", otherCert, keyPEM); err == nil ||
		!strings.Contains(err.Error(), "secret ns/istio-ca-secret ca-cert.pem with secret ns/istio-ca-secret ca-key.pem") {
		t.Errorf("mismatched key: %v", err)
	}

	dir, root := pluginDir(t)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p := PluginPEM{Cert: read(PluginCertFile), Key: read(PluginKeyFile), Root: read(PluginRootFile), Chain: read(PluginChainFile)}
	pc, err := FromPlugin("secret ns/cacerts", p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pc.RootPEM(), pemCert(root.Raw)) || pc.RootFile() != "" {
		t.Error("plug-in RootPEM is not root-cert.pem")
	}
	p.Chain = read(PluginRootFile)
	if _, err := FromPlugin("secret ns/cacerts", p); err == nil || !strings.Contains(err.Error(), "secret ns/cacerts cert-chain.pem") {
		t.Errorf("bad chain: %v", err)
	}
}

func TestSplitSPIFFEID(t *testing.T) {
	td, ns, sa, err := SplitSPIFFEID("spiffe://cluster.local/ns/shop/sa/cart")
	if err != nil || td != "cluster.local" || ns != "shop" || sa != "cart" {
		t.Errorf("got %q %q %q %v", td, ns, sa, err)
	}
	for _, bad := range []string{"spiffe://cluster.local/ns/shop", "spiffe://cluster.local/x/shop/sa/cart", "https://a/ns/b/sa/c", "spiffe://cluster.local/ns/shop/sa/cart/extra"} {
		if _, _, _, err := SplitSPIFFEID(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
