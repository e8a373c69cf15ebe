package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The context's namespace applies when -n is not given; -n overrides it
// and only -n makes the namespace explicit.
func TestContextNamespace(t *testing.T) {
	state := t.TempDir()
	if c, err := readContext(state); err != nil || c.Namespace != "" {
		t.Fatalf("no context file: %+v, %v", c, err)
	}
	if err := writeContext(state, cliContext{Namespace: "coolapp"}); err != nil {
		t.Fatal(err)
	}
	c, err := readContext(state)
	if err != nil || c.Namespace != "coolapp" {
		t.Fatalf("after write: %+v, %v", c, err)
	}
	g := &globals{stateDir: state, context: c}
	if ns, explicit := g.ns(); ns != "coolapp" || explicit {
		t.Errorf("context: %s %v, want coolapp, not explicit", ns, explicit)
	}
	g.namespace = "other"
	if ns, explicit := g.ns(); ns != "other" || !explicit {
		t.Errorf("-n: %s %v, want other, explicit", ns, explicit)
	}
	g.namespace, g.context = "", cliContext{}
	if ns, explicit := g.ns(); ns != "default" || explicit {
		t.Errorf("neither: %s %v", ns, explicit)
	}

	var b strings.Builder
	g.context = c
	viewConfig(&b, g)
	for _, want := range []string{"state-dir: " + state, "context: " + filepath.Join(state, contextFile), "namespace: coolapp", "server: http://127.0.0.1:15080"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("config view lacks %q:\n%s", want, b.String())
		}
	}

	if err := os.WriteFile(filepath.Join(state, contextFile), []byte("namespce: typo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readContext(state); err == nil || !strings.Contains(err.Error(), "set-context") {
		t.Errorf("a misspelt field: %v", err)
	}
}

// The CLI says where it found the control plane's address.
func TestAPIEndpointOrigin(t *testing.T) {
	state := t.TempDir()
	g := &globals{stateDir: state}
	if u, origin := g.apiEndpoint(); u != defaultAPI || !strings.Contains(origin, "default") || !strings.Contains(origin, filepath.Join(state, "endpoints.json")) {
		t.Errorf("nothing recorded: %s (%s)", u, origin)
	}
	if err := os.WriteFile(filepath.Join(state, "endpoints.json"), []byte(`{"api": "127.0.0.1:1234"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if u, origin := g.apiEndpoint(); u != "http://127.0.0.1:1234" || origin != "from "+filepath.Join(state, "endpoints.json") {
		t.Errorf("endpoints.json: %s (%s)", u, origin)
	}
	g.server, g.serverFromFlag = "127.0.0.1:99", true
	if u, origin := g.apiEndpoint(); u != "http://127.0.0.1:99" || origin != "from --server" {
		t.Errorf("--server: %s (%s)", u, origin)
	}
	g.serverFromFlag = false
	if _, origin := g.apiEndpoint(); origin != "from $WEFT_SERVER" {
		t.Errorf("$WEFT_SERVER: %s", origin)
	}
}
