package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// This file holds the end-to-end checks of issue 14's findings: what an
// adversarial review of the local mesh got through.

// startControlPlane runs `weft controlplane` with its state in dir/state
// and waits until its API answers.
func startControlPlane(t *testing.T, dir string, extra ...string) (api string, p *proc) {
	t.Helper()
	api = freePort(t)
	args := append([]string{"controlplane", "--state-dir", filepath.Join(dir, "state"), "--api-addr", api, "--xds-addr", freePort(t)}, extra...)
	p = start(t, dir, "weft controlplane", args...)
	eventually(t, 20*time.Second, "control plane API answers", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("exited:\n%s", p.output())
		default:
		}
		_, err := httpGet("http://" + api + "/healthz")
		return err
	})
	return api, p
}

// TestStateFilePermissions: after chmod 644 on the CA key and the API
// token and 777 on the state directory, the control plane refuses to
// start, naming each file and the chmod that fixes it (it restarted
// silently before). Fixed, it starts again.
func TestStateFilePermissions(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	_, cp := startControlPlane(t, dir)
	cp.stop(10 * time.Second)

	key, apiTok := filepath.Join(state, "ca", "root-key.pem"), filepath.Join(state, "api-token")
	for path, mode := range map[string]os.FileMode{key: 0o644, apiTok: 0o644, state: 0o777} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	p := start(t, dir, "weft controlplane (loose modes)", "controlplane", "--state-dir", state, "--api-addr", freePort(t), "--xds-addr", freePort(t))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the control plane started with world-readable secrets:\n%s", p.output())
	}
	out := p.output()
	if p.cmd.ProcessState.ExitCode() == 0 {
		t.Errorf("exit code 0 with loose modes")
	}
	for _, want := range []string{"chmod 600 " + key, "chmod 600 " + apiTok, "chmod go-w " + state} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, path := range []string{key, apiTok} {
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(state, 0o700); err != nil {
		t.Fatal(err)
	}
	startControlPlane(t, dir)
}
