package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weft-mesh/weft/internal/testnet"
)

// runUp runs `weft up` in dir to its end (it must end by itself) and
// returns its output and exit code.
func runUp(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, append([]string{"up"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("weft up did not exit:\n%s", out)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestUpFailsOnTakenGatewayPort: `weft up` binds the gateway's address
// before anything else and fails, naming the flag, when it is taken; it
// never says it is up.
func TestUpFailsOnTakenGatewayPort(t *testing.T) {
	taken := testnet.Listen(t).Addr().String()
	out, code := runUp(t, t.TempDir(), "--api-addr", anyPort, "--xds-addr", anyPort, "--gateway-admin-addr", anyPort,
		"--gateway-addr", taken, "--demo", "bookinfo")
	if code == 0 || strings.Contains(out, "weft is up") || !strings.Contains(out, "--gateway-addr "+taken) ||
		!strings.Contains(out, "address already in use") {
		t.Fatalf("weft up with a taken --gateway-addr: exit %d:\n%s", code, out)
	}
}

// TestUpFailsWhenGatewayCannotServe: a Gateway whose port the ingress
// gateway cannot bind is refused (NACKed) and reported as an error while
// the mesh runs; on the next start, with that Gateway in the state, `weft
// up` exits non-zero with the reason instead of saying it is up.
func TestUpFailsWhenGatewayCannotServe(t *testing.T) {
	taken := testnet.Listen(t) // another program's port
	_, port, _ := net.SplitHostPort(taken.Addr().String())
	m := upMesh(t, "")
	m.apply("default", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: busy}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %s, name: http, protocol: HTTP}
    hosts: ["*"]
`, port))
	eventually(t, 30*time.Second, "the refused Gateway reported", func() error {
		if out := m.up.output(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "bind 127.0.0.1:"+port) {
			return fmt.Errorf("no error naming 127.0.0.1:%s in weft up's output yet", port)
		}
		return nil
	})
	m.up.stop(30 * time.Second)

	out, code := runUp(t, m.dir, "--api-addr", anyPort, "--xds-addr", anyPort, "--gateway-addr", anyPort, "--gateway-admin-addr", anyPort)
	if code == 0 || strings.Contains(out, "weft is up") || !strings.Contains(out, "error: ingress gateway cannot serve its configuration") ||
		!strings.Contains(out, "address already in use") {
		t.Fatalf("weft up with a Gateway it cannot serve: exit %d:\n%s", code, out)
	}
}
