package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

const habitsObjects = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop}
spec:
  host: shop.default.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: shop-vm}
spec:
  address: 127.0.0.9
  labels: {app: shop, version: v1}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec:
  mtls: {mode: PERMISSIVE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: shop-allow}
spec:
  action: ALLOW
  rules: [{}]
`

// Item 13: what kubectl and istioctl users type works as they expect.
func TestKubectlHabits(t *testing.T) {
	m := upMesh(t, "")
	m.apply("default", offlineGateway+"---\n"+offlineService+"---\n"+offlineVS+"---\n"+habitsObjects)

	if out, code := m.weft("", "--version"); code != 0 || !strings.HasPrefix(out, "weft version ") {
		t.Errorf("--version: %d %q", code, out)
	}
	if out, code := m.weft("", "version"); code != 0 || !strings.Contains(out, "client: weft ") || !strings.Contains(out, "control plane: weft ") {
		t.Errorf("version: %d\n%s", code, out)
	}

	// Kinds by short name and by full name, each listing its object.
	for kind, name := range map[string]string{
		"vs": "shop", "dr": "shop", "gw": "shop-gateway", "se": "shop", "we": "shop-vm", "pa": "default", "ap": "shop-allow",
		"virtualservice.networking.istio.io": "shop", "virtualservices.v1beta1.networking.istio.io": "shop",
		"authorizationpolicies.security.istio.io": "shop-allow",
	} {
		out, code := m.weft("", "get", kind)
		if code != 0 || !strings.Contains(out, "\n"+name+" ") {
			t.Errorf("get %s: %d\n%s", kind, code, out)
		}
	}
	if out, _ := m.weft("", "get", "vs", "-o", "name"); out != "virtualservice.networking.istio.io/shop\n" {
		t.Errorf("get vs -o name: %q", out)
	}
	// Lists print as kubectl prints them, not as Go slices.
	if out, _ := m.weft("", "get", "vs"); !strings.Contains(out, `["shop-gateway"]   ["*"]`) || strings.Contains(out, "[shop-gateway]") {
		t.Errorf("get vs columns:\n%s", out)
	}
	// No kind: the kinds, and exit 1.
	if out, code := m.weft("", "get"); code != 1 || !strings.Contains(out, "SHORTNAMES") || !strings.Contains(out, "virtualservices") ||
		!strings.Contains(out, "you must specify the kind") {
		t.Errorf("get without a kind: %d\n%s", code, out)
	}
	// get all: each section's rows name their kind.
	out, _ := m.weft("", "get", "all")
	for _, want := range []string{"gateway.networking.istio.io/shop-gateway", "virtualservice.networking.istio.io/shop",
		"destinationrule.networking.istio.io/shop", "serviceentry.networking.istio.io/shop", "workloadentry.networking.istio.io/shop-vm",
		"peerauthentication.security.istio.io/default", "authorizationpolicy.security.istio.io/shop-allow", "\n\nNAME"} {
		if !strings.Contains(out, want) {
			t.Errorf("get all lacks %q:\n%s", want, out)
		}
	}

	// proxy-config: a short table by default, Envoy's dump with -o json|yaml.
	eventually(t, 20*time.Second, "the gateway has its routes", func() error {
		out, code := m.weft("", "proxy-config", "routes", "istio-ingressgateway")
		if code != 0 || !strings.Contains(out, "http.80") {
			return fmt.Errorf("proxy-config routes: %d\n%s", code, out)
		}
		return nil
	})
	out, _ = m.weft("", "proxy-config", "routes", "istio-ingressgateway")
	if !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "VHOST NAME") || strings.Contains(out, "{") {
		t.Errorf("proxy-config routes table:\n%s", out)
	}
	out, _ = m.weft("", "proxy-config", "clusters", "istio-ingressgateway")
	if !strings.Contains(out, "shop.default.svc.cluster.local") || !strings.Contains(out, "outbound") {
		t.Errorf("proxy-config clusters table:\n%s", out)
	}
	out, _ = m.weft("", "proxy-config", "routes", "istio-ingressgateway", "-o", "json")
	var dump struct{ Configs []map[string]any }
	if err := json.Unmarshal([]byte(out), &dump); err != nil || len(dump.Configs) == 0 {
		t.Errorf("proxy-config -o json: %v\n%s", err, out)
	}
	if out, _ := m.weft("", "proxy-config", "routes", "istio-ingressgateway", "-o", "yaml"); !strings.HasPrefix(out, "configs:") {
		t.Errorf("proxy-config -o yaml:\n%s", out)
	}

	// --strict names each finding once.
	const undefined = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: ['*']
  gateways: [shop-gateway]
  http:
  - route: [{destination: {host: shop.default.svc.cluster.local, subset: v7}}]
`
	out, code := m.weft(undefined, "apply", "--strict", "-f", "-")
	if code != 1 || strings.Count(out, "[WEFT0101]") != 1 || !strings.Contains(out, "strict mode: nothing applied because of 1 finding") {
		t.Errorf("apply --strict: want exit 1 and the finding once, got %d:\n%s", code, out)
	}
}
