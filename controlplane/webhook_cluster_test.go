package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/kubetest"
	"github.com/weft-mesh/weft/kube/manifest"
	"github.com/weft-mesh/weft/kube/webhook"
)

// The cluster's node address (scripts/k8s/cluster.sh): the API server
// reaches a webhook served on the host there.
const nodeIP = "10.250.0.1"

// TestWebhooksOnCluster runs the control plane's webhooks in this process
// on the node address and registers them with the real API server by URL,
// limited to this test's namespaces: kubectl apply of an invalid
// VirtualService is refused naming the field, pods are injected (their
// readiness needs the rest of Kubernetes mode, so the test checks the
// mutation), and the control plane sets the configurations' caBundle.
func TestWebhooksOnCluster(t *testing.T) {
	c := kubetest.Clients(t)
	kubetest.InstallCRDs(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	labelled := kubetest.Namespace(t, c, "kubeinst-inj", map[string]string{inject.LabelInjection: "enabled"})
	plain := kubetest.Namespace(t, c, "kubeinst-plain", nil)

	// The control plane's Service, in the test's namespace: injected pods
	// are given its ClusterIP.
	svc, err := c.Kube.CoreV1().Services(labelled).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: inject.ControlPlaneName},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc-xds", Port: inject.XDSPort}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	var b [3]byte
	rand.Read(b[:])
	prefix := "kubeinst-" + hex.EncodeToString(b[:]) + "-"
	cp, err := Start(ctx, Options{
		StateDir: t.TempDir(), APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Webhook: WebhookOptions{
			Addr: nodeIP + ":0", Kube: c.Kube, ProxyImage: "docker.io/library/weft:kubeinst-test", Hosts: []string{nodeIP},
			ControlPlaneService: labelled + "/" + inject.ControlPlaneName,
			MutatingConfigs:     []string{prefix + webhook.InjectorConfig}, ValidatingConfigs: []string{prefix + webhook.ValidatorConfig},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); <-cp.Done() }()

	// The install's webhook configurations, pointed at this process and
	// limited to the test's namespaces; the caBundle is left empty for
	// the control plane to fill in.
	target := manifest.WebhookTarget{URL: "https://" + cp.WebhookAddr(), Namespaces: []string{labelled, plain}, NamePrefix: prefix}
	adm := c.Kube.AdmissionregistrationV1()
	if _, err := adm.MutatingWebhookConfigurations().Create(ctx, manifest.Injector(target), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleteIgnoringNotFound(t, adm.MutatingWebhookConfigurations().Delete, prefix+webhook.InjectorConfig)
	})
	if _, err := adm.ValidatingWebhookConfigurations().Create(ctx, manifest.Validator(target), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleteIgnoringNotFound(t, adm.ValidatingWebhookConfigurations().Delete, prefix+webhook.ValidatorConfig)
	})
	kubetest.Poll(t, 30*time.Second, "the control plane to set the caBundle", func() bool {
		mw, err1 := adm.MutatingWebhookConfigurations().Get(ctx, prefix+webhook.InjectorConfig, metav1.GetOptions{})
		vw, err2 := adm.ValidatingWebhookConfigurations().Get(ctx, prefix+webhook.ValidatorConfig, metav1.GetOptions{})
		if err1 != nil || err2 != nil {
			return false
		}
		for _, w := range mw.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false
			}
		}
		return len(vw.Webhooks[0].ClientConfig.CABundle) > 0
	})

	// The API server picks new webhook configurations up asynchronously:
	// wait, with server-side dry runs, until it calls both.
	vsGVR := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	probeVS := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": map[string]any{"name": "probe"},
		"spec": map[string]any{"hosts": []any{"probe"}, "http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{}}}}}},
	}}
	probePod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "docker.io/library/weft:kubeinst-test"}}}}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	kubetest.Poll(t, 30*time.Second, "the API server to call the webhooks", func() bool {
		_, err := c.Dynamic.Resource(vsGVR).Namespace(plain).Create(ctx, probeVS, dry)
		if err == nil || !strings.Contains(err.Error(), "denied the request") {
			return false
		}
		p, err := c.Kube.CoreV1().Pods(labelled).Create(ctx, probePod, dry)
		return err == nil && len(p.Spec.InitContainers) == 2
	})

	t.Run("validation", func(t *testing.T) {
		bad := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-bad}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {subset: v1}
`
		_, stderr, ok := kubetest.Kubectl(t, bad, "apply", "-n", plain, "-f", "-")
		want := `admission webhook "validation.istio.io" denied the request: VirtualService ` + plain + `/reviews-bad: spec.http[0].route[0].destination.host: required`
		t.Logf("kubectl said: %s", stderr)
		if ok || !strings.Contains(stderr, want) {
			t.Errorf("kubectl apply of an invalid VirtualService: ok=%v\n%s\nwant %s", ok, stderr, want)
		}
		good := strings.Replace(strings.Replace(bad, "reviews-bad", "reviews", 1), "{subset: v1}", "{host: reviews, subset: v1}", 1)
		if out, stderr, ok := kubetest.Kubectl(t, good, "apply", "-n", plain, "-f", "-"); !ok {
			t.Fatalf("kubectl apply of a valid VirtualService: %s%s", out, stderr)
		}
		if out, stderr, ok := kubetest.Kubectl(t, "", "get", "vs", "-n", plain); !ok || !strings.Contains(out, "reviews") {
			t.Errorf("kubectl get vs: %s%s", out, stderr)
		}
	})

	t.Run("injection", func(t *testing.T) {
		ip := svc.Spec.ClusterIP
		for _, tc := range []struct {
			ns, name string
			labels   map[string]string
			ann      map[string]string
			want     bool
		}{
			{labelled, "in-labelled", nil, nil, true},
			{labelled, "opted-out", map[string]string{inject.LabelOrAnnotationInject: "false"}, nil, false},
			{plain, "annotated", nil, map[string]string{inject.LabelOrAnnotationInject: "true"}, true},
			{plain, "labelled-true", map[string]string{inject.LabelOrAnnotationInject: "true"}, nil, true},
			{plain, "not-asked", nil, nil, false},
		} {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: tc.name, Labels: tc.labels, Annotations: tc.ann},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "docker.io/library/weft:kubeinst-test", ImagePullPolicy: corev1.PullNever,
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstrPort(8080)}}},
				}}},
			}
			got := kubetest.CreatePod(t, c, tc.ns, pod)
			injected := len(got.Spec.InitContainers) == 2 && got.Spec.InitContainers[1].Name == inject.ProxyContainerName
			if injected != tc.want {
				t.Errorf("%s/%s: injected %v, want %v (init containers %v)", tc.ns, tc.name, injected, tc.want, got.Spec.InitContainers)
				continue
			}
			if !injected {
				continue
			}
			p := got.Spec.InitContainers[1]
			if p.RestartPolicy == nil || *p.RestartPolicy != corev1.ContainerRestartPolicyAlways || got.Spec.InitContainers[0].Name != inject.InitContainerName {
				t.Errorf("%s: not a native sidecar after weft-init: %+v", tc.name, got.Spec.InitContainers)
			}
			if !contains(p.Args, "--xds="+ip+":15012") || got.Labels[inject.LabelTLSMode] != "istio" || got.Annotations[inject.AnnotationStatus] == "" {
				t.Errorf("%s: args %v labels %v", tc.name, p.Args, got.Labels)
			}
			if h := got.Spec.Containers[0].ReadinessProbe.HTTPGet; h == nil || h.Path != "/app-health/app/readyz" {
				t.Errorf("%s: readiness probe not rewritten: %+v", tc.name, got.Spec.Containers[0].ReadinessProbe)
			}
		}
	})
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func deleteIgnoringNotFound(t *testing.T, del func(context.Context, string, metav1.DeleteOptions) error, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := del(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete %s: %v", name, err)
	}
}

func intstrPort(p int32) intstr.IntOrString { return intstr.FromInt32(p) }
