package mtls_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/sds"
)

var (
	webID = mtlstest.SPIFFE("default", "web")
	appID = mtlstest.SPIFFE("default", "app")
)

func mustDown(t *testing.T, m *tlsv3.DownstreamTlsContext) *mtls.Downstream {
	t.Helper()
	d, err := mtls.ParseDownstream(mtlstest.Socket(t, m))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustUp(t *testing.T, m *tlsv3.UpstreamTlsContext) *mtls.Upstream {
	t.Helper()
	u, err := mtls.ParseUpstream(mtlstest.Socket(t, m))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestMeshHandshake(t *testing.T) {
	ca := mtlstest.NewCA(t, "mesh")
	server := mustDown(t, mtlstest.DownstreamContext()).ServerConfig(ca.Store(t, webID))
	client := mustUp(t, outboundContext(webID)).ClientConfig(ca.Store(t, appID), []string{"http/1.1"})
	o := handshake(t, server, client)
	if o.serverErr != nil || o.clientErr != nil {
		t.Fatalf("handshake: server %v, client %v", o.serverErr, o.clientErr)
	}
	principal, mutual := mtls.Peer(&o.server)
	if !mutual || principal != appID {
		t.Fatalf("server sees peer %q mutual=%v, want %q", principal, mutual, appID)
	}
	if got, _ := mtls.Peer(&o.client); got != webID {
		t.Fatalf("client sees server %q, want %q", got, webID)
	}
	if o.server.NegotiatedProtocol != "http/1.1" || o.server.ServerName != webSNI {
		t.Fatalf("ALPN %q, SNI %q", o.server.NegotiatedProtocol, o.server.ServerName)
	}
}

func TestRefusals(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	forger := mtlstest.NewCA(t, "forger")
	serverStore := mesh.Store(t, webID)
	server := mustDown(t, mtlstest.DownstreamContext()).ServerConfig(serverStore)

	t.Run("client from another CA", func(t *testing.T) {
		// The forged client trusts the mesh root, so only the server can refuse.
		st := forger.Store(t, appID)
		mtlstest.Publish(t, st, map[string]*tlsv3.Secret{"ROOTCA": mtlstest.RootSecret("ROOTCA", mesh.PEM)})
		o := handshake(t, server, mustUp(t, outboundContext(webID)).ClientConfig(st, nil))
		if o.serverErr == nil || !strings.Contains(o.serverErr.Error(), "client certificate: x509: certificate signed by unknown authority") {
			t.Fatalf("server err = %v", o.serverErr)
		}
		if o.clientErr == nil {
			t.Fatal("client was not told")
		}
	})
	t.Run("client without certificate", func(t *testing.T) {
		o := handshake(t, server, &tls.Config{InsecureSkipVerify: true})
		if o.serverErr == nil || o.clientErr == nil {
			t.Fatalf("accepted a client without certificate: server %v, client %v", o.serverErr, o.clientErr)
		}
	})
	t.Run("client without SPIFFE ID", func(t *testing.T) {
		leaf := mesh.Issue(t, mtlstest.LeafOptions{DNSNames: []string{"app.example"}})
		o := handshake(t, server, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{leaf.TLS}})
		if o.serverErr == nil || !strings.Contains(o.serverErr.Error(), "no spiffe:// URI SAN") {
			t.Fatalf("server err = %v", o.serverErr)
		}
	})
	t.Run("server SAN mismatch", func(t *testing.T) {
		client := mustUp(t, outboundContext(mtlstest.SPIFFE("default", "db"))).ClientConfig(mesh.Store(t, appID), nil)
		o := handshake(t, server, client)
		if o.clientErr == nil || !strings.Contains(o.clientErr.Error(), "server certificate: SANs [URI:"+webID+"] match none of the 1 allowed") {
			t.Fatalf("client err = %v", o.clientErr)
		}
	})
	t.Run("server from another CA", func(t *testing.T) {
		forged := mustDown(t, mtlstest.DownstreamContext()).ServerConfig(forger.Store(t, webID))
		o := handshake(t, forged, mustUp(t, outboundContext(webID)).ClientConfig(mesh.Store(t, appID), nil))
		if o.clientErr == nil || !strings.Contains(o.clientErr.Error(), "unknown authority") {
			t.Fatalf("client err = %v", o.clientErr)
		}
	})
	t.Run("expired client", func(t *testing.T) {
		leaf := mesh.Issue(t, mtlstest.LeafOptions{URIs: []string{appID}, NotBefore: mesh.Cert.NotBefore, TTL: 1})
		o := handshake(t, server, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{leaf.TLS}})
		if o.serverErr == nil || !strings.Contains(o.serverErr.Error(), "expired") {
			t.Fatalf("server err = %v", o.serverErr)
		}
	})
	t.Run("secret not received", func(t *testing.T) {
		o := handshake(t, mustDown(t, mtlstest.DownstreamContext()).ServerConfig(sds.NewStore()), &tls.Config{InsecureSkipVerify: true})
		if o.serverErr == nil || !strings.Contains(o.serverErr.Error(), `secret "default" not received`) {
			t.Fatalf("server err = %v", o.serverErr)
		}
	})
}

// TestRotation publishes a new "default" into the store a built config
// reads: the next handshake presents it, with no new tls.Config.
func TestRotation(t *testing.T) {
	ca := mtlstest.NewCA(t, "mesh")
	st := ca.Store(t, webID)
	server := mustDown(t, mtlstest.DownstreamContext()).ServerConfig(st)
	client := mustUp(t, outboundContext(webID)).ClientConfig(ca.Store(t, appID), nil)
	first := handshake(t, server, client)
	mtlstest.Publish(t, st, ca.Secrets(t, webID))
	second := handshake(t, server, client)
	if first.clientErr != nil || second.clientErr != nil {
		t.Fatalf("handshakes: %v, %v", first.clientErr, second.clientErr)
	}
	a, b := first.client.PeerCertificates[0].SerialNumber, second.client.PeerCertificates[0].SerialNumber
	if a.Cmp(b) == 0 {
		t.Fatal("the second handshake still presented the first certificate")
	}
	if want := st.Get("default").Certificate.Leaf.SerialNumber; b.Cmp(want) != 0 {
		t.Fatalf("served serial %v, published %v", b, want)
	}
}

// TestSimpleAndMutualFromFiles is DestinationRule SIMPLE/MUTUAL: files read
// at parse time, DNS SANs (wildcards included), no SPIFFE requirement.
func TestSimpleAndMutualFromFiles(t *testing.T) {
	ca := mtlstest.NewCA(t, "public")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.pem", ca.PEM)
	client := ca.Issue(t, mtlstest.LeafOptions{DNSNames: []string{"client.example"}})
	certFile, keyFile := write("cert.pem", client.CertPEM), write("key.pem", client.KeyPEM)
	serverLeaf := ca.Issue(t, mtlstest.LeafOptions{DNSNames: []string{"*.api.example"}})
	server := &tls.Config{Certificates: []tls.Certificate{serverLeaf.TLS}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	file := func(p string) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: p}}
	}
	ctx := func(san string) *tlsv3.UpstreamTlsContext {
		return &tlsv3.UpstreamTlsContext{Sni: "v1.api.example", CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: file(certFile), PrivateKey: file(keyFile)}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: file(caFile), MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{dnsSAN(san)}}},
		}}
	}
	up := mustUp(t, ctx("v1.api.example"))
	if o := handshake(t, server, up.ClientConfig(sds.NewStore(), nil)); o.clientErr != nil || o.serverErr != nil {
		t.Fatalf("MUTUAL: client %v, server %v", o.clientErr, o.serverErr)
	} else if o.server.ServerName != "v1.api.example" {
		t.Fatalf("SNI = %q", o.server.ServerName)
	}
	o := handshake(t, server, mustUp(t, ctx("a.b.api.example")).ClientConfig(sds.NewStore(), nil))
	if o.clientErr == nil || !strings.Contains(o.clientErr.Error(), "match none") {
		t.Fatalf("wildcard must cover one label only: client err = %v", o.clientErr)
	}

	// A CRL revoking the server's certificate refuses it.
	crlFile := write("crl.pem", ca.CRL(t, serverLeaf))
	revoking := ctx("v1.api.example")
	revoking.CommonTlsContext.GetValidationContext().Crl = file(crlFile)
	o = handshake(t, server, mustUp(t, revoking).ClientConfig(sds.NewStore(), nil))
	if o.clientErr == nil || !strings.Contains(o.clientErr.Error(), "revoked by the CRL") {
		t.Fatalf("revoked server accepted: client err = %v", o.clientErr)
	}
	write("crl.pem", ca.CRL(t, client))
	if o := handshake(t, server, mustUp(t, revoking).ClientConfig(sds.NewStore(), nil)); o.clientErr != nil {
		t.Fatalf("CRL without the server's serial: %v", o.clientErr)
	}

	// The key covers the files' contents: a new CA file is new settings.
	other := mtlstest.NewCA(t, "other")
	write("ca.pem", other.PEM)
	if again := mustUp(t, ctx("v1.api.example")); again.Key == up.Key {
		t.Fatal("Key unchanged after the CA file changed")
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	_, err := mtls.ParseUpstream(mtlstest.Socket(t, ctx("v1.api.example")))
	if want := "typed_config.common_tls_context.tls_certificates[0].private_key.filename: open " + keyFile; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestParseErrors(t *testing.T) {
	raw, err := anypb.New(&rawv3.RawBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := mtls.ParseDownstream(&corev3.TransportSocket{Name: mtls.TransportSocketRaw, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: raw}}); d != nil || err != nil {
		t.Fatalf("raw_buffer: %v, %v", d, err)
	}
	if u, err := mtls.ParseUpstream(nil); u != nil || err != nil {
		t.Fatalf("none: %v, %v", u, err)
	}
	edit := func(f func(*tlsv3.DownstreamTlsContext)) *tlsv3.DownstreamTlsContext {
		c := mtlstest.DownstreamContext()
		f(c)
		return c
	}
	for _, tc := range []struct {
		name string
		ts   *corev3.TransportSocket
		want string
	}{
		{"unknown socket", &corev3.TransportSocket{Name: "envoy.transport_sockets.alts"}, `name: unsupported transport socket "envoy.transport_sockets.alts"`},
		{"no config", &corev3.TransportSocket{Name: mtls.TransportSocketTLS}, "typed_config: required"},
		{"wrong type", mtlstest.Socket(t, outboundContext()), "mismatched message type"},
		{"no certificate", mtlstest.Socket(t, edit(func(c *tlsv3.DownstreamTlsContext) { c.CommonTlsContext.TlsCertificateSdsSecretConfigs = nil })),
			"a server certificate is required"},
		{"require without roots", mtlstest.Socket(t, edit(func(c *tlsv3.DownstreamTlsContext) { c.CommonTlsContext.ValidationContextType = nil })),
			"typed_config.require_client_certificate: needs a validation context"},
		{"sds not ads", mtlstest.Socket(t, edit(func(c *tlsv3.DownstreamTlsContext) {
			c.CommonTlsContext.TlsCertificateSdsSecretConfigs[0].SdsConfig = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/x"}}
		})), "typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.path: unsupported field"},
		{"empty alpn", mtlstest.Socket(t, edit(func(c *tlsv3.DownstreamTlsContext) { c.CommonTlsContext.AlpnProtocols = []string{""} })),
			"typed_config.common_tls_context.alpn_protocols[0]: must be 1 to 255 bytes"},
		{"session timeout", mtlstest.Socket(t, edit(func(c *tlsv3.DownstreamTlsContext) { c.SessionTimeout = durationpb.New(time.Second) })),
			"typed_config.session_timeout: unsupported field"},
		{"tls params", mtlstest.Socket(t, edit(func(c *tlsv3.DownstreamTlsContext) { c.CommonTlsContext.TlsParams = &tlsv3.TlsParameters{} })),
			"typed_config.common_tls_context.tls_params: unsupported field"},
		{"file key on a listener", mtlstest.Socket(t, edit(func(c *tlsv3.DownstreamTlsContext) {
			c.CommonTlsContext.TlsCertificateSdsSecretConfigs = nil
			c.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/c.pem"}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/k.pem"}}}}
		})), "typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename: not supported here"},
		{"optional client cert", mtlstest.Socket(t, edit(func(c *tlsv3.DownstreamTlsContext) { c.RequireClientCertificate = wrapperspb.Bool(false) })), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mtls.ParseDownstream(tc.ts)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}

	bad := outboundContext("spiffe://x")
	bad.CommonTlsContext.GetCombinedValidationContext().DefaultValidationContext.MatchTypedSubjectAltNames[0].Matcher.MatchPattern = nil
	if _, err := mtls.ParseUpstream(mtlstest.Socket(t, bad)); err == nil || !strings.Contains(err.Error(),
		"combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].matcher: one of exact") {
		t.Fatalf("err = %v", err)
	}
	noRoots := outboundContext()
	noRoots.CommonTlsContext.GetCombinedValidationContext().ValidationContextSdsSecretConfig = nil
	if _, err := mtls.ParseUpstream(mtlstest.Socket(t, noRoots)); err == nil || !strings.Contains(err.Error(), "validation_context_sds_secret_config: required") {
		t.Fatalf("err = %v", err)
	}
	// Secrets names the fields that refer to SDS.
	refs := mustUp(t, outboundContext()).Secrets()
	if len(refs) != 2 || refs[0].Name != "default" || refs[0].Roots || refs[1].Name != "ROOTCA" || !refs[1].Roots ||
		refs[1].Field != "typed_config.common_tls_context.combined_validation_context.validation_context_sds_secret_config" {
		t.Fatalf("Secrets() = %+v", refs)
	}
	// Equal contexts, equal keys; a SAN more, another key.
	if a, b := mustUp(t, outboundContext(webID)), mustUp(t, proto.Clone(outboundContext(webID)).(*tlsv3.UpstreamTlsContext)); a.Key != b.Key {
		t.Fatal("equal contexts, different keys")
	}
	if a, b := mustUp(t, outboundContext(webID)), mustUp(t, outboundContext(webID, appID)); a.Key == b.Key {
		t.Fatal("different SANs, same key")
	}
}
