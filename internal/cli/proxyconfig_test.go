package cli

import (
	"strings"
	"testing"
	"time"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/translate"
)

const reviewsMesh = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.7, ports: {http: 9999}, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v1}, weight: 90}, {destination: {host: reviews}, weight: 10}]
`

// proxy-config prints short tables by default, with istioctl's columns.
func TestProxyConfigTables(t *testing.T) {
	objs, err := config.Decode("mesh.yaml", strings.NewReader(reviewsMesh))
	if err != nil {
		t.Fatal(err)
	}
	res := translate.Generate(model.Build(1, objs), &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "web", Namespace: "default",
		Outbound: "127.0.0.1:15001", Inbound: "127.0.0.1:15006", App: "127.0.0.1:9000"})
	table := func(kind, typeURL string) string {
		t.Helper()
		dump, err := translate.Dump(res.ByType(typeURL))
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := printProxyConfig(&b, kind, dump); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		return b.String()
	}
	for _, tc := range []struct {
		kind, typeURL string
		want          []string
	}{
		{"clusters", translate.ClusterType, []string{"SERVICE FQDN", "reviews.default.svc.cluster.local   9080   v1       outbound    EDS"}},
		{"listeners", translate.ListenerType, []string{"virtualOutbound   127.0.0.1   15001", "Route: outbound"}},
		{"routes", translate.RouteType, []string{"outbound   reviews.default.svc.cluster.local:9080", "/api*",
			"outbound|9080|v1|reviews.default.svc.cluster.local 90, outbound|9080||reviews.default.svc.cluster.local 10"}},
		{"endpoints", translate.EndpointType, []string{"127.0.0.7:9999", "outbound|9080|v1|reviews.default.svc.cluster.local"}},
	} {
		out := table(tc.kind, tc.typeURL)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s table lacks %q:\n%s", tc.kind, w, out)
			}
		}
		if strings.Contains(out, "{") {
			t.Errorf("%s table holds JSON:\n%s", tc.kind, out)
		}
	}

	authority, err := ca.LoadOrCreate(t.TempDir(), "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	svid, err := authority.Issue("spiffe://cluster.local/ns/default/sa/web", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret := &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{}}}
	secret.GetTlsCertificate().CertificateChain = &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: svid.CertChainPEM}}
	a, _ := anypb.New(secret)
	sd, _ := anypb.New(&admin.SecretsConfigDump{DynamicActiveSecrets: []*admin.SecretsConfigDump_DynamicSecret{{Name: "default", Secret: a}}})
	dump, err := protojson.Marshal(&admin.ConfigDump{Configs: []*anypb.Any{sd}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := printProxyConfig(&b, "secrets", dump); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "default         Cert Chain   true") {
		t.Errorf("secrets table:\n%s", out)
	}
}
