package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weft-mesh/weft/kube/kubetest"
)

// TestImageOnCluster builds weft as images are built (static), writes its
// image with `weft kube image`, imports it into the test node's
// containerd as scripts/k8s/cluster.sh does, and runs a pod from it.
func TestImageOnCluster(t *testing.T) {
	c := kubetest.Clients(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "weft")
	build := exec.Command("go", "build", "-o", bin, "github.com/weft-mesh/weft/cmd/weft")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	archive := filepath.Join(dir, "weft.tar")
	out, err := exec.Command(bin, "kube", "image", "--out", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("weft kube image: %v\n%s", err, out)
	}
	// "FILE: NAME (DIGEST, linux/ARCH)"
	fields := strings.Fields(strings.TrimPrefix(string(out), archive+":"))
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "docker.io/library/weft:") {
		t.Fatalf("weft kube image said %q", out)
	}
	name := fields[0]
	if out, err := exec.Command("../../scripts/k8s/cluster.sh", "import", archive).CombinedOutput(); err != nil {
		t.Fatalf("cluster.sh import (ctr -n k8s.io images import): %v\n%s", err, out)
	}

	ns := kubetest.Namespace(t, c, "kubeinst-image", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "weft-help"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "weft", Image: name, ImagePullPolicy: corev1.PullNever, Args: []string{"--help"},
			}},
		},
	}
	kubetest.CreatePod(t, c, ns, pod)
	var phase corev1.PodPhase
	var why string
	kubetest.Poll(t, 90*time.Second, "the pod to run weft --help", func() bool {
		p, err := c.Kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		phase = p.Status.Phase
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				why = w.Reason + ": " + w.Message
			}
		}
		if phase == corev1.PodFailed {
			t.Fatalf("pod failed: %+v", p.Status)
		}
		return phase == corev1.PodSucceeded
	})
	logs, err := c.Kube.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || !strings.Contains(string(logs), "weft is a service mesh in one binary") {
		t.Errorf("logs (%v, last waiting reason %q): %s", err, why, logs)
	}
}
