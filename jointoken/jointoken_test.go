package jointoken

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCreateVerifyRevokePersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "join-tokens.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }

	secret, tok, err := s.Create("default", "reviews", time.Hour, "test", false)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Identity() != "default/reviews" || !tok.Expires.Equal(now.Add(time.Hour)) || !strings.HasPrefix(secret, tok.ID+".") {
		t.Fatalf("Create = %q, %+v", secret, tok)
	}
	eph, _, err := s.Create("istio-system", "gw", 0, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Verify(secret); err != nil || got.ID != tok.ID {
		t.Errorf("Verify(token) = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "x", tok.ID, tok.ID + ".", tok.ID + ".wrong", "0000000000000000." + strings.SplitN(secret, ".", 2)[1]} {
		if _, err := s.Verify(bad); !errors.Is(err, ErrUnknown) {
			t.Errorf("Verify(%q) = %v, want ErrUnknown", bad, err)
		}
	}

	// The file holds digests only, privately; ephemeral tokens stay out.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), strings.SplitN(secret, ".", 2)[1]) || strings.Contains(string(data), "istio-system") {
		t.Errorf("store file holds a secret or an ephemeral token:\n%s", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("store file mode %o, want 600", fi.Mode().Perm())
	}

	// A restart keeps the persistent token and forgets the ephemeral one.
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s2.now = s.now
	if _, err := s2.Verify(secret); err != nil {
		t.Errorf("after reopen: %v", err)
	}
	if _, err := s2.Verify(eph); !errors.Is(err, ErrUnknown) {
		t.Errorf("ephemeral token after reopen: %v, want ErrUnknown", err)
	}

	now = now.Add(time.Hour)
	if _, err := s2.Verify(secret); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: %v, want ErrExpired", err)
	}
	if err := s2.Check(tok.ID); !errors.Is(err, ErrExpired) {
		t.Errorf("Check at expiry: %v", err)
	}
	if _, err := s2.Revoke(tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := s2.Check(tok.ID); !errors.Is(err, ErrUnknown) {
		t.Errorf("Check after revoke: %v", err)
	}
	if _, err := s2.Revoke(tok.ID); !errors.Is(err, ErrUnknown) {
		t.Errorf("second revoke: %v", err)
	}
	s3, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s3.List()) != 0 {
		t.Errorf("revoked token still stored: %+v", s3.List())
	}
}

func TestCreatePrunesExpired(t *testing.T) {
	s, _ := Open("")
	now := time.Now()
	s.now = func() time.Time { return now }
	_, old, _ := s.Create("a", "b", time.Minute, "", false)
	_, keep, _ := s.Create("a", "c", 0, "", false)
	now = now.Add(time.Hour)
	s.Create("a", "d", 0, "", false)
	ids := map[string]bool{}
	for _, tk := range s.List() {
		ids[tk.ID] = true
	}
	if ids[old.ID] || !ids[keep.ID] || len(ids) != 2 {
		t.Errorf("after create: %v; want the expired token gone, the others kept", ids)
	}
}

func TestOpenRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "join-tokens.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open(garbage) = %v, want an error naming the file", err)
	}
}
