package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/proxy"
)

// weft run hands its sidecar the join token from --join-token-file, else
// $WEFT_JOIN_TOKEN, else STATE_DIR/join-token.
func TestFindJoinToken(t *testing.T) {
	state := t.TempDir()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if tok, err := findJoinToken(state, "", getenv); tok != "" || err != nil {
		t.Errorf("none: %q %v", tok, err)
	}
	if err := os.WriteFile(filepath.Join(state, "join-token"), []byte("from-state\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := findJoinToken(state, "", getenv); tok != "from-state" || err != nil {
		t.Errorf("state dir: %q %v", tok, err)
	}
	env[proxy.JoinTokenEnv] = "from-env"
	if tok, err := findJoinToken(state, "", getenv); tok != "from-env" || err != nil {
		t.Errorf("env: %q %v", tok, err)
	}
	file := filepath.Join(t.TempDir(), "jt")
	if err := os.WriteFile(file, []byte("from-flag"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := findJoinToken(state, file, getenv); tok != "from-flag" || err != nil {
		t.Errorf("flag: %q %v", tok, err)
	}
	if _, err := findJoinToken(state, file+".gone", getenv); err == nil || !strings.Contains(err.Error(), "--join-token-file") {
		t.Errorf("missing --join-token-file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(state, "join-token"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	delete(env, proxy.JoinTokenEnv)
	if _, err := findJoinToken(state, "", getenv); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty state-dir file: %v", err)
	}
}
