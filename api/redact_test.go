package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/api"
)

// secretsDump is a config dump of the SDS secrets a sidecar gets: its
// certificate and key, and the root.
func secretsDump(t testing.TB, useProtoNames bool) (dump []byte, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	cert := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	secrets := &admin.SecretsConfigDump{}
	for _, s := range []*tlsv3.Secret{
		{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: cert}},
			PrivateKey:       &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: keyPEM}},
		}}},
		{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: cert}},
		}}},
	} {
		a, err := anypb.New(s)
		if err != nil {
			t.Fatal(err)
		}
		secrets.DynamicActiveSecrets = append(secrets.DynamicActiveSecrets, &admin.SecretsConfigDump_DynamicSecret{Name: s.Name, VersionInfo: "3", Secret: a})
	}
	a, err := anypb.New(secrets)
	if err != nil {
		t.Fatal(err)
	}
	dump, err = protojson.MarshalOptions{UseProtoNames: useProtoNames, Multiline: true}.Marshal(&admin.ConfigDump{Configs: []*anypb.Any{a}})
	if err != nil {
		t.Fatal(err)
	}
	return dump, keyPEM
}

func TestRedactSecrets(t *testing.T) {
	for _, protoNames := range []bool{true, false} {
		dump, keyPEM := secretsDump(t, protoNames)
		b64 := base64.StdEncoding.EncodeToString(keyPEM)
		if !bytes.Contains(dump, []byte(b64)) {
			t.Fatalf("fixture: the dump does not hold the key")
		}
		got, err := api.RedactSecrets(dump)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(got, []byte(b64)) || bytes.Contains(got, []byte("LS0tLS1CRUdJTiBFQyBQUklWQVRF")) {
			t.Errorf("protoNames=%v: the key survived:\n%s", protoNames, got)
		}
		// Everything else is kept, in order: the same document with the
		// key's bytes replaced.
		want := bytes.Replace(dump, []byte(`"`+b64+`"`), []byte(`"[redacted]"`), 1)
		if !jsonEqualOrdered(t, got, want) {
			t.Errorf("protoNames=%v: redacted dump\n%s\nwant\n%s", protoNames, got, want)
		}
		if !bytes.Contains(got, []byte(base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")))) {
			t.Errorf("certificates must stay visible:\n%s", got)
		}
	}

	for _, tc := range []struct{ in, want string }{
		// A PEM key in any string, e.g. an inline_string.
		{`{"a":{"inline_string":"-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n"}}`, `{"a":{"inline_string":"[redacted]"}}`},
		// Every string under a secret field, at any depth; numbers, bools, null and keys kept.
		{`{"privateKey":{"x":["a",1,true,null,{"y":"b"}]},"n":2.50}`, `{"privateKey":{"x":["[redacted]",1,true,null,{"y":"[redacted]"}]},"n":2.50}`},
		{`{"generic_secret":{"secret":{"inline_string":"hunter2"}},"name":"g"}`, `{"generic_secret":{"secret":{"inline_string":"[redacted]"}},"name":"g"}`},
		{`{"-----BEGIN PRIVATE KEY-----":1}`, `{"[redacted]":1}`},
		{`[{"session_ticket_keys":{"keys":[{"inline_bytes":"AAAA"}]}},{},[]]`, `[{"session_ticket_keys":{"keys":[{"inline_bytes":"[redacted]"}]}},{},[]]`},
		// Nothing secret: unchanged.
		{`{"name":"outbound|80||a","filename":"/etc/key.pem","certificate_chain":{"inline_string":"-----BEGIN CERTIFICATE-----"}}`,
			`{"name":"outbound|80||a","filename":"/etc/key.pem","certificate_chain":{"inline_string":"-----BEGIN CERTIFICATE-----"}}`},
	} {
		got, err := api.RedactSecrets([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !jsonEqualOrdered(t, got, []byte(tc.want)) {
			t.Errorf("RedactSecrets(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`{"a":`, `{"a" 1}`, `nope`, `{"a":1}}`} {
		if _, err := api.RedactSecrets([]byte(bad)); err == nil {
			t.Errorf("RedactSecrets(%s): no error", bad)
		}
	}
}

// jsonEqualOrdered compares two documents after compacting them, so key
// order matters and white space does not.
func jsonEqualOrdered(t testing.TB, a, b []byte) bool {
	t.Helper()
	var ca, cb bytes.Buffer
	if err := json.Compact(&ca, a); err != nil {
		t.Fatalf("compact %s: %v", a, err)
	}
	if err := json.Compact(&cb, b); err != nil {
		t.Fatalf("compact %s: %v", b, err)
	}
	return ca.String() == cb.String()
}

// The proxy config endpoint redacts whatever its source hands it.
func TestProxyConfigRedacts(t *testing.T) {
	dump, keyPEM := secretsDump(t, true)
	f := newFixture(t, api.Options{Proxies: dumpProxies{dump}})
	for _, kind := range []string{"secrets", "secret", "listeners"} {
		got, err := f.c.ProxyConfig(context.Background(), "p1", kind)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if bytes.Contains(got, []byte(base64.StdEncoding.EncodeToString(keyPEM))) || !bytes.Contains(got, []byte(`"[redacted]"`)) {
			t.Errorf("%s: not redacted:\n%s", kind, got)
		}
	}
	bad := newFixture(t, api.Options{Proxies: dumpProxies{[]byte("-----BEGIN PRIVATE KEY-----")}})
	if got, err := bad.c.ProxyConfig(context.Background(), "p1", "secrets"); err == nil || strings.Contains(err.Error(), "PRIVATE") {
		t.Errorf("non-JSON config: %s, %v; want an error that shows nothing", got, err)
	}
}

type dumpProxies struct{ dump []byte }

func (d dumpProxies) Proxies() []api.ProxyInfo {
	return []api.ProxyInfo{{ID: "p1", Name: "p1", Namespace: "default", Type: "sidecar", Connected: true}}
}
func (d dumpProxies) ProxyConfig(id, kind string) ([]byte, error) { return d.dump, nil }

// FuzzRedactSecrets: any JSON document comes out as JSON of the same shape
// with no PEM private key left in it.
func FuzzRedactSecrets(f *testing.F) {
	dump, _ := secretsDump(f, true)
	f.Add(dump)
	f.Add([]byte(`{"privateKey":{"x":["a",1,true,null,{"y":"b"}]},"n":2.5}`))
	f.Add([]byte(`["-----BEGIN RSA PRIVATE KEY-----", {"a": [[], {}]}]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var v any
		if json.Unmarshal(in, &v) != nil {
			return
		}
		out, err := api.RedactSecrets(in)
		if err != nil {
			// The decoder reads one value; trailing documents are an error,
			// and so is what json.Unmarshal alone would also refuse.
			return
		}
		var w any
		if err := json.Unmarshal(out, &w); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out)
		}
		if bytes.Contains(out, []byte("PRIVATE KEY-----")) {
			t.Fatalf("a private key survived:\n%s", out)
		}
	})
}
