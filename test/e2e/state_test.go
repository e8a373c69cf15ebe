package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Item 10: `weft up` says whether it starts on a new state or resumes one
// and what that holds; `weft reset` refuses while a control plane runs on
// the state and otherwise removes the configuration (keeping the CA and
// tokens); `weft up --fresh` starts with none.
func TestStateResumeResetFresh(t *testing.T) {
	dir := t.TempDir()
	weft := func(args ...string) (string, string, int) {
		t.Helper()
		return weftIn(t, dir, "", args...)
	}

	up, _ := upIn(t, dir)
	if out, errOut, code := weft("apply", "-f", writeFile(t, dir, "shop.yaml", offlineGateway+"---\n"+offlineService)); code != 0 {
		t.Fatalf("apply: %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := weft("apply", "-n", "coolapp", "-f", writeFile(t, dir, "vs.yaml", offlineVS)); code != 0 {
		t.Fatalf("apply: %d\n%s%s", code, out, errOut)
	}
	first := stopped(up)
	if !strings.Contains(first, "state     .weft: new, no configuration yet") {
		t.Errorf("first up: want it to say the state is new:\n%s", first)
	}

	up, _ = upIn(t, dir)
	out, errOut, code := weft("reset")
	if code != 1 || !strings.Contains(errOut, "a control plane runs on it") {
		t.Errorf("reset while up runs: want refusal, got %d\n%s%s", code, out, errOut)
	}
	second := stopped(up)
	want := "state     .weft: resumed 3 objects (1 gateway, 1 virtualservice, 1 serviceentry) in namespaces coolapp, default; `weft up --fresh` or `weft reset` starts clean"
	if !strings.Contains(second, want) {
		t.Errorf("second up: want\n%s\ngot:\n%s", want, second)
	}

	token, err := os.ReadFile(filepath.Join(dir, ".weft", "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := weft("reset"); code != 0 || !strings.Contains(out, "kept: CA, tokens, context") {
		t.Fatalf("reset: %d\n%s%s", code, out, errOut)
	}
	up, _ = upIn(t, dir)
	if out, _, _ := weft("get", "all", "-A"); strings.Contains(out, "shop") {
		t.Errorf("after reset the configuration is still there:\n%s", out)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, ".weft", "api-token")); string(after) != string(token) {
		t.Error("reset changed the API token")
	}
	if out, errOut, code := weft("apply", "-f", "shop.yaml"); code != 0 {
		t.Fatalf("apply: %d\n%s%s", code, out, errOut)
	}
	third := stopped(up)
	if !strings.Contains(third, "state     .weft: new, no configuration yet") {
		t.Errorf("up after reset:\n%s", third)
	}

	up, _ = upIn(t, dir, "--fresh")
	if out, _, _ := weft("get", "gateways", "-A"); strings.Contains(out, "shop") {
		t.Errorf("up --fresh kept the configuration:\n%s", out)
	}
	if fresh := stopped(up); !strings.Contains(fresh, "state     .weft: fresh start, previous configuration removed") {
		t.Errorf("up --fresh:\n%s", fresh)
	}

	if out, errOut, code := weft("reset", "--all"); code != 0 || !strings.Contains(out, "removed state dir .weft") {
		t.Errorf("reset --all: %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, ".weft")); !os.IsNotExist(err) {
		t.Errorf("state dir after reset --all: %v", err)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}
