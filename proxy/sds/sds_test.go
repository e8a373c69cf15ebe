package sds_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/sds"
)

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func TestParseSecrets(t *testing.T) {
	ca := mtlstest.NewCA(t, "root")
	id := mtlstest.SPIFFE("default", "web")
	secrets := ca.Secrets(t, id)

	def, err := sds.Parse(secrets["default"])
	if err != nil {
		t.Fatal(err)
	}
	if def.Certificate == nil || def.Roots != nil {
		t.Fatalf("default: want a certificate only, got %+v", def)
	}
	if got := def.Certificate.Leaf.URIs[0].String(); got != id {
		t.Errorf("leaf URI = %q, want %q", got, id)
	}
	root, err := sds.Parse(secrets["ROOTCA"])
	if err != nil {
		t.Fatal(err)
	}
	if root.Roots == nil || root.Certificate != nil {
		t.Fatalf("ROOTCA: want roots only, got %+v", root)
	}
	if _, err := def.Certificate.Leaf.Verify(x509Opts(root)); err != nil {
		t.Errorf("leaf does not verify against ROOTCA: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	ca := mtlstest.NewCA(t, "root")
	other := mtlstest.NewCA(t, "other")
	leaf := ca.Issue(t, mtlstest.LeafOptions{URIs: []string{mtlstest.SPIFFE("a", "b")}})
	otherLeaf := other.Issue(t, mtlstest.LeafOptions{})
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, leaf.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert := func(chain, key *corev3.DataSource) *tlsv3.Secret {
		return &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: chain, PrivateKey: key}}}
	}
	for _, tc := range []struct {
		name string
		s    *tlsv3.Secret
		want string
	}{
		{"no name", &tlsv3.Secret{Type: mtlstest.RootSecret("x", ca.PEM).Type}, `secret "": name: empty`},
		{"no type", &tlsv3.Secret{Name: "x"}, "type: one of tls_certificate, validation_context required"},
		{"generic", &tlsv3.Secret{Name: "x", Type: &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{}}}, "generic_secret: unsupported field"},
		{"key as string", cert(inline(leaf.CertPEM), &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: string(leaf.KeyPEM)}}),
			"tls_certificate.private_key.inline_string: not supported here"},
		{"key from file", cert(inline(leaf.CertPEM), &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: keyFile}}),
			"tls_certificate.private_key.filename: not supported here"},
		{"no key", cert(inline(leaf.CertPEM), nil), "tls_certificate.private_key.specifier: required"},
		{"empty chain", cert(inline(nil), inline(leaf.KeyPEM)), "tls_certificate.certificate_chain.inline_bytes: empty"},
		{"key is chain", cert(inline(leaf.KeyPEM), inline(leaf.KeyPEM)), `tls_certificate.certificate_chain: PEM block 0: type "EC PRIVATE KEY", want CERTIFICATE`},
		{"mismatched key", cert(inline(leaf.CertPEM), inline(otherLeaf.KeyPEM)), "tls_certificate.private_key: tls: private key does not match public key"},
		{"garbage roots", mtlstest.RootSecret("ROOTCA", []byte("not pem")), "validation_context.trusted_ca.inline_bytes: no PEM certificate found"},
		{"roots with SANs", &tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(ca.PEM), MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{}}}}}, "validation_context.match_typed_subject_alt_names: unsupported field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sds.Parse(tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----") {
				t.Fatalf("error leaks key material: %v", err)
			}
		})
	}
}

func TestStorePublishKeepsRefs(t *testing.T) {
	ca := mtlstest.NewCA(t, "root")
	st := sds.NewStore()
	ref := st.Ref("default")
	if _, err := ref.Certificate(); err == nil || !strings.Contains(err.Error(), `secret "default" not received`) {
		t.Fatalf("empty ref: err = %v", err)
	}
	first := mustParse(t, ca.Secrets(t, mtlstest.SPIFFE("a", "a"))["default"])
	second := mustParse(t, ca.Secrets(t, mtlstest.SPIFFE("a", "a"))["default"])
	root := mustParse(t, mtlstest.RootSecret("ROOTCA", ca.PEM))
	st.Publish(map[string]*sds.Secret{"default": first, "ROOTCA": root})
	if c, _ := ref.Certificate(); c != first.Certificate {
		t.Fatal("ref does not see the published certificate")
	}
	// A later set without ROOTCA keeps it; the same Ref sees the rotation.
	st.Publish(map[string]*sds.Secret{"default": second})
	if c, _ := ref.Certificate(); c != second.Certificate {
		t.Fatal("ref does not see the rotated certificate")
	}
	if st.Get("ROOTCA") != root {
		t.Fatal("ROOTCA dropped by a set that did not name it")
	}
	if _, err := st.Ref("ROOTCA").Certificate(); err == nil || !strings.Contains(err.Error(), "holds no tls_certificate") {
		t.Fatalf("roots as certificate: err = %v", err)
	}
	if _, err := ref.Roots(); err == nil || !strings.Contains(err.Error(), "holds no validation_context") {
		t.Fatalf("certificate as roots: err = %v", err)
	}
}

func TestRedact(t *testing.T) {
	ca := mtlstest.NewCA(t, "root")
	sec := ca.Secrets(t, mtlstest.SPIFFE("a", "b"))["default"]
	red := sds.Redact(sec)
	if got := red.GetTlsCertificate().GetPrivateKey().GetInlineString(); got != "[redacted]" {
		t.Fatalf("private key = %q", got)
	}
	if len(sec.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) == 0 {
		t.Fatal("Redact modified its argument")
	}
	if !proto.Equal(red.GetTlsCertificate().GetCertificateChain(), sec.GetTlsCertificate().GetCertificateChain()) {
		t.Fatal("certificate chain changed; only keys are secret")
	}

	// A key inlined in a cluster's transport socket (packed in an Any) is
	// redacted too; a key file name is kept.
	leaf := ca.Issue(t, mtlstest.LeafOptions{})
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{
		{CertificateChain: inline(leaf.CertPEM), PrivateKey: inline(leaf.KeyPEM)},
		{CertificateChain: inline(leaf.CertPEM), PrivateKey: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/etc/key.pem"}}},
	}}}
	a, err := anypb.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterv3.Cluster{Name: "c", TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{{Name: "m",
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}}}}
	js, err := protojson.Marshal(sds.Redact(c))
	if err != nil {
		t.Fatal(err)
	}
	out := string(js)
	if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, encodeB64(leaf.KeyPEM)) {
		t.Fatalf("key material in %s", out)
	}
	if !strings.Contains(out, "[redacted]") || !strings.Contains(out, "/etc/key.pem") {
		t.Fatalf("want [redacted] and the key file name in %s", out)
	}
	if orig, _ := protojson.Marshal(c); !strings.Contains(string(orig), encodeB64(leaf.KeyPEM)) {
		t.Fatal("Redact modified the cluster it was given")
	}
}

func mustParse(t *testing.T, s *tlsv3.Secret) *sds.Secret {
	t.Helper()
	out, err := sds.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
