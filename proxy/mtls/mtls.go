// Package mtls turns the TLS transport sockets of the weft xDS contract
// (envoy.transport_sockets.tls with a DownstreamTlsContext on listeners, an
// UpstreamTlsContext on clusters) into crypto/tls configurations. Mesh
// certificates come from SDS secrets read at handshake time through an
// sds.Store, so rotation needs no rebuild; peers are verified against the
// trust bundle and, for mesh traffic, must carry a SPIFFE ID (a
// spiffe:// URI SAN).
package mtls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/sds"
)

// Names of the transport sockets and the listener filter the contract uses.
const (
	TransportSocketTLS = "envoy.transport_sockets.tls"
	TransportSocketRaw = "envoy.transport_sockets.raw_buffer"
	TLSInspector       = "envoy.filters.listener.tls_inspector"
)

// SecretRef is one SDS secret a TLS context needs.
type SecretRef struct {
	// Name is the secret's name, e.g. "default".
	Name string
	// Roots is true for a validation context, false for a certificate.
	Roots bool
	// Field is the referring field, relative to the transport socket.
	Field string
}

// Downstream is a validated DownstreamTlsContext: what a listener's filter
// chain presents and how it verifies clients.
type Downstream struct {
	common
	// RequireClientCertificate makes a client certificate mandatory.
	RequireClientCertificate bool
}

// Upstream is a validated UpstreamTlsContext: how a cluster's connections
// are secured.
type Upstream struct {
	common
	// SNI is sent as the TLS server name ("" sends none).
	SNI string
	// Key identifies the settings, files' contents included: equal keys
	// may share pooled connections, different keys must not.
	Key string
}

// common is the parsed CommonTlsContext.
type common struct {
	certSDS  string           // SDS name of the own certificate
	cert     *tls.Certificate // or a static one (tls_certificates)
	rootsSDS string           // SDS name of the trust bundle
	roots    *x509.CertPool   // or static roots (validation_context.trusted_ca)
	sans     []SANMatcher
	revoked  map[string]bool // issuer DER + serial, from validation_context.crl
	alpn     []string
	refs     []SecretRef
}

// ALPN returns the configured ALPN protocols.
func (c *common) ALPN() []string { return c.alpn }

// Secrets returns the SDS secrets the context refers to.
func (c *common) Secrets() []SecretRef { return c.refs }

// Verifies reports whether the peer's certificate is checked against a
// trust bundle.
func (c *common) Verifies() bool { return c.rootsSDS != "" || c.roots != nil }

// MeshIdentity reports whether the trust bundle comes from SDS: the peer
// is a mesh workload and must present a SPIFFE ID.
func (c *common) MeshIdentity() bool { return c.rootsSDS != "" }

// ParseDownstream validates a listener filter chain's transport_socket. It
// returns nil for none or a raw_buffer socket (plaintext). Errors name the
// field relative to the transport socket.
func ParseDownstream(ts *corev3.TransportSocket) (*Downstream, error) {
	ctx := &tlsv3.DownstreamTlsContext{}
	ok, err := unpack(ts, ctx)
	if !ok || err != nil {
		return nil, err
	}
	if err := contract.CheckFields(ctx, "require_client_certificate", "common_tls_context"); err != nil {
		return nil, fmt.Errorf("typed_config.%w", err)
	}
	d := &Downstream{RequireClientCertificate: ctx.GetRequireClientCertificate().GetValue()}
	if err := d.parse(ctx.GetCommonTlsContext(), false, nil); err != nil {
		return nil, fmt.Errorf("typed_config.common_tls_context.%w", err)
	}
	if d.certSDS == "" && d.cert == nil {
		return nil, errors.New("typed_config.common_tls_context: a server certificate is required (tls_certificate_sds_secret_configs)")
	}
	if d.RequireClientCertificate && !d.Verifies() {
		return nil, errors.New("typed_config.require_client_certificate: needs a validation context to verify clients with")
	}
	return d, nil
}

// ParseUpstream validates a cluster's transport_socket. It returns nil for
// none or a raw_buffer socket. Files named by the context (trusted_ca,
// certificate_chain, private_key) are read now. Errors name the field
// relative to the transport socket.
func ParseUpstream(ts *corev3.TransportSocket) (*Upstream, error) {
	ctx := &tlsv3.UpstreamTlsContext{}
	ok, err := unpack(ts, ctx)
	if !ok || err != nil {
		return nil, err
	}
	if err := contract.CheckFields(ctx, "sni", "common_tls_context"); err != nil {
		return nil, fmt.Errorf("typed_config.%w", err)
	}
	h := sha256.New()
	det, err := proto.MarshalOptions{Deterministic: true}.Marshal(ctx)
	if err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	h.Write(det)
	u := &Upstream{SNI: ctx.GetSni()}
	if err := u.parse(ctx.GetCommonTlsContext(), true, h); err != nil {
		return nil, fmt.Errorf("typed_config.common_tls_context.%w", err)
	}
	u.Key = hex.EncodeToString(h.Sum(nil))
	return u, nil
}

// unpack checks a transport socket's name and unpacks its TLS context; ok
// is false for none or raw_buffer.
func unpack(ts *corev3.TransportSocket, ctx proto.Message) (ok bool, err error) {
	if ts == nil {
		return false, nil
	}
	if err := contract.CheckFields(ts, "name", "typed_config"); err != nil {
		return false, err
	}
	switch ts.GetName() {
	case TransportSocketRaw:
		if tc := ts.GetTypedConfig(); tc != nil {
			if err := tc.UnmarshalTo(&rawv3.RawBuffer{}); err != nil {
				return false, fmt.Errorf("typed_config: %w", err)
			}
		}
		return false, nil
	case TransportSocketTLS:
	default:
		return false, fmt.Errorf("name: unsupported transport socket %q", ts.GetName())
	}
	tc := ts.GetTypedConfig()
	if tc == nil {
		return false, errors.New("typed_config: required")
	}
	if err := tc.UnmarshalTo(ctx); err != nil {
		return false, fmt.Errorf("typed_config: %w", err)
	}
	return true, nil
}

// parse reads a CommonTlsContext; with allowFiles, certificates and CAs may
// be files, whose contents go into h (when not nil).
func (c *common) parse(ctx *tlsv3.CommonTlsContext, allowFiles bool, h hash.Hash) error {
	if ctx == nil {
		return nil
	}
	if err := contract.CheckFields(ctx, "tls_certificates", "tls_certificate_sds_secret_configs",
		"validation_context", "validation_context_sds_secret_config", "combined_validation_context", "alpn_protocols"); err != nil {
		return err
	}
	c.alpn = ctx.GetAlpnProtocols()
	for i, p := range c.alpn {
		if p == "" || len(p) > 255 {
			return fmt.Errorf("alpn_protocols[%d]: must be 1 to 255 bytes", i)
		}
	}
	certs, sdsCerts := ctx.GetTlsCertificates(), ctx.GetTlsCertificateSdsSecretConfigs()
	switch {
	case len(certs)+len(sdsCerts) > 1:
		return errors.New("tls_certificates: at most one certificate (static or SDS) is supported")
	case len(certs) == 1:
		cert, err := sds.Certificate(certs[0], allowFiles)
		if err != nil {
			return fmt.Errorf("tls_certificates[0].%w", err)
		}
		c.cert = cert
		if h != nil {
			for _, der := range cert.Certificate {
				h.Write(der)
			}
		}
	case len(sdsCerts) == 1:
		name, err := sdsName(sdsCerts[0])
		if err != nil {
			return fmt.Errorf("tls_certificate_sds_secret_configs[0].%w", err)
		}
		c.certSDS = name
		c.refs = append(c.refs, SecretRef{Name: name, Field: "typed_config.common_tls_context.tls_certificate_sds_secret_configs[0]"})
	}
	switch v := ctx.GetValidationContextType().(type) {
	case *tlsv3.CommonTlsContext_ValidationContext:
		vc := v.ValidationContext
		if err := contract.CheckFields(vc, "trusted_ca", "match_typed_subject_alt_names", "crl"); err != nil {
			return fmt.Errorf("validation_context.%w", err)
		}
		if vc.GetTrustedCa() == nil {
			return errors.New("validation_context.trusted_ca: required")
		}
		b, err := sds.Data(vc.GetTrustedCa(), allowFiles, true)
		if err != nil {
			return fmt.Errorf("validation_context.trusted_ca.%w", err)
		}
		if c.roots, err = sds.ParsePool(b); err != nil {
			return fmt.Errorf("validation_context.trusted_ca: %w", err)
		}
		if h != nil {
			h.Write(b)
		}
		if c.sans, err = sanMatchers(vc.GetMatchTypedSubjectAltNames()); err != nil {
			return fmt.Errorf("validation_context.%w", err)
		}
		if vc.GetCrl() != nil {
			b, err := sds.Data(vc.GetCrl(), allowFiles, true)
			if err != nil {
				return fmt.Errorf("validation_context.crl.%w", err)
			}
			if c.revoked, err = revocations(b); err != nil {
				return fmt.Errorf("validation_context.crl: %w", err)
			}
			if h != nil {
				h.Write(b)
			}
		}
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		name, err := sdsName(v.ValidationContextSdsSecretConfig)
		if err != nil {
			return fmt.Errorf("validation_context_sds_secret_config.%w", err)
		}
		c.rootsSDS = name
		c.refs = append(c.refs, SecretRef{Name: name, Roots: true, Field: "typed_config.common_tls_context.validation_context_sds_secret_config"})
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		cv := v.CombinedValidationContext
		if err := contract.CheckFields(cv, "default_validation_context", "validation_context_sds_secret_config"); err != nil {
			return fmt.Errorf("combined_validation_context.%w", err)
		}
		dv := cv.GetDefaultValidationContext()
		if err := contract.CheckFields(dv, "match_typed_subject_alt_names"); err != nil {
			return fmt.Errorf("combined_validation_context.default_validation_context.%w", err)
		}
		var err error
		if c.sans, err = sanMatchers(dv.GetMatchTypedSubjectAltNames()); err != nil {
			return fmt.Errorf("combined_validation_context.default_validation_context.%w", err)
		}
		if cv.GetValidationContextSdsSecretConfig() == nil {
			return errors.New("combined_validation_context.validation_context_sds_secret_config: required")
		}
		name, err := sdsName(cv.GetValidationContextSdsSecretConfig())
		if err != nil {
			return fmt.Errorf("combined_validation_context.validation_context_sds_secret_config.%w", err)
		}
		c.rootsSDS = name
		c.refs = append(c.refs, SecretRef{Name: name, Roots: true,
			Field: "typed_config.common_tls_context.combined_validation_context.validation_context_sds_secret_config"})
	}
	return nil
}

// sdsName validates an SdsSecretConfig fetched over ADS and returns its name.
func sdsName(s *tlsv3.SdsSecretConfig) (string, error) {
	if err := contract.CheckFields(s, "name", "sds_config"); err != nil {
		return "", err
	}
	if s.GetName() == "" {
		return "", errors.New("name: empty")
	}
	cs := s.GetSdsConfig()
	if cs == nil {
		return "", errors.New("sds_config: required (ads)")
	}
	if err := contract.CheckFields(cs, "ads", "resource_api_version"); err != nil {
		return "", fmt.Errorf("sds_config.%w", err)
	}
	if cs.GetAds() == nil {
		return "", errors.New("sds_config.ads: required: secrets come on the ADS stream")
	}
	if v := cs.GetResourceApiVersion(); v != corev3.ApiVersion_AUTO && v != corev3.ApiVersion_V3 {
		return "", fmt.Errorf("sds_config.resource_api_version: unsupported %s", v)
	}
	return s.GetName(), nil
}
