package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Item 12: `weft config set-context --namespace NS` (as `oc project NS`)
// makes every command default to NS; -n overrides it; `weft config view`
// shows it; it lives in STATE_DIR/context.yaml.
func TestNamespaceContext(t *testing.T) {
	m := upMesh(t, "")
	out, code := m.weft("", "config", "set-context", "--current", "--namespace", "coolapp")
	if code != 0 || !strings.Contains(out, "namespace coolapp") {
		t.Fatalf("set-context: %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(m.dir, ".weft", "context.yaml")); err != nil || !strings.Contains(string(b), "namespace: coolapp") {
		t.Errorf(".weft/context.yaml: %q %v", b, err)
	}
	out, _ = m.weft("", "config", "view")
	if !strings.Contains(out, "namespace: coolapp") || !strings.Contains(out, "context: .weft/context.yaml") {
		t.Errorf("config view:\n%s", out)
	}
	// Files naming no namespace land in the context's.
	if out, code := m.weft(offlineGateway+"---\n"+offlineVS, "apply", "-f", "-"); code != 0 ||
		!strings.Contains(out, "virtualservice.networking.istio.io/shop created") {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	if out, _ := m.weft("", "get", "vs", "-o", "name"); strings.TrimSpace(out) != "virtualservice.networking.istio.io/shop" {
		t.Errorf("get vs in the context's namespace:\n%s", out)
	}
	if out, _ := m.weft("", "get", "vs", "-A"); !strings.Contains(out, "coolapp     shop") {
		t.Errorf("get vs -A: the VirtualService is not in coolapp:\n%s", out)
	}
	if out, _ := m.weft("", "get", "vs", "-n", "default"); !strings.Contains(out, "No resources found in default namespace.") {
		t.Errorf("-n default overrides the context:\n%s", out)
	}
	// Clearing it brings back "default".
	if _, code := m.weft("", "config", "set-context", "--namespace="); code != 0 {
		t.Fatal("set-context --namespace= failed")
	}
	if out, _ := m.weft("", "get", "vs"); !strings.Contains(out, "No resources found in default namespace.") {
		t.Errorf("after clearing the context:\n%s", out)
	}
	if out, code := m.weft("", "config", "set-context", "--namespace", "Not_A_Namespace"); code == 0 {
		t.Errorf("an invalid namespace was accepted:\n%s", out)
	}
}
