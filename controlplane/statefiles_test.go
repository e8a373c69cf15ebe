package controlplane

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/ca"
)

// TestRefusesUnprotectedStateFiles: like ssh with a readable private key,
// the control plane will not start while a secret in the state directory is
// readable by others or the directory is writable by them, and says which
// file and which chmod fixes it. Fixed, it starts with the same secrets.
func TestRefusesUnprotectedStateFiles(t *testing.T) {
	dir := t.TempDir()
	start := func() error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cp, err := Start(ctx, Options{StateDir: dir, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)})
		if err == nil {
			cancel()
			<-cp.Done()
		}
		return err
	}
	if err := start(); err != nil { // creates the CA and tokens
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConsoleTokenFile), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, JoinTokensFile), []byte(`{"tokens":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, JoinTokenFile), []byte("mesh-wide\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{filepath.Join(CADir, ca.RootKeyFile), APITokenFile, ConsoleTokenFile, JoinTokensFile, JoinTokenFile} {
		path := filepath.Join(dir, name)
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			err := start()
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600 "+path) {
				t.Errorf("%s mode %04o: Start = %v; want a refusal naming the file and chmod 600", name, mode, err)
			}
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, sub := range []string{"", CADir} {
		path := filepath.Join(dir, sub)
		for _, mode := range []os.FileMode{0o777, 0o770, 0o707} {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			err := start()
			if err == nil || !strings.Contains(err.Error(), "chmod go-w "+path) {
				t.Errorf("directory %q mode %04o: Start = %v; want a refusal naming chmod go-w", sub, mode, err)
			}
			if err := os.Chmod(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A readable, not writable, directory is fine (ssh's rule too).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := start(); err != nil {
		t.Errorf("state dir 0755 with private files: %v", err)
	}
}
