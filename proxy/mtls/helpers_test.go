package mtls_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/sds"
)

func socket(t testing.TB, m proto.Message) *corev3.TransportSocket {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

func ads(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}}
}

// inboundContext is the contract's DownstreamTlsContext.
func inboundContext() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{ads("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: ads("ROOTCA")},
			AlpnProtocols: []string{"h2", "http/1.1"},
		},
	}
}

func uriSAN(v string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}}
}

func dnsSAN(v string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}}
}

// outboundContext is the contract's auto-mTLS UpstreamTlsContext.
func outboundContext(sans ...string) *tlsv3.UpstreamTlsContext {
	var ms []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		ms = append(ms, uriSAN(s))
	}
	return &tlsv3.UpstreamTlsContext{
		Sni: "outbound_.8080_._.web.default.svc.cluster.local",
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{ads("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: ms},
					ValidationContextSdsSecretConfig: ads("ROOTCA"),
				}},
			AlpnProtocols: []string{"http/1.1"},
		},
	}
}

// storeWith returns a store holding the workload secrets of id from ca.
func storeWith(t testing.TB, ca *mtlstest.CA, id string) *sds.Store {
	t.Helper()
	st := sds.NewStore()
	publish(t, st, ca.Secrets(t, id))
	return st
}

func publish(t testing.TB, st *sds.Store, secrets map[string]*tlsv3.Secret) {
	t.Helper()
	parsed := map[string]*sds.Secret{}
	for n, s := range secrets {
		p, err := sds.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		parsed[n] = p
	}
	st.Publish(parsed)
}

// outcome is both ends of one handshake over a loopback socket.
type outcome struct {
	server    tls.ConnectionState
	serverErr error
	client    tls.ConnectionState
	clientErr error
}

// handshake runs one TLS handshake between server and client over a real
// 127.0.0.1 connection, and a one-byte exchange so that a TLS 1.3 client
// learns of a rejected certificate.
func handshake(t testing.TB, server, client *tls.Config) outcome {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var o outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			o.serverErr = err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, server)
		if o.serverErr = tc.Handshake(); o.serverErr == nil {
			o.server = tc.ConnectionState()
			_, _ = tc.Write([]byte{1})
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, client)
	if o.clientErr = tc.Handshake(); o.clientErr == nil {
		var b [1]byte
		if _, err := tc.Read(b[:]); err != nil {
			o.clientErr = err
		}
		o.client = tc.ConnectionState()
	}
	<-done
	return o
}
