package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/proxy"
)

// weft run hands its sidecar the join token from --join-token-file, else
// $WEFT_JOIN_TOKEN, else none (it then mints one for its identity): the
// mesh-wide STATE_DIR/join-token is never picked up by itself.
func TestFindJoinToken(t *testing.T) {
	state := t.TempDir()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if err := os.WriteFile(filepath.Join(state, "join-token"), []byte("mesh-wide\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := findJoinToken("", getenv); tok != "" || err != nil {
		t.Errorf("none given: %q %v; want none (not the mesh-wide token)", tok, err)
	}
	env[proxy.JoinTokenEnv] = "from-env"
	if tok, err := findJoinToken("", getenv); tok != "from-env" || err != nil {
		t.Errorf("env: %q %v", tok, err)
	}
	file := filepath.Join(t.TempDir(), "jt")
	if err := os.WriteFile(file, []byte("from-flag"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := findJoinToken(file, getenv); tok != "from-flag" || err != nil {
		t.Errorf("flag: %q %v", tok, err)
	}
	if _, err := findJoinToken(file+".gone", getenv); err == nil || !strings.Contains(err.Error(), "--join-token-file") {
		t.Errorf("missing --join-token-file: %v", err)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := findJoinToken(file, getenv); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty --join-token-file: %v", err)
	}
}
