package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/weft-mesh/weft/kube/inject"
)

// TestBookinfo: every Bookinfo pod runs 2/2 with its injected native
// sidecar, and /productpage through the ingress gateway shows reviews
// from v1, v2 and v3.
func TestBookinfo(t *testing.T) {
	m := meshFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// What users look at: kubectl get pods.
	out := m.mustKubectl(t, "", "get", "pods", "-n", m.ns, "--no-headers")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(bookinfoDeployments) {
		t.Errorf("want %d pods:\n%s", len(bookinfoDeployments), out)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 3 || f[1] != "2/2" || f[2] != "Running" {
			t.Errorf("pod not Running 2/2: %s", l)
		}
	}
	pods, err := m.pods(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		checkInjected(t, &p)
	}

	eventually(t, time.Minute, "reviews v1, v2 and v3 on the product page", func() error {
		c, err := m.versions("", 15)
		if err != nil {
			return err
		}
		if c["v1"] == 0 || c["v2"] == 0 || c["v3"] == 0 {
			return fmt.Errorf("got %v", c)
		}
		return nil
	})
}

// checkInjected checks a running pod's injection: the capture init
// container, the proxy as a native sidecar (an init container that
// restarts Always) started and ready, every app container ready, and
// Istio's labels.
func checkInjected(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if len(p.Spec.InitContainers) < 2 || p.Spec.InitContainers[0].Name != inject.InitContainerName ||
		p.Spec.InitContainers[1].Name != inject.ProxyContainerName {
		t.Errorf("pod %s: init containers %v, want %s then %s", p.Name, containerNames(p.Spec.InitContainers), inject.InitContainerName, inject.ProxyContainerName)
		return
	}
	if rp := p.Spec.InitContainers[1].RestartPolicy; rp == nil || *rp != corev1.ContainerRestartPolicyAlways {
		t.Errorf("pod %s: %s is not a native sidecar (restartPolicy %v)", p.Name, inject.ProxyContainerName, rp)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("pod %s: %s", p.Name, p.Status.Phase)
	}
	for _, s := range p.Status.InitContainerStatuses {
		switch s.Name {
		case inject.InitContainerName:
			if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
				t.Errorf("pod %s: %s did not succeed: %+v", p.Name, s.Name, s.State)
			}
		case inject.ProxyContainerName:
			if s.State.Running == nil || !s.Ready || s.RestartCount != 0 {
				t.Errorf("pod %s: %s not running and ready (restarts %d): %+v", p.Name, s.Name, s.RestartCount, s.State)
			}
		}
	}
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running == nil || !s.Ready {
			t.Errorf("pod %s: container %s not running and ready: %+v", p.Name, s.Name, s.State)
		}
	}
	if p.Labels[inject.LabelTLSMode] != "istio" || p.Annotations[inject.AnnotationStatus] == "" {
		t.Errorf("pod %s: not marked injected: labels %v", p.Name, p.Labels)
	}
}

func containerNames(cs []corev1.Container) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

// TestWorkshopRouting applies the workshop's VirtualServices with
// kubectl, unchanged but for -n, and sees what local mode sees
// (test/e2e TestBookinfoWorkshop): all to v1, jason to v2 by his header,
// then half to v1 and half to v3.
func TestWorkshopRouting(t *testing.T) {
	m := meshFor(t)
	apply := func(file string) {
		t.Helper()
		m.mustKubectl(t, "", "apply", "-n", m.ns, "-f", bookinfoDir+file)
	}
	t.Cleanup(func() {
		m.kubectl("", "delete", "virtualservice", "-n", m.ns, "reviews", "productpage", "ratings", "details", "--ignore-not-found")
	})

	apply("virtual-service-all-v1.yaml")
	m.settle(t, "", "v1")
	if out := m.mustKubectl(t, "", "get", "vs", "-n", m.ns); !strings.Contains(out, "reviews") || !strings.Contains(out, "bookinfo") {
		t.Errorf("kubectl get vs:\n%s", out)
	}

	apply("virtual-service-reviews-test-v2.yaml")
	m.settle(t, "jason", "v2")
	for _, user := range []string{"", "alice"} {
		if c, err := m.versions(user, 20); err != nil || c["v1"] != 20 {
			t.Errorf("user %q must stay on v1: %v %v", user, c, err)
		}
	}

	apply("virtual-service-reviews-50-v3.yaml")
	eventually(t, 30*time.Second, "50/50 between v1 and v3", func() error {
		c, err := m.versions("", 40)
		if err != nil {
			return err
		}
		if c["v1"] == 0 || c["v3"] == 0 || c["v1"]+c["v3"] != 40 {
			return fmt.Errorf("got %v", c)
		}
		return nil
	})
	apply("virtual-service-reviews-v3.yaml")
	m.settle(t, "", "v3")
}
