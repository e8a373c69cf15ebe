package ca

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// SDS secret names of the security contract, as Istio names them.
const (
	// SecretDefault is the workload's certificate chain and private key.
	SecretDefault = "default"
	// SecretRoot is the mesh trust bundle peers are verified against.
	SecretRoot = "ROOTCA"
)

// Redacted replaces secret material wherever resources are shown.
const Redacted = "[redacted]"

// CertificateSecret returns the SDS secret carrying s as
// tls_certificate{certificate_chain, private_key}, inline.
func CertificateSecret(name string, s *SVID) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inlineBytes(s.CertChainPEM),
		PrivateKey:       inlineBytes(s.KeyPEM),
	}}}
}

// RootSecret returns the SDS secret carrying the trust bundle as
// validation_context.trusted_ca, inline.
func RootSecret(name string, rootPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inlineBytes(rootPEM),
	}}}
}

func inlineBytes(b []byte) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: append([]byte(nil), b...)}}
}

// Redact returns a copy of s in which every inline secret value (private
// keys, key passwords, PKCS#12 bundles, session ticket keys, generic
// secrets) reads Redacted; certificates and file names are kept. s itself
// is not modified.
func Redact(s *tlsv3.Secret) *tlsv3.Secret {
	out := proto.Clone(s).(*tlsv3.Secret)
	if c := out.GetTlsCertificate(); c != nil {
		c.PrivateKey = redact(c.PrivateKey)
		c.Password = redact(c.Password)
		c.Pkcs12 = redact(c.Pkcs12)
	}
	if k := out.GetSessionTicketKeys(); k != nil {
		for i := range k.Keys {
			k.Keys[i] = redact(k.Keys[i])
		}
	}
	if g := out.GetGenericSecret(); g != nil {
		g.Secret = redact(g.Secret)
		for n, d := range g.Secrets {
			g.Secrets[n] = redact(d)
		}
	}
	return out
}

// redact replaces inline data; a file or environment variable reference
// shows where the secret lives, not the secret, so it stays.
func redact(d *core.DataSource) *core.DataSource {
	switch d.GetSpecifier().(type) {
	case *core.DataSource_InlineBytes, *core.DataSource_InlineString:
		return &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: Redacted}}
	}
	return d
}
