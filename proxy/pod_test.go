package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A token file is read again for every connection: the kubelet rotates a
// projected ServiceAccount token in place.
func TestTokenFileReadAnew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if _, err := tokenSource(Options{JoinTokenFile: path}); err == nil || !strings.Contains(err.Error(), "read join token") {
		t.Fatalf("missing token file: %v", err)
	}
	if err := os.WriteFile(path, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := tokenSource(Options{JoinTokenFile: path, JoinToken: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := src(); err != nil || tok != "first" {
		t.Fatalf("token %q %v", tok, err)
	}
	if err := os.WriteFile(path, []byte("rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := src(); err != nil || tok != "rotated" {
		t.Fatalf("after rotation: token %q %v", tok, err)
	}
	static, _ := tokenSource(Options{JoinToken: "join"})
	if tok, _ := static(); tok != "join" {
		t.Errorf("static token %q", tok)
	}
}
