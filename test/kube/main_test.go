// Package kube holds weft's Kubernetes-mode end-to-end tests, on the real
// test cluster (kube/kubetest: WEFT_KUBECONFIG; skipped without it, failed
// in CI without it), the way docs/kubernetes.md tells users to do it:
// build the static binary and its image (`weft kube image`), import it
// into the node, `weft kube install`, label a namespace
// istio-injection=enabled, deploy Bookinfo (demo/bookinfo/kube) and the
// workshop's Istio YAML with kubectl, and send traffic through the ingress
// gateway's ClusterIP from this host (kube-proxy routes it).
//
// The install is cluster-wide (istio-system, webhooks, CRDs), so the
// package holds the cluster exclusively (kubetest.LockCluster) from its
// first test until `weft kube uninstall` at the end; the other packages'
// cluster tests wait for it, and it for them.
package kube

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/weft-mesh/weft/kube/kubetest"
)

func TestMain(m *testing.M) {
	unlock, err := kubetest.LockCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "test/kube teardown:", err)
		code = 1
	}
	unlock()
	os.Exit(code)
}

var (
	setupOnce sync.Once
	theMesh   *mesh
	setupErr  error
)

// meshFor returns the installed mesh with Bookinfo running, installing it
// on the first call. A failed setup fails every test that needs it.
func meshFor(t *testing.T) *mesh {
	t.Helper()
	c := kubetest.Clients(t) // skips, or fails in CI, without a cluster
	setupOnce.Do(func() {
		theMesh, setupErr = setup(t, c)
	})
	if setupErr != nil {
		t.Fatalf("setting up the mesh: %v", setupErr)
	}
	return theMesh
}
