package bolt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ErrInUse is returned by Remove when another process has the store open.
var ErrInUse = errors.New("store in use by another process")

// Remove deletes the store file at path unless a process has it open:
// it takes the same exclusive lock bbolt holds while a store is open,
// without waiting, and deletes the file while holding it, so no process
// opens the old file meanwhile; then, still holding it, it runs also (if
// not nil), to remove what belongs with the store. A missing file is not
// an error (removed is false; also still runs). The lock is flock(2),
// bbolt's own on Unix.
func Remove(path string, also func() error) (removed bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if also != nil {
			return false, also()
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open store %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, fmt.Errorf("%s: %w", path, ErrInUse)
		}
		return false, fmt.Errorf("lock store %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("remove store %s: %w", path, err)
	}
	if also != nil {
		return true, also()
	}
	return true, nil
}
