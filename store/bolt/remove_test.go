package bolt

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Remove refuses a store another Store has open, and deletes one nobody
// has open.
func TestRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	if removed, err := Remove(path, nil); removed || err != nil {
		t.Fatalf("missing file: %v, %v", removed, err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := Remove(path, nil); removed || !errors.Is(err, ErrInUse) {
		t.Errorf("open store: %v, %v; want ErrInUse", removed, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("refused Remove touched the file: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	alsoRan := false
	if removed, err := Remove(path, func() error { alsoRan = true; return nil }); !removed || err != nil || !alsoRan {
		t.Errorf("closed store: %v, %v, also ran: %v", removed, err, alsoRan)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after Remove: %v", err)
	}
}
