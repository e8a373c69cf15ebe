package e2e

import (
	"strings"
	"testing"
)

const (
	offlineGateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop-gateway}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
`
	// A route to a subset no DestinationRule defines: analysis warns.
	offlineVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: ['*']
  gateways: [shop-gateway]
  http:
  - route: [{destination: {host: shop.default.svc.cluster.local, subset: v9}}]
`
	offlineService = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop}
spec:
  hosts: [shop.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
`
	offlineBad = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec:
  hosts: [shop]
  http:
  - route: [{destination: {host: shop}, weight: 300}]
`
)

// Item 9: validation and file-only analysis need no control plane:
// `weft validate`, `weft analyze --local`, `weft apply --dry-run=client`,
// and the same checks when no control plane answers; exit codes for CI.
func TestOfflineChecks(t *testing.T) {
	dir := t.TempDir()
	gw, vs, svc, bad := writeFile(t, dir, "gateway.yaml", offlineGateway), writeFile(t, dir, "vs.yaml", offlineVS),
		writeFile(t, dir, "svc.yaml", offlineService), writeFile(t, dir, "bad.yaml", offlineBad)
	nobody := "http://" + refusingAddr(t) // every command is pointed at a control plane that is not there
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return weftIn(t, dir, "", append(args, "--server", nobody)...)
	}

	out, errOut, code := run("validate", "-f", gw, vs)
	if code != 0 || !strings.Contains(out, `"gateway.yaml" is valid`) || !strings.Contains(out, `"vs.yaml" is valid`) {
		t.Errorf("validate good files: %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = run("validate", "-f", gw, "-f", bad)
	if code != 1 || !strings.Contains(errOut, "bad.yaml: document 1: VirtualService default/broken: spec.http[0].route[0].weight") ||
		!strings.Contains(out, `"gateway.yaml" is valid`) || !strings.Contains(errOut, "1 of 2 files invalid") {
		t.Errorf("validate a bad file: want exit 1 naming file, object and field, got %d\n%s%s", code, out, errOut)
	}

	out, errOut, code = run("analyze", "--local", "-f", gw, "-f", vs, "-f", svc)
	if code != 79 || !strings.Contains(out, "Warning [WEFT0101] VirtualService default/shop") {
		t.Errorf("analyze --local: want exit 79 and WEFT0101, got %d\n%s%s", code, out, errOut)
	}
	if _, _, code := run("analyze", "--local", "--failure-threshold", "Error", gw, vs, svc); code != 0 {
		t.Errorf("analyze --local --failure-threshold Error (files as arguments): exit %d, want 0 for warnings", code)
	}
	out, _, code = run("analyze", "--local", "-f", gw)
	if code != 0 || !strings.Contains(out, "No validation issues found when analyzing the files alone") {
		t.Errorf("analyze --local a clean file: %d\n%s", code, out)
	}
	if _, errOut, code := run("analyze", "--local", "-f", bad); code != 1 || !strings.Contains(errOut, "weight") {
		t.Errorf("analyze --local an invalid file: want exit 1, got %d\n%s", code, errOut)
	}
	// Without --local, files are analyzed alone when no control plane answers, and the user is told.
	out, errOut, code = run("analyze", "-f", gw, "-f", vs, "-f", svc)
	if code != 79 || !strings.Contains(out, "WEFT0101") || !strings.Contains(errOut, "no control plane answers at "+nobody+" (from --server)") ||
		!strings.Contains(errOut, "analyzing the files alone") {
		t.Errorf("analyze with no control plane: %d\n%s%s", code, out, errOut)
	}

	out, errOut, code = run("apply", "--dry-run=client", "-f", gw, "-f", vs)
	if code != 0 || !strings.Contains(out, "gateway.networking.istio.io/shop-gateway created (dry run)") ||
		!strings.Contains(out, "virtualservice.networking.istio.io/shop created (dry run)") || !strings.Contains(errOut, "WEFT0101") {
		t.Errorf("apply --dry-run=client: %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := run("apply", "--dry-run=client", "--strict", "-f", gw, "-f", vs, "-f", svc); code != 1 || strings.Contains(out, "created") ||
		strings.Count(errOut, "[WEFT0101]") != 1 || !strings.Contains(errOut, "strict mode: nothing would be applied because of 1 finding") {
		t.Errorf("apply --dry-run=client --strict: want exit 1, the finding once, got %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := run("apply", "--dry-run=client", "-f", bad); code != 1 || !strings.Contains(errOut, "weight") {
		t.Errorf("apply --dry-run=client of a bad file: %d\n%s", code, errOut)
	}
	out, errOut, code = run("apply", "--dry-run", "-f", gw)
	if code != 0 || !strings.Contains(out, "created (dry run)") || !strings.Contains(errOut, "is `weft up` running?") ||
		!strings.Contains(errOut, "checking the files alone") {
		t.Errorf("bare --dry-run with no control plane: %d\n%s%s", code, out, errOut)
	}
	// Not a dry run: nothing to fall back to.
	if out, errOut, code := run("apply", "-f", gw); code != 1 || strings.Contains(out, "created") || !strings.Contains(errOut, "is `weft up` running?") {
		t.Errorf("apply with no control plane: %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := run("apply", "--dry-run=server", "-f", gw); code != 1 || !strings.Contains(errOut, "is `weft up` running?") {
		t.Errorf("--dry-run=server with no control plane: %d\n%s", code, errOut)
	}
}

// With a control plane, --dry-run checks against its state, as before.
func TestServerDryRun(t *testing.T) {
	m := upMesh(t, "")
	m.apply("default", offlineGateway)
	out, code := m.weft(offlineGateway+"---\n"+offlineVS, "apply", "--dry-run", "-f", "-")
	if code != 0 || !strings.Contains(out, "gateway.networking.istio.io/shop-gateway unchanged (server dry run)") ||
		!strings.Contains(out, "virtualservice.networking.istio.io/shop created (server dry run)") {
		t.Errorf("server dry run: %d\n%s", code, out)
	}
	if out, _ := m.weft("", "get", "vs"); strings.Contains(out, "shop") {
		t.Errorf("a dry run stored something:\n%s", out)
	}
}
