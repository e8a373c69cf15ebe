package cli

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store/bolt"
)

const gatewayYAML = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
`

// The CLI finds the API token in the state dir, $WEFT_TOKEN or
// --token-file, and a refused write says which one it tried.
func TestCLIFindsToken(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(api.New(st, api.Options{Token: "right-token"}).Handler())
	defer srv.Close()

	state := t.TempDir()
	g := &globals{stateDir: state, server: srv.URL}
	tokenFile := &g.tokenFile
	apply := func() error {
		_, err := g.client().Apply(context.Background(), []client.Source{{Name: "gw.yaml", Content: gatewayYAML}}, client.ApplyOptions{})
		return err
	}
	t.Setenv(client.TokenEnv, "")

	err = apply()
	want := "weft: the control plane refused the write: missing API token (" + filepath.Join(state, "api-token") + ")"
	if err == nil || err.Error() != want {
		t.Errorf("no token: %v, want %q", err, want)
	}
	if err := os.WriteFile(filepath.Join(state, client.TokenFile), []byte("right-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := apply(); err != nil {
		t.Errorf("state dir token: %v", err)
	}
	t.Setenv(client.TokenEnv, "wrong-token")
	if err := apply(); err == nil || !strings.Contains(err.Error(), "wrong API token ($WEFT_TOKEN)") {
		t.Errorf("$WEFT_TOKEN wins over the state dir: %v", err)
	}
	file := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(file, []byte("right-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	*tokenFile = file
	if err := apply(); err != nil {
		t.Errorf("--token-file wins over $WEFT_TOKEN: %v", err)
	}
	*tokenFile = file + ".gone"
	if err := apply(); err == nil || !strings.Contains(err.Error(), "missing API token (--token-file: open "+file+".gone") {
		t.Errorf("unreadable --token-file: %v", err)
	}
}

// `weft get` prints the security kinds with kubectl's columns.
func TestPrintSecurityKinds(t *testing.T) {
	const docs = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-x, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {methods: [POST]}}]
---
apiVersion: weft.io/v1alpha1
kind: RateLimit
metadata: {name: ingress, namespace: istio-system}
spec:
  limit: {requests: 100, per: 1s, burst: 200}
  routes: [a, b]
---
apiVersion: maistra.io/v1
kind: ServiceMeshMemberRoll
metadata: {name: default, namespace: istio-system}
spec:
  members: [bookinfo, coolapp]
`
	objs, err := config.Decode("t.yaml", strings.NewReader(docs))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printTable(&b, objs, tableOptions{})
	out := b.String()
	for _, want := range []string{
		"NAME      MODE         AGE", "default   PERMISSIVE",
		"NAME     ACTION   AGE", "deny-x   DENY",
		"NAME      LIMIT              ROUTES      AGE", `ingress   100/1s burst 200   ["a","b"]`,
		"NAME      MEMBERS                  AGE", `default   ["bookinfo","coolapp"]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// List columns print as kubectl prints them: arrays as JSON, not Go's
// [a b]; get all names each row KIND.GROUP/NAME, each kind its own table.
func TestPrintColumnsAsKubectl(t *testing.T) {
	const docs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog, namespace: coolapp}
spec:
  hosts: [catalog]
  gateways: [coolapp-gateway, mesh]
  http:
  - route: [{destination: {host: catalog}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog, namespace: coolapp}
spec:
  host: catalog
`
	objs, err := config.Decode("t.yaml", strings.NewReader(docs))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printTable(&b, objs, tableOptions{})
	if out := b.String(); !strings.Contains(out, `catalog   ["coolapp-gateway","mesh"]   ["catalog"]`) || strings.Contains(out, "[catalog]") {
		t.Errorf("get vs:\n%s", out)
	}
	b.Reset()
	printTable(&b, objs, tableOptions{withKind: true, withNS: true})
	out := b.String()
	for _, want := range []string{
		"NAMESPACE   NAME                                         GATEWAYS",
		"coolapp     virtualservice.networking.istio.io/catalog   ",
		"coolapp     destinationrule.networking.istio.io/catalog   catalog",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("get all -A lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printKinds(&b)
	for _, want := range []string{"NAME", "SHORTNAMES", "virtualservices", "vs", "networking.istio.io/v1", "VirtualService", "authorizationpolicies"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("kinds list lacks %q:\n%s", want, b.String())
		}
	}
}
