package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/webhook"
)

// The control plane serves the webhooks over TLS with a mesh certificate
// for the istiod Service, and sets the webhook configurations' caBundle
// to the mesh root. (A unit test: client-go's fake clientset stands in
// for the API server; kube/webhook's integration test uses a real one.)
func TestWebhooks(t *testing.T) {
	kube := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{inject.LabelInjection: "enabled"}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: inject.ControlPlaneName, Namespace: inject.SystemNamespace}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.9"}},
		&admissionregv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhook.InjectorConfig},
			Webhooks: []admissionregv1.MutatingWebhook{{Name: "namespace.sidecar-injector.istio.io"}}},
		&admissionregv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: webhook.ValidatorConfig},
			Webhooks: []admissionregv1.ValidatingWebhook{{Name: "validation.istio.io"}}},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, err := Start(ctx, Options{
		StateDir: t.TempDir(), APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0",
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Webhook: WebhookOptions{Addr: "127.0.0.1:0", Kube: kube, ProxyImage: "docker.io/library/weft:test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); <-cp.Done() }()

	// The client verifies the name the API server dials: the Service's.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: cp.ca.Roots(), ServerName: inject.XDSServerName,
	}}}
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"shop"},"spec":{"containers":[{"name":"web","image":"app:1"}]}}`
	resp := post(t, client, "https://"+cp.WebhookAddr()+webhook.InjectPath, admissionv1.Create, metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, pod)
	if !resp.Allowed || !strings.Contains(string(resp.Patch), `"--xds=10.96.0.9:15012"`) || !strings.Contains(string(resp.Patch), "weft:test") {
		t.Errorf("injection: allowed %v patch %s", resp.Allowed, resp.Patch)
	}
	vs := `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"r","namespace":"shop"},"spec":{"hosts":["r"],"http":[{"route":[{"destination":{}}]}]}}`
	resp = post(t, client, "https://"+cp.WebhookAddr()+webhook.ValidatePath, admissionv1.Create, metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}, vs)
	if resp.Allowed || !strings.Contains(resp.Result.Message, "VirtualService shop/r: spec.http[0].route[0].destination.host: required") {
		t.Errorf("validation: %+v", resp.Result)
	}

	root := cp.ca.RootPEM()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mw, _ := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhook.InjectorConfig, metav1.GetOptions{})
		vw, _ := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, webhook.ValidatorConfig, metav1.GetOptions{})
		if bytes.Equal(mw.Webhooks[0].ClientConfig.CABundle, root) && bytes.Equal(vw.Webhooks[0].ClientConfig.CABundle, root) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the webhook configurations' caBundle is not the mesh root")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := ca.ParseCerts(root); err != nil {
		t.Errorf("root PEM: %v", err)
	}
}

func post(t *testing.T, c *http.Client, url string, op admissionv1.Operation, kind metav1.GroupVersionKind, obj string) *admissionv1.AdmissionResponse {
	t.Helper()
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &admissionv1.AdmissionRequest{UID: "u1", Kind: kind, Namespace: "shop", Operation: op, Object: runtime.RawExtension{Raw: []byte(obj)}},
	})
	r, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("HTTP %d: %v", r.StatusCode, err)
	}
	return out.Response
}

func TestWebhooksNeedWhatTheyServe(t *testing.T) {
	for _, o := range []WebhookOptions{{Addr: "127.0.0.1:0", ProxyImage: "weft"}, {Addr: "127.0.0.1:0", Kube: fake.NewClientset()}} {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := Start(ctx, Options{StateDir: t.TempDir(), APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0",
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Webhook: o})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "webhooks:") {
			t.Errorf("Start with %+v: %v", o, err)
		}
	}
}

func TestKubeWebhookOptions(t *testing.T) {
	t.Setenv(inject.EnvProxyImage, "docker.io/library/weft:v1")
	o := KubeWebhookOptions(fake.NewClientset(), nil)
	if o.Addr != ":15017" || o.ProxyImage != "docker.io/library/weft:v1" || o.Kube == nil {
		t.Errorf("%+v", o)
	}
}

// The canary guard trusts the control plane's own ServiceAccounts and
// Kubernetes' controllers, no one else.
func TestTrustedWriter(t *testing.T) {
	c := &ControlPlane{kube: &KubeOptions{Namespace: "mesh-system"}}
	for user, want := range map[string]bool{
		"system:serviceaccount:mesh-system:weft-controlplane":    true,
		"system:serviceaccount:kube-system:namespace-controller": true,
		"system:serviceaccount:istio-system:weft-controlplane":   false,
		"system:serviceaccount:shop:default":                     false,
		"admin":                                                  false,
		"system:kube-controller-manager":                         true,
	} {
		if got := c.trustedWriter(authenticationv1.UserInfo{Username: user}); got != want {
			t.Errorf("trustedWriter(%s) = %v", user, got)
		}
	}
}
