package mtls_test

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
)

// FuzzParseUpstream feeds arbitrary UpstreamTlsContext encodings (and SAN
// patterns) to ParseUpstream: never a panic, errors name a field, and an
// accepted context has a key.
func FuzzParseUpstream(f *testing.F) {
	for _, c := range []*tlsv3.UpstreamTlsContext{outboundContext(), outboundContext(mtlstest.SPIFFE("a", "b"))} {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "spiffe://cluster.local/ns/a/sa/b")
	}
	f.Add([]byte{}, "(unclosed")
	f.Fuzz(func(t *testing.T, raw []byte, san string) {
		ctx := &tlsv3.UpstreamTlsContext{}
		if err := proto.Unmarshal(raw, ctx); err != nil {
			return
		}
		if cv := ctx.GetCommonTlsContext().GetCombinedValidationContext(); cv != nil && cv.GetDefaultValidationContext() != nil {
			m := uriSAN(san)
			if strings.HasPrefix(san, "(") {
				m.Matcher.MatchPattern = nil
			}
			cv.DefaultValidationContext.MatchTypedSubjectAltNames = append(cv.DefaultValidationContext.MatchTypedSubjectAltNames, m)
		}
		a, err := anypb.New(ctx)
		if err != nil {
			return
		}
		u, err := mtls.ParseUpstream(&corev3.TransportSocket{Name: mtls.TransportSocketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "typed_config") {
				t.Fatalf("error names no field: %v", err)
			}
			return
		}
		if u.Key == "" {
			t.Fatal("accepted context without key")
		}
	})
}

// FuzzParseDownstream does the same for listener contexts.
func FuzzParseDownstream(f *testing.F) {
	b, err := proto.Marshal(mtlstest.DownstreamContext())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, raw []byte) {
		ctx := &tlsv3.DownstreamTlsContext{}
		if err := proto.Unmarshal(raw, ctx); err != nil {
			return
		}
		a, err := anypb.New(ctx)
		if err != nil {
			return
		}
		d, err := mtls.ParseDownstream(&corev3.TransportSocket{Name: mtls.TransportSocketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "typed_config") {
				t.Fatalf("error names no field: %v", err)
			}
			return
		}
		if d.RequireClientCertificate && !d.Verifies() {
			t.Fatal("accepted a required client certificate with nothing to verify it")
		}
	})
}
