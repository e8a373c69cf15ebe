package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestShiftRefusesUndefinedSubset: `weft shift` to (or from) a subset no
// DestinationRule defines exits non-zero, says which subset and which
// DestinationRule, and applies nothing: the service keeps serving.
func TestShiftRefusesUndefinedSubset(t *testing.T) {
	m := upMesh(t, "echo") // VirtualService echo: subset v1 100, v2 0; DestinationRule echo: v1, v2
	serves := func(what string) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			for i := 0; i < 5; i++ {
				code, body, err := get(m.gateway, "", "/", nil)
				if err != nil || code != 200 || !strings.HasPrefix(body, "echo v1 ") {
					return fmt.Errorf("%d %v %.100q", code, err, body)
				}
			}
			return nil
		})
	}
	serves("echo v1 serves through the gateway")
	before, code := m.weft("", "get", "virtualservice", "echo", "-o", "yaml")
	if code != 0 {
		t.Fatalf("weft get: %s", before)
	}

	out, code := m.weft("", "shift", "echo", "--from", "v1", "--to", "v9", "--steps", "100", "--interval", "0s")
	if code == 0 {
		t.Fatalf("shift to an undefined subset exited 0:\n%s", out)
	}
	for _, want := range []string{"nothing applied", `--to v9: subset "v9" is not defined by DestinationRule default/echo`,
		"echo.default.svc.cluster.local"} {
		if !strings.Contains(out, want) {
			t.Errorf("shift's refusal lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "configured") {
		t.Errorf("shift applied something:\n%s", out)
	}
	if after, _ := m.weft("", "get", "virtualservice", "echo", "-o", "yaml"); after != before {
		t.Errorf("the VirtualService changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	serves("echo still serves after the refused shift")

	// A route already sending to an undefined subset is not shifted from
	// it either.
	m.apply("default", `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec:
  hosts: [echo]
  http:
  - route:
    - destination: {host: echo, subset: v7}
`)
	out, code = m.weft("", "shift", "echo", "--vs", "broken", "--from", "v7", "--to", "v2", "--steps", "50", "--interval", "0s")
	if code == 0 || !strings.Contains(out, `--from v7: subset "v7" is not defined by DestinationRule default/echo`) {
		t.Errorf("shift from an undefined subset: exit %d\n%s", code, out)
	}

	// A shift between defined subsets still works.
	out, code = m.weft("", "shift", "echo", "--from", "v1", "--to", "v2", "--steps", "100", "--interval", "0s")
	if code != 0 || !strings.Contains(out, "all traffic is routed to v2") {
		t.Fatalf("shift v1 -> v2: exit %d\n%s", code, out)
	}
	eventually(t, 30*time.Second, "echo v2 serves", func() error {
		code, body, err := get(m.gateway, "", "/", nil)
		if err != nil || code != 200 || !strings.HasPrefix(body, "echo v2 ") {
			return fmt.Errorf("%d %v %.100q", code, err, body)
		}
		return nil
	})
}
