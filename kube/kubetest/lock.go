package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
)

// The cluster is shared by every test run on this machine: the tests of
// each package keep to namespaces of their own, but a test that installs
// weft cluster-wide (`weft kube install`: webhooks that see every
// namespace, a control plane that writes status and root certificates
// everywhere, CRDs that `weft kube uninstall` deletes with every Istio
// object in them) would disturb them. So cluster tests hold a shared lock
// on a file beside the kubeconfig while they run (Clients takes it), and
// an installing test holds it exclusively (LockCluster): it waits for the
// running ones and they wait for it. flock(2) locks are released when the
// process ends, so a killed test leaves nothing held.

// LockFileName is the lock file, in the kubeconfig's directory.
const LockFileName = "weft-cluster-tests.lock"

// exclusive is set while this process holds the cluster exclusively: its
// own tests then take no shared lock (which would wait for itself).
var exclusive atomic.Bool

func lockPath(kubeconfig string) string {
	return filepath.Join(filepath.Dir(kubeconfig), LockFileName)
}

func flock(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cluster test lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err == nil {
		return f, nil
	}
	what := "shared"
	if how == syscall.LOCK_EX {
		what = "exclusive"
	}
	fmt.Fprintf(os.Stderr, "kubetest: waiting for the %s cluster lock %s (another test run uses the cluster)\n", what, path)
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err == nil {
			return f, nil
		}
		if err != syscall.EINTR {
			f.Close()
			return nil, fmt.Errorf("cluster test lock %s: %w", path, err)
		}
	}
}

// lockShared holds the cluster lock shared until t ends, unless this
// process holds it exclusively.
func lockShared(t testing.TB, kubeconfig string) {
	t.Helper()
	if exclusive.Load() {
		return
	}
	f, err := flock(lockPath(kubeconfig), syscall.LOCK_SH)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// LockCluster holds the cluster exclusively for the tests of this process
// (call it from TestMain), waiting until no other test run uses it, and
// returns the function that releases it. Without WEFT_KUBECONFIG it does
// nothing: the tests themselves then skip, or fail in CI.
func LockCluster() (unlock func(), err error) {
	path := os.Getenv(EnvKubeconfig)
	if path == "" {
		return func() {}, nil
	}
	f, err := flock(lockPath(path), syscall.LOCK_EX)
	if err != nil {
		return nil, err
	}
	exclusive.Store(true)
	return func() {
		exclusive.Store(false)
		f.Close()
	}, nil
}
