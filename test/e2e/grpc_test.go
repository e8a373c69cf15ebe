package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The proxyless gRPC applications of these tests: an ordinary gRPC-Go
// server (grpcapp/server) run behind `weft run` sidecars, and an ordinary
// gRPC-Go client (grpcapp/client) that differs from any other only in its
// xds:/// target and GRPC_XDS_BOOTSTRAP.
var (
	grpcAppsOnce              sync.Once
	grpcClientBin, grpcSrvBin string
	grpcAppsErr               error
)

func grpcApps(t *testing.T) (client, server string) {
	t.Helper()
	grpcAppsOnce.Do(func() {
		dir := filepath.Dir(weftBin)
		grpcClientBin, grpcSrvBin = filepath.Join(dir, "grpc-client"), filepath.Join(dir, "grpc-server")
		for bin, pkg := range map[string]string{grpcClientBin: "./grpcapp/client", grpcSrvBin: "./grpcapp/server"} {
			if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
				grpcAppsErr = fmt.Errorf("build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if grpcAppsErr != nil {
		t.Fatal(grpcAppsErr)
	}
	return grpcClientBin, grpcSrvBin
}

// grpcResult is what grpcapp/client prints.
type grpcResult struct {
	Servers map[string]int `json:"servers"`
	Codes   map[string]int `json:"codes"`
	Last    string         `json:"last"`
}

// grpcCalls runs the client: n calls to target, with header (k=v) if set.
func grpcCalls(t *testing.T, bootstrap, target string, n int, header string) grpcResult {
	t.Helper()
	bin, _ := grpcApps(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"-target", target, "-n", fmt.Sprint(n)}
	if header != "" {
		args = append(args, "-header", header)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "GRPC_XDS_BOOTSTRAP="+bootstrap)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("grpc client: %v\n%s", err, stderr.String())
	}
	var r grpcResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("grpc client output %q: %v", out, err)
	}
	return r
}

// TestProxylessGRPC: an unmodified gRPC-Go client, given only a bootstrap
// from `weft bootstrap grpc` and an xds:/// target, authenticates to the
// control plane with its certificate (xDS over mTLS), talks mTLS to the
// STRICT sidecars of gRPC servers, and follows VirtualServices: an 80/20
// split, a header match, an injected abort, and retries.
func TestProxylessGRPC(t *testing.T) {
	_, serverBin := grpcApps(t)
	m := upMesh(t, "")
	for _, v := range []string{"v1", "v2"} {
		// The server answers with $VERSION, which `weft run` sets from the
		// version label.
		m.runEnv("default", "greeter", "app=greeter,version="+v, nil, "--protocol", "GRPC", "--", serverBin)
	}
	m.runEnv("default", "flaky", "app=flaky,version=v1", []string{"FAIL_EVERY=2"}, "--protocol", "GRPC", "--", serverBin)

	out, code := m.weft("", "bootstrap", "grpc", "--service", "caller", "--port", "9000", "--out", "boot", "--xds", m.xds)
	if code != 0 {
		t.Fatalf("weft bootstrap grpc: %s", out)
	}
	boot := filepath.Join(m.dir, "boot", "bootstrap.json")
	for _, f := range []string{"bootstrap.json", "cert-chain.pem", "key.pem", "root-cert.pem"} {
		if _, err := os.Stat(filepath.Join(m.dir, "boot", f)); err != nil {
			t.Fatalf("bootstrap wrote no %s: %v", f, err)
		}
	}
	greeter, flaky := "xds:///greeter.default.svc.cluster.local:8080", "xds:///flaky.default.svc.cluster.local:8080"

	// Both instances registered and reachable over mTLS (STRICT is the
	// default: plaintext would be refused).
	eventually(t, 30*time.Second, "both greeter versions answer", func() error {
		r := grpcCalls(t, boot, greeter, 20, "")
		if r.Servers["v1"] == 0 || r.Servers["v2"] == 0 {
			return fmt.Errorf("%+v", r)
		}
		return nil
	})

	m.weft(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: greeter}
spec:
  host: greeter
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter}
spec:
  hosts: [greeter]
  http:
  - match: [{headers: {x-user: {exact: jason}}}]
    route: [{destination: {host: greeter, subset: v2}}]
  - route:
    - {destination: {host: greeter, subset: v1}, weight: 80}
    - {destination: {host: greeter, subset: v2}, weight: 20}
`, "apply", "-f", "-", "--wait")
	r := grpcCalls(t, boot, greeter, 400, "")
	v1 := float64(r.Servers["v1"]) / 400
	// 400 calls at 80%: the share is within 0.70-0.90 but for odds of
	// about one in ten million.
	if r.Servers["v1"]+r.Servers["v2"] != 400 || v1 < 0.70 || v1 > 0.90 {
		t.Errorf("80/20 split: %+v (v1 share %.2f)", r, v1)
	}
	if r := grpcCalls(t, boot, greeter, 30, "x-user=jason"); r.Servers["v2"] != 30 {
		t.Errorf("header match x-user: jason: %+v, want every call on v2", r)
	}

	m.weft(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: greeter}
spec:
  hosts: [greeter]
  http:
  - fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: greeter, subset: v1}}]
`, "apply", "-f", "-", "--wait")
	if r := grpcCalls(t, boot, greeter, 20, ""); r.Codes["Unavailable"] != 20 || !strings.Contains(r.Last, "fault injection") {
		t.Errorf("abort 503: %+v, want every call UNAVAILABLE by fault injection", r)
	}

	// flaky fails every second call: without retries half the calls fail,
	// with them none does.
	m.weft("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: flaky}\nspec:\n  hosts: [flaky]\n  http:\n  - route: [{destination: {host: flaky}}]\n    retries: {attempts: 0}\n", "apply", "-f", "-", "--wait")
	if r := grpcCalls(t, boot, flaky, 20, ""); r.Codes["Unavailable"] != 10 {
		t.Errorf("no retries: %+v, want 10 of 20 calls UNAVAILABLE", r)
	}
	m.weft("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: flaky}\nspec:\n  hosts: [flaky]\n  http:\n  - route: [{destination: {host: flaky}}]\n    retries: {attempts: 3, retryOn: unavailable}\n", "apply", "-f", "-", "--wait")
	if r := grpcCalls(t, boot, flaky, 20, ""); r.Servers["v1"] != 20 {
		t.Errorf("retries on unavailable: %+v, want all 20 calls answered", r)
	}
}

// TestProxylessGRPCCertRotation: `weft bootstrap grpc --watch` renews the
// certificate files at half their lifetime, so an application started
// after the first certificate expired still joins (xDS over mTLS) and
// reaches STRICT sidecars.
func TestProxylessGRPCCertRotation(t *testing.T) {
	_, serverBin := grpcApps(t)
	m, _ := upMeshWith(t, "", "--cert-ttl", "4s")
	m.runEnv("default", "greeter", "app=greeter,version=v1", nil, "--protocol", "GRPC", "--", serverBin)
	start(t, m.dir, "weft bootstrap grpc --watch", "bootstrap", "grpc", "--server", "http://"+m.api, "--service", "caller", "--port", "9000",
		"--out", "boot", "--xds", m.xds, "--watch", "--refresh-interval", "1s")
	chain := filepath.Join(m.dir, "boot", "cert-chain.pem")
	var first []byte
	eventually(t, 20*time.Second, "the certificate is written", func() error {
		var err error
		first, err = os.ReadFile(chain)
		return err
	})
	firstSeen := time.Now()
	seen := map[string]bool{string(first): true}
	eventually(t, 20*time.Second, "the certificate is renewed twice", func() error {
		if b, err := os.ReadFile(chain); err == nil {
			seen[string(b)] = true
		}
		if len(seen) < 3 {
			return fmt.Errorf("%d distinct certificates so far", len(seen))
		}
		return nil
	})
	if time.Since(firstSeen) < 5*time.Second {
		time.Sleep(5*time.Second - time.Since(firstSeen)) // the first certificate (4s) has expired
	}
	boot := filepath.Join(m.dir, "boot", "bootstrap.json")
	if r := grpcCalls(t, boot, "xds:///greeter.default.svc.cluster.local:8080", 10, ""); r.Servers["v1"] != 10 {
		t.Errorf("after rotation: %+v, want every call answered", r)
	}
}
