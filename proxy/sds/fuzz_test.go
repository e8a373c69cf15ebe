package sds_test

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/sds"
)

// FuzzParse feeds arbitrary Secret encodings and PEM bytes to Parse: it
// must never panic, and an accepted secret is exactly one usable kind.
func FuzzParse(f *testing.F) {
	ca := mtlstest.NewCA(f, "root")
	for _, s := range ca.Secrets(f, mtlstest.SPIFFE("a", "b")) {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte(nil))
	}
	f.Add([]byte{}, ca.PEM)
	f.Add([]byte{}, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, raw, pemBytes []byte) {
		s := &tlsv3.Secret{}
		if err := proto.Unmarshal(raw, s); err != nil {
			return
		}
		if pemBytes != nil {
			s.Name = "ROOTCA"
			s.Type = &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: pemBytes}}}}
		}
		out, err := sds.Parse(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "secret ") {
				t.Fatalf("error does not name the secret: %v", err)
			}
			return
		}
		if (out.Certificate == nil) == (out.Roots == nil) {
			t.Fatalf("accepted secret is not exactly one kind: %+v", out)
		}
	})
}
