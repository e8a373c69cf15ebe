package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weft-mesh/weft/kube/kubeclient"
)

// Kubectl runs kubectl against the test cluster with stdin and returns
// its standard output, standard error and whether it succeeded: tests
// that check what users type (`kubectl get vs`, a refused `kubectl
// apply`) run the real client. See RunKubectl.
func Kubectl(t testing.TB, stdin string, args ...string) (string, string, bool) {
	t.Helper()
	out, errOut, err := RunKubectl(stdin, args...)
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatal(err)
	}
	return out, errOut, err == nil
}

// RunKubectl runs kubectl against the test cluster ($WEFT_KUBECONFIG)
// with stdin, returning its standard output and error, and an
// *exec.ExitError when it ran and failed. kubectl is found on PATH, else
// in $WEFT_K8S_BIN (where scripts/k8s/cluster.sh builds it). Each call
// discovers the API afresh (its own cache directory): a CRD changed a
// moment ago is seen as it is now.
func RunKubectl(stdin string, args ...string) (string, string, error) {
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		dir := os.Getenv("WEFT_K8S_BIN")
		if dir == "" {
			if home, herr := os.UserHomeDir(); herr == nil {
				dir = filepath.Join(home, ".cache", "weft-k8s", "bin")
			}
		}
		bin = filepath.Join(dir, "kubectl")
		if _, serr := os.Stat(bin); serr != nil {
			return "", "", fmt.Errorf("kubectl: not on PATH nor in %s (scripts/k8s/cluster.sh build puts it there)", dir)
		}
	}
	cache, err := os.MkdirTemp("", "kubectl-cache-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(cache)
	cmd := exec.Command(bin, append([]string{"--kubeconfig", os.Getenv(EnvKubeconfig), "--cache-dir", cache}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		err = fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), err
}

// CreatePod creates pod in ns and returns it as stored (after admission:
// defaulted, mutated), retrying while the new namespace's default
// ServiceAccount does not exist yet.
func CreatePod(t testing.TB, c *kubeclient.Clients, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	var got *corev1.Pod
	Poll(t, 30*time.Second, "pod "+ns+"/"+pod.Name+" created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		var err error
		got, err = c.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil && !strings.Contains(err.Error(), "serviceaccount") {
			t.Fatalf("create pod %s/%s: %v", ns, pod.Name, err)
		}
		return err == nil
	})
	return got
}
