package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/kubeclient"
	"github.com/weft-mesh/weft/kube/kubetest"
	"github.com/weft-mesh/weft/kube/manifest"
)

// Paths from this package to what the tests use, as a user's checkout has them.
const (
	repoRoot     = "../.."
	bookinfoDir  = repoRoot + "/demo/bookinfo/"
	bookinfoKube = bookinfoDir + "kube/bookinfo.yaml"
	clusterSh    = repoRoot + "/scripts/k8s/cluster.sh"
	// bookinfoImage is the image bookinfo.yaml names, replaced by the
	// image built here.
	bookinfoImage = "image: weft:bookinfo"
)

// labelRun marks the namespaces this package creates.
const labelRun = "weft.io/test=kube-e2e"

// Bookinfo's Deployments, as in Istio's bookinfo.yaml.
var bookinfoDeployments = []string{"details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1"}

// mesh is weft installed on the cluster with Bookinfo running in an
// injected namespace.
type mesh struct {
	c        *kubeclient.Clients
	dir      string // scratch: the binary and the image archive
	weft     string // the static weft binary
	image    string // its image, imported into the node
	ns       string // Bookinfo's namespace, labelled istio-injection=enabled
	gateway  string // http://CLUSTERIP of istio-ingressgateway (port 80)
	apiToken string // the control plane API's token (Secret weft-api-token)

	installed  bool     // weft kube install ran: teardown uninstalls
	namespaces []string // created here: teardown deletes them
}

// current is the mesh being set up or used, for teardown (also after a
// failed setup).
var current *mesh

func setup(t *testing.T, c *kubeclient.Clients) (*mesh, error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "weft-kube-e2e-")
	if err != nil {
		return nil, err
	}
	m := &mesh{c: c, dir: dir, weft: filepath.Join(dir, "weft")}
	current = m

	// The image holds only the binary: it must be static.
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", m.weft, "github.com/weft-mesh/weft/cmd/weft")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build (CGO_ENABLED=0): %v\n%s", err, out)
	}
	archive := filepath.Join(dir, "weft.tar")
	out, err := m.run("kube", "image", "--out", archive)
	if err != nil {
		return nil, err
	}
	// "FILE: NAME (DIGEST, linux/ARCH)"
	if f := strings.Fields(strings.TrimPrefix(out, archive+":")); len(f) > 1 {
		m.image = f[0]
	} else {
		return nil, fmt.Errorf("weft kube image said %q", out)
	}
	if out, err := exec.Command(clusterSh, "import", archive).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s import %s: %v\n%s", clusterSh, archive, err, out)
	}
	t.Logf("image %s built and imported (%s)", m.image, time.Since(start).Round(time.Second))

	m.installed = true // from now on teardown uninstalls, whatever happens
	if out, err = m.run("kube", "install", "--image", m.image, "--timeout", "3m"); err != nil {
		return nil, err
	}
	t.Logf("installed (%s):\n%s", time.Since(start).Round(time.Second), lastLines(out, 3))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sec, err := c.Kube.CoreV1().Secrets(inject.SystemNamespace).Get(ctx, "weft-api-token", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the API token: %w", err)
	}
	m.apiToken = strings.TrimSpace(string(sec.Data["token"]))
	svc, err := c.Kube.CoreV1().Services(inject.SystemNamespace).Get(ctx, manifest.GatewayName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the ingress gateway's Service: %w", err)
	}
	m.gateway = "http://" + svc.Spec.ClusterIP

	// A run that was killed left its namespaces: their pods would talk to
	// this control plane.
	if _, err := m.kubectl("", "delete", "namespace", "-l", labelRun, "--ignore-not-found", "--timeout=3m"); err != nil {
		return nil, err
	}
	// As docs/kubernetes.md says: a namespace labelled for injection,
	// Bookinfo, its gateway and destination rules, all with kubectl.
	if m.ns, err = m.namespace("bookinfo", true); err != nil {
		return nil, err
	}
	yaml, err := os.ReadFile(bookinfoKube)
	if err != nil {
		return nil, err
	}
	if n := strings.Count(string(yaml), bookinfoImage); n != len(bookinfoDeployments) {
		return nil, fmt.Errorf("%s names %q %d times, want once per Deployment (%d)", bookinfoKube, bookinfoImage, n, len(bookinfoDeployments))
	}
	if _, err := m.kubectl(strings.ReplaceAll(string(yaml), bookinfoImage, "image: "+m.image), "apply", "-n", m.ns, "-f", "-"); err != nil {
		return nil, err
	}
	if _, err := m.kubectl("", "apply", "-n", m.ns, "-f", bookinfoDir+"bookinfo-gateway.yaml", "-f", bookinfoDir+"destination-rule-all.yaml"); err != nil {
		return nil, err
	}
	for _, d := range bookinfoDeployments {
		if _, err := m.kubectl("", "rollout", "status", "-n", m.ns, "deployment/"+d, "--timeout=3m"); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, m.podStates())
		}
	}
	t.Logf("Bookinfo running in %s (%s)", m.ns, time.Since(start).Round(time.Second))
	return m, nil
}

// teardown uninstalls weft and deletes the test's namespaces, waiting
// until they are gone, so the next run (or another package's tests) finds
// the cluster as it was.
func teardown() error {
	m := current
	if m == nil {
		return nil
	}
	defer os.RemoveAll(m.dir)
	var errs []error
	if m.installed {
		out, err := m.run("kube", "uninstall", "--timeout", "3m")
		if err != nil {
			// Still a failure, but the cluster is shared: try once more
			// to leave it as it was (an API server that stalled may be back).
			errs = append(errs, err)
			out, err = m.run("kube", "uninstall", "--timeout", "5m")
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprint(os.Stderr, "test/kube: weft kube uninstall: ", lastLines(out, 1))
		}
	}
	for _, ns := range m.namespaces {
		if _, err := m.kubectl("", "delete", "namespace", ns, "--ignore-not-found", "--timeout=3m"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// namespace creates a namespace for this run (deleted by teardown), with
// `kubectl label namespace NS istio-injection=enabled` when injected.
func (m *mesh) namespace(prefix string, injected bool) (string, error) {
	name := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000)
	if _, err := m.kubectl("", "create", "namespace", name); err != nil {
		return "", err
	}
	m.namespaces = append(m.namespaces, name)
	labels := []string{labelRun}
	if injected {
		labels = append(labels, inject.LabelInjection+"=enabled")
	}
	if _, err := m.kubectl("", append([]string{"label", "namespace", name}, labels...)...); err != nil {
		return "", err
	}
	return name, nil
}

// run runs the built weft against the test cluster.
func (m *mesh) run(args ...string) (string, error) {
	cmd := exec.Command(m.weft, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv(kubetest.EnvKubeconfig))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("weft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// kubectl runs kubectl; a failure's error holds what it said.
func (m *mesh) kubectl(stdin string, args ...string) (string, error) {
	out, errOut, err := kubetest.RunKubectl(stdin, args...)
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out, nil
}

// mustKubectl is kubectl failing the test.
func (m *mesh) mustKubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := m.kubectl(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// podStates lists the namespace's pods with their containers' states,
// for failure messages.
func (m *mesh) podStates() string {
	out, _, _ := kubetest.RunKubectl("", "get", "pods", "-n", m.ns, "-o", "wide")
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// replica is a running control plane pod.
type replica struct{ name, ip string }

// replicas lists the control plane's running pods that are not being
// deleted.
func (m *mesh) replicas(ctx context.Context) ([]replica, error) {
	pods, err := m.c.Kube.CoreV1().Pods(inject.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + inject.ControlPlaneName})
	if err != nil {
		return nil, err
	}
	var out []replica
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			out = append(out, replica{p.Name, p.Status.PodIP})
		}
	}
	return out, nil
}

var apiClient = &http.Client{Timeout: 5 * time.Second}

// apiGet GETs path from a control plane replica's API into v.
func (m *mesh) apiGet(ctx context.Context, r replica, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.ip+":15080"+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+m.apiToken)
	resp, err := apiClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", r.name, path, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// connected maps the ID of every proxy connected to a running replica to
// that replica. Replicas that do not answer are skipped (one may be on its
// way out).
func (m *mesh) connected(ctx context.Context) (map[string]replica, error) {
	rs, err := m.replicas(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]replica{}
	for _, r := range rs {
		var resp api.ProxiesResponse
		if err := m.apiGet(ctx, r, "/api/v1/proxies", &resp); err != nil {
			continue
		}
		for _, p := range resp.Proxies {
			if p.Connected {
				out[p.ID] = r
			}
		}
	}
	return out, nil
}

// pods returns the Bookinfo namespace's pods that selector matches and
// that are not being deleted.
func (m *mesh) pods(ctx context.Context, selector string) ([]corev1.Pod, error) {
	l, err := m.c.Kube.CoreV1().Pods(m.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// gone reports whether the pod no longer exists.
func (m *mesh) gone(ctx context.Context, ns, name string) bool {
	_, err := m.c.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	return apierrors.IsNotFound(err)
}
