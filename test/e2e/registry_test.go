package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWorkloadDeregistration: a workload's WorkloadEntry goes away when its
// command exits, and when its sidecar dies without saying goodbye (after
// the control plane's grace period).
func TestWorkloadDeregistration(t *testing.T) {
	const reapAfter = 2 * time.Second
	m, _ := startControlPlane(t, "--reap-after", reapAfter.String())
	graceful := m.run("shop", "details", "app=details,version=v1", weftBin, "demo-app", "coolapp", "catalog")
	killed := m.run("shop", "details", "app=details,version=v2", weftBin, "demo-app", "coolapp", "catalog")

	entries := func() string {
		out, code := m.weft("", "get", "workloadentries", "-n", "shop")
		if code != 0 {
			t.Fatalf("get workloadentries: %s", out)
		}
		return out
	}
	eventually(t, 30*time.Second, "both instances registered", func() error {
		if out := entries(); !strings.Contains(out, "details-v1-") || !strings.Contains(out, "details-v2-") {
			return fmt.Errorf("got:\n%s", out)
		}
		return nil
	})
	out, _ := m.weft("", "get", "serviceentries", "details", "-n", "shop", "-o", "yaml")
	if !strings.Contains(out, "details.shop.svc.cluster.local") {
		t.Fatalf("weft run should create the service's ServiceEntry, got:\n%s", out)
	}

	// The command exits: weft run deregisters and exits with it.
	children := func(p *proc) { syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM) }
	children(graceful)
	eventually(t, 20*time.Second, "v1 deregistered after its command exited", func() error {
		if strings.Contains(entries(), "details-v1-") {
			return fmt.Errorf("still registered")
		}
		return nil
	})

	// The sidecar dies (SIGKILL to weft run and its app): the control plane
	// removes the entry once the grace period has passed, and not before
	// (the stream drops after the kill, so the grace counts from later).
	killedAt := time.Now()
	syscall.Kill(-killed.cmd.Process.Pid, syscall.SIGKILL)
	<-killed.done
	eventually(t, 30*time.Second, "v2 reaped after its sidecar vanished", func() error {
		if strings.Contains(entries(), "details-v2-") {
			return fmt.Errorf("still registered")
		}
		return nil
	})
	if d := time.Since(killedAt); d < reapAfter {
		t.Fatalf("v2 reaped %v after its sidecar died, within the %v grace", d, reapAfter)
	}
}
