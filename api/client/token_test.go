package client

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadToken(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(dir, TokenFile)
	for _, tc := range []struct{ content, want, err string }{
		{"abc123\n", "abc123", ""},
		{"  abc123  \r\n", "abc123", ""},
		{"\n", "", "is empty"},
		{"abc def\n", "", "more than one word"},
	} {
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadToken(dir)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ReadToken(%q) = %q, %v; want %q, %q", tc.content, got, err, tc.want, tc.err)
		}
	}
}

func TestFindToken(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	// Nothing anywhere: no token and no error, the state dir file named.
	tok, origin, err := FindToken(dir, "", getenv)
	if tok != "" || err != nil || origin != filepath.Join(dir, TokenFile) {
		t.Errorf("nothing: %q %q %v", tok, origin, err)
	}
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("from-state\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, _, err = FindToken(dir, "", getenv); tok != "from-state" || err != nil {
		t.Errorf("state dir: %q %v", tok, err)
	}
	env[TokenEnv] = "from-env"
	if tok, origin, err = FindToken(dir, "", getenv); tok != "from-env" || origin != "$WEFT_TOKEN" || err != nil {
		t.Errorf("env: %q %q %v", tok, origin, err)
	}
	file := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(file, []byte("from-flag"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, origin, err = FindToken(dir, file, getenv); tok != "from-flag" || origin != file || err != nil {
		t.Errorf("flag: %q %q %v", tok, origin, err)
	}
	// A --token-file the user named must exist.
	if _, _, err = FindToken(dir, file+".missing", getenv); err == nil || !strings.Contains(err.Error(), "--token-file") {
		t.Errorf("missing --token-file: %v", err)
	}
}
