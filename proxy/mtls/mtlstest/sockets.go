package mtlstest

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/sds"
)

// ADS is an SdsSecretConfig fetching name over ADS.
func ADS(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}}
}

// DownstreamContext is the contract's inbound DownstreamTlsContext.
func DownstreamContext() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{ADS("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: ADS("ROOTCA")},
			AlpnProtocols: []string{"h2", "http/1.1"},
		},
	}
}

// UpstreamContext is the contract's auto-mTLS UpstreamTlsContext: SNI and
// the servers' SPIFFE IDs as exact URI SAN matchers.
func UpstreamContext(sni string, sans ...string) *tlsv3.UpstreamTlsContext {
	var ms []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		ms = append(ms, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}})
	}
	return &tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{ADS("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: ms},
					ValidationContextSdsSecretConfig: ADS("ROOTCA"),
				}},
			AlpnProtocols: []string{"http/1.1"},
		},
	}
}

// Socket packs a TLS context as an envoy.transport_sockets.tls socket.
func Socket(t testing.TB, ctx proto.Message) *corev3.TransportSocket {
	t.Helper()
	a, err := anypb.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

// Publish parses secrets and publishes them into st.
func Publish(t testing.TB, st *sds.Store, secrets map[string]*tlsv3.Secret) {
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

// Store returns a store holding the workload secrets of spiffeID (see
// Secrets).
func (ca *CA) Store(t testing.TB, spiffeID string) *sds.Store {
	t.Helper()
	st := sds.NewStore()
	Publish(t, st, ca.Secrets(t, spiffeID))
	return st
}
