// Package kubetest gives tests the real Kubernetes cluster they run
// against (scripts/k8s/cluster.sh starts it; .ci/run sets
// WEFT_KUBECONFIG): its clients, namespaces of their own that are removed
// afterwards, and CRDs for weft's kinds when none are installed.
//
// Without WEFT_KUBECONFIG the tests skip, except in CI (CI=true), where a
// missing cluster is a failure: the cluster tests must not silently stop
// running.
package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/kube/kubeclient"
)

// EnvKubeconfig names the environment variable holding the test cluster's
// kubeconfig path.
const EnvKubeconfig = "WEFT_KUBECONFIG"

// Clients returns clients for the test cluster, skipping the test when
// none is configured (failing it in CI). The test holds the cluster lock
// shared until it ends (see LockCluster).
func Clients(t testing.TB) *kubeclient.Clients {
	t.Helper()
	path := os.Getenv(EnvKubeconfig)
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: in CI the cluster tests must run (.ci/run starts the cluster with scripts/k8s/cluster.sh)", EnvKubeconfig)
		}
		t.Skipf("no test cluster: set %s to a kubeconfig (scripts/k8s/cluster.sh up prints it)", EnvKubeconfig)
	}
	lockShared(t, path)
	c, err := kubeclient.New(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Namespace creates a namespace named prefix-RANDOM with the given labels
// and deletes it when the test ends.
func Namespace(t testing.TB, c *kubeclient.Clients, prefix string, labels map[string]string) string {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := prefix + "-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return name
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs makes sure the cluster serves every kind of config.Kinds,
// creating a minimal CRD (schema: preserve unknown fields; every version
// served, the first stored; the status subresource) for each that is
// missing, and waits until they are established. CRDs already installed
// (`weft kube install`'s) are left as they are, and none are removed:
// other tests on the cluster may use them.
func InstallCRDs(t testing.TB, c *kubeclient.Clients) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	crds := c.Dynamic.Resource(crdGVR)
	for _, k := range config.Kinds {
		name := k.Plural + "." + k.Group
		_, err := crds.Create(ctx, minimalCRD(k), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create CRD %s: %v", name, err)
		}
	}
	for _, k := range config.Kinds {
		name := k.Plural + "." + k.Group
		for {
			u, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("CRD %s: %v", name, err)
			}
			if established(u) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("CRD %s not established", name)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func minimalCRD(k config.KindInfo) *unstructured.Unstructured {
	versions := make([]any, len(k.Versions))
	for i, v := range k.Versions {
		versions[i] = map[string]any{
			"name": v, "served": true, "storage": i == 0,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{
				"type": "object", "x-kubernetes-preserve-unknown-fields": true,
			}},
			"subresources": map[string]any{"status": map[string]any{}},
		}
	}
	short := make([]any, len(k.Short))
	for i, s := range k.Short {
		short[i] = s
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": k.Plural + "." + k.Group, "labels": map[string]any{"weft.io/test-crd": "true"}},
		"spec": map[string]any{
			"group": k.Group, "scope": "Namespaced", "versions": versions,
			"names": map[string]any{
				"kind": string(k.Kind), "listKind": string(k.Kind) + "List",
				"plural": k.Plural, "singular": strings.ToLower(string(k.Kind)), "shortNames": short,
			},
		},
	}}
}

// Poll calls cond every 20 ms until it returns true, failing the test
// with what after timeout. It returns how long it took.
func Poll(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
	return time.Since(start)
}
