// Package sds holds the proxy's SDS secrets: it validates and parses the
// envoy.extensions.transport_sockets.tls.v3.Secret resources the control
// plane pushes on the ADS stream ("default", the workload's certificate and
// key; "ROOTCA", the mesh trust bundle) and keeps the current ones in a Store
// that outlives configuration swaps. TLS handshakes read a secret through
// its Ref at handshake time, so a rotated certificate is used by the next
// handshake without rebuilding listeners or transports.
package sds

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weft-mesh/weft/proxy/contract"
)

// Secret names of the weft contract (Istio's).
const (
	// DefaultName is the workload's certificate chain and private key.
	DefaultName = "default"
	// RootCAName is the mesh's trust bundle.
	RootCAName = "ROOTCA"
)

// TypeURL is the xDS type of Secret resources.
const TypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// Secret is a validated, parsed SDS secret. Exactly one of Certificate and
// Roots is set. It is immutable.
type Secret struct {
	// Name is the secret's resource name.
	Name string
	// Certificate is a tls_certificate secret: the chain (leaf first, Leaf
	// parsed) and its private key.
	Certificate *tls.Certificate
	// Roots is a validation_context secret: the trusted CA certificates.
	Roots *x509.CertPool
}

// Parse validates s and parses its certificate and key or its trusted CAs.
// Errors name the secret and the field. Private keys are accepted only as
// inline_bytes: a secret pushed over xDS never names files.
func Parse(s *tlsv3.Secret) (*Secret, error) {
	out, err := parse(s)
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", s.GetName(), err)
	}
	return out, nil
}

func parse(s *tlsv3.Secret) (*Secret, error) {
	if err := contract.CheckFields(s, "name", "tls_certificate", "validation_context"); err != nil {
		return nil, err
	}
	if s.GetName() == "" {
		return nil, errors.New("name: empty")
	}
	out := &Secret{Name: s.GetName()}
	switch t := s.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		c, err := Certificate(t.TlsCertificate, false)
		if err != nil {
			return nil, fmt.Errorf("tls_certificate.%w", err)
		}
		out.Certificate = c
	case *tlsv3.Secret_ValidationContext:
		vc := t.ValidationContext
		if err := contract.CheckFields(vc, "trusted_ca"); err != nil {
			return nil, fmt.Errorf("validation_context.%w", err)
		}
		pool, err := TrustedCA(vc.GetTrustedCa(), false)
		if err != nil {
			return nil, fmt.Errorf("validation_context.trusted_ca.%w", err)
		}
		out.Roots = pool
	default:
		return nil, errors.New("type: one of tls_certificate, validation_context required")
	}
	return out, nil
}

// Certificate parses a TlsCertificate's chain and key. With allowFiles,
// both may be given as filename (read now); otherwise the chain is
// inline_bytes or inline_string and the key inline_bytes. Errors name the
// field relative to the TlsCertificate.
func Certificate(tc *tlsv3.TlsCertificate, allowFiles bool) (*tls.Certificate, error) {
	if err := contract.CheckFields(tc, "certificate_chain", "private_key"); err != nil {
		return nil, err
	}
	chain, err := Data(tc.GetCertificateChain(), allowFiles, true)
	if err != nil {
		return nil, fmt.Errorf("certificate_chain.%w", err)
	}
	key, err := Data(tc.GetPrivateKey(), allowFiles, false)
	if err != nil {
		return nil, fmt.Errorf("private_key.%w", err)
	}
	if _, err := certificates(chain); err != nil {
		return nil, fmt.Errorf("certificate_chain: %w", err)
	}
	c, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	return &c, nil
}

// TrustedCA parses a PEM bundle of CA certificates into a pool. With
// allowFiles it may be a filename (read now). Errors name the field
// relative to the DataSource.
func TrustedCA(ds *corev3.DataSource, allowFiles bool) (*x509.CertPool, error) {
	b, err := Data(ds, allowFiles, true)
	if err != nil {
		return nil, err
	}
	pool, err := ParsePool(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dataField(ds), err)
	}
	return pool, nil
}

// ParsePool parses a PEM bundle of CA certificates into a pool; anything
// but CERTIFICATE blocks is an error.
func ParsePool(b []byte) (*x509.CertPool, error) {
	certs, err := certificates(b)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// Data returns a DataSource's bytes: inline_bytes, inline_string when
// inlineString, or (with allowFiles) the contents of filename. Errors name
// the field.
func Data(ds *corev3.DataSource, allowFiles, inlineString bool) ([]byte, error) {
	if ds == nil {
		return nil, errors.New("specifier: required")
	}
	if err := contract.CheckFields(ds, "filename", "inline_bytes", "inline_string"); err != nil {
		return nil, err
	}
	var b []byte
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		b = s.InlineBytes
	case *corev3.DataSource_InlineString:
		if !inlineString {
			return nil, errors.New("inline_string: not supported here, use inline_bytes")
		}
		b = []byte(s.InlineString)
	case *corev3.DataSource_Filename:
		if !allowFiles {
			return nil, errors.New("filename: not supported here, use inline_bytes")
		}
		var err error
		if b, err = os.ReadFile(s.Filename); err != nil {
			return nil, fmt.Errorf("filename: %w", err)
		}
	default:
		return nil, errors.New("specifier: one of inline_bytes, filename required")
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s: empty", dataField(ds))
	}
	return b, nil
}

// dataField names the DataSource field that is set.
func dataField(ds *corev3.DataSource) string {
	switch ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		return "inline_string"
	case *corev3.DataSource_Filename:
		return "filename"
	}
	return "inline_bytes"
}

// certificates parses every CERTIFICATE block of a PEM bundle; other block
// types are an error (a key pasted into a chain must not pass silently).
func certificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i := 0; ; i++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d: type %q, want CERTIFICATE", i, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}
