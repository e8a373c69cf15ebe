package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names, as Istio names them.
const (
	// Self-signed layout (LoadOrCreate).
	RootCertFile = "root-cert.pem"
	RootKeyFile  = "root-key.pem"
	// Plug-in layout (LoadPlugin): the signing certificate and key, the
	// trust bundle, and the chain from the signing certificate to the root.
	PluginCertFile  = "ca-cert.pem"
	PluginKeyFile   = "ca-key.pem"
	PluginRootFile  = "root-cert.pem"
	PluginChainFile = "cert-chain.pem"
)

// Options selects and configures a CA for Load.
type Options struct {
	// Dir holds a self-signed root (root-cert.pem, root-key.pem), created
	// on first use. Ignored when CACertsDir is set.
	Dir string
	// CACertsDir, when set, is an Istio plug-in CA directory (ca-cert.pem,
	// ca-key.pem, root-cert.pem, cert-chain.pem) to sign with.
	CACertsDir string
	// TrustDomain names a generated root's organization; default
	// DefaultTrustDomain.
	TrustDomain string
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
}

// Load returns the plug-in CA of o.CACertsDir if set, else the self-signed
// CA of o.Dir, creating it on first use.
func Load(o Options) (*CA, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if o.CACertsDir != "" {
		return loadPlugin(o.CACertsDir, o.Now)
	}
	if o.Dir == "" {
		return nil, errors.New("ca: neither a state directory nor a cacerts directory given")
	}
	return loadOrCreate(o.Dir, o.TrustDomain, o.Now)
}

// LoadOrCreate loads the self-signed root in dir, generating and saving
// one (key 0600, directory 0700) when dir holds none.
func LoadOrCreate(dir, trustDomain string) (*CA, error) {
	return Load(Options{Dir: dir, TrustDomain: trustDomain})
}

// LoadPlugin loads an Istio plug-in CA directory and checks it: ca-cert.pem
// is a CA certificate whose key is ca-key.pem, cert-chain.pem starts with
// it, and it chains to a root of root-cert.pem.
func LoadPlugin(dir string) (*CA, error) { return Load(Options{CACertsDir: dir}) }

func loadOrCreate(dir, trustDomain string, now func() time.Time) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca: create %s: %w", dir, err)
	}
	certPath, keyPath := filepath.Join(dir, RootCertFile), filepath.Join(dir, RootKeyFile)
	certOK, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	switch {
	case certOK && keyOK:
		return loadSelfSigned(certPath, keyPath, now)
	case certOK:
		return nil, fmt.Errorf("ca: %s exists but %s is missing: restore it, or remove both to generate a new root (existing workload certificates then stop being trusted)", certPath, keyPath)
	case keyOK:
		return nil, fmt.Errorf("ca: %s exists but %s is missing: restore it, or remove both to generate a new root", keyPath, certPath)
	}
	cert, key, err := newSelfSigned(trustDomain, now())
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	// The key goes first: a root certificate on disk always has its key.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(certPath, pemCert(cert.Raw), 0o644); err != nil {
		return nil, err
	}
	return &CA{cert: cert, signer: key, roots: []*x509.Certificate{cert}, rootPEM: pemCert(cert.Raw), rootFile: certPath, now: now}, nil
}

func loadSelfSigned(certPath, keyPath string, now func() time.Time) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	c, err := selfSigned(certPath, keyPath, certPEM, keyPEM, now)
	if err != nil {
		return nil, err
	}
	c.rootFile = certPath
	return c, nil
}

// selfSigned checks a self-signed root and its key; certName and keyName
// say where they came from in errors.
func selfSigned(certName, keyName string, certPEM, keyPEM []byte, now func() time.Time) (*CA, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", certName, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("ca: %s: want exactly one certificate, found %d", certName, len(certs))
	}
	cert := certs[0]
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", keyName, err)
	}
	if err := checkSigner(cert, key); err != nil {
		return nil, fmt.Errorf("ca: %s with %s: %w", certName, keyName, err)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("ca: %s: not a self-signed root: %w", certName, err)
	}
	if err := checkValidity(certName, cert, now()); err != nil {
		return nil, err
	}
	return &CA{cert: cert, signer: key, roots: certs, rootPEM: pemCert(cert.Raw), now: now}, nil
}

// PluginPEM is Istio's plug-in CA material held in memory, as the keys of
// Secret istio-system/cacerts hold it.
type PluginPEM struct {
	Cert  []byte // ca-cert.pem: the signing certificate
	Key   []byte // ca-key.pem: its private key
	Root  []byte // root-cert.pem: the trust bundle
	Chain []byte // cert-chain.pem: from the signing certificate to the root
}

// FromPlugin checks and loads plug-in CA material held in memory, with the
// checks LoadPlugin makes; source names it in errors (e.g. "secret
// istio-system/cacerts"). The CA's RootFile is "".
func FromPlugin(source string, p PluginPEM) (*CA, error) {
	return plugin(func(f string) string { return source + " " + f }, p, time.Now)
}

// FromRoot loads a self-signed root and its key held in memory (e.g. the
// keys ca-cert.pem and ca-key.pem of Secret istio-system/istio-ca-secret);
// source names them in errors. The CA's RootFile is "".
func FromRoot(source string, certPEM, keyPEM []byte) (*CA, error) {
	return selfSigned(source+" "+PluginCertFile, source+" "+PluginKeyFile, certPEM, keyPEM, time.Now)
}

// NewRoot generates a self-signed root for trustDomain, as LoadOrCreate
// does, and returns the certificate and key as PEM for a caller that keeps
// them itself (FromRoot loads them).
func NewRoot(trustDomain string) (certPEM, keyPEM []byte, err error) {
	if trustDomain == "" {
		trustDomain = DefaultTrustDomain
	}
	cert, key, err := newSelfSigned(trustDomain, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, fmt.Errorf("ca: %w", err)
	}
	return pemCert(cert.Raw), keyPEM, nil
}

func loadPlugin(dir string, now func() time.Time) (*CA, error) {
	path := func(name string) string { return filepath.Join(dir, name) }
	var p PluginPEM
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{PluginCertFile, &p.Cert}, {PluginKeyFile, &p.Key}, {PluginRootFile, &p.Root}, {PluginChainFile, &p.Chain}} {
		data, err := os.ReadFile(path(f.name))
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		*f.dst = data
	}
	c, err := plugin(path, p, now)
	if err != nil {
		return nil, err
	}
	c.rootFile = path(PluginRootFile)
	return c, nil
}

// plugin checks plug-in material: ca-cert.pem is a CA certificate whose
// key is ca-key.pem, cert-chain.pem starts with it, and it chains to a root
// of root-cert.pem. name turns a file name into what errors call it.
func plugin(name func(string) string, p PluginPEM, now func() time.Time) (*CA, error) {
	certs, err := parseCerts(p.Cert)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", name(PluginCertFile), err)
	}
	cert := certs[0]
	key, err := ParseKey(p.Key)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", name(PluginKeyFile), err)
	}
	if err := checkSigner(cert, key); err != nil {
		return nil, fmt.Errorf("ca: %s with %s: %w", name(PluginCertFile), name(PluginKeyFile), err)
	}
	if err := checkValidity(name(PluginCertFile), cert, now()); err != nil {
		return nil, err
	}
	roots, err := parseCerts(p.Root)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", name(PluginRootFile), err)
	}
	chain, err := parseCerts(p.Chain)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", name(PluginChainFile), err)
	}
	// Peers verify a leaf through the chain sent after it, so the chain
	// must begin with the certificate that signs the leaves.
	if !chain[0].Equal(cert) {
		return nil, fmt.Errorf("ca: %s: the first certificate (subject %q) is not %s (subject %q)",
			name(PluginChainFile), chain[0].Subject, name(PluginCertFile), cert.Subject)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, CurrentTime: now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("ca: %s does not chain to a root of %s through %s: %w",
			name(PluginCertFile), name(PluginRootFile), name(PluginChainFile), err)
	}
	var rootPEM, chainPEM []byte
	for _, r := range roots {
		rootPEM = append(rootPEM, pemCert(r.Raw)...)
	}
	for _, c := range chain {
		chainPEM = append(chainPEM, pemCert(c.Raw)...)
	}
	return &CA{cert: cert, signer: key, chainPEM: chainPEM, roots: roots, rootPEM: rootPEM, now: now}, nil
}

func checkValidity(path string, cert *x509.Certificate, now time.Time) error {
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("ca: %s: certificate expired at %s", path, cert.NotAfter.Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("ca: %s: certificate not valid before %s", path, cert.NotBefore.Format(time.RFC3339))
	}
	return nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("ca: %w", err)
}

// ReadRoots reads a PEM trust bundle, as proxies do with --ca-root.
func ReadRoots(path string) (*x509.CertPool, error) {
	certs, err := readCerts(path)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p, nil
}

// readCerts parses every CERTIFICATE block of a PEM file; at least one.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", path, err)
	}
	return certs, nil
}

// ParseCerts parses every CERTIFICATE block of PEM data; at least one.
func ParseCerts(data []byte) ([]*x509.Certificate, error) { return parseCerts(data) }

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i := 0; ; i++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", i, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	if len(bytes.TrimSpace(data)) != 0 {
		return nil, errors.New("text after the last PEM block is not PEM")
	}
	return out, nil
}

// ParseKey parses one PEM private key: PKCS#8, SEC 1 (EC PRIVATE KEY) or
// PKCS#1 (RSA PRIVATE KEY), ECDSA or RSA.
func ParseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", b.Type, err)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T, want ECDSA or RSA", k)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so a crash never leaves a truncated file; the temporary file
// has mode perm from its creation, so a key is never readable by others.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	return nil
}
