package controlplane

// Kubernetes mode against the real cluster of scripts/k8s/cluster.sh
// (WEFT_KUBECONFIG; skipped without one, except in CI). The control
// planes live in a namespace of the test's own, which holds their Lease
// and Secrets, and their mesh is limited to the test's namespaces, so
// they write nothing anywhere else.

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/weft-mesh/weft/kube/kubeclient"
	"github.com/weft-mesh/weft/kube/kubetest"
	"github.com/weft-mesh/weft/xds/translate"
)

// kubeCP starts a control plane in Kubernetes mode with its own
// namespace cpNS and a mesh of the namespaces given; the returned stop
// ends it (also at cleanup).
func kubeCP(t *testing.T, c *kubeclient.Clients, cpNS, identity, xdsAddr string, mesh ...string) (*ControlPlane, func()) {
	t.Helper()
	sel := labels.NewSelector()
	req, err := labels.NewRequirement(corev1.LabelMetadataName, selection.In, mesh)
	if err != nil {
		t.Fatal(err)
	}
	sel = sel.Add(*req)
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := Start(ctx, Options{
		APIAddr: "127.0.0.1:0", XDSAddr: xdsAddr, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Kubernetes: &KubeOptions{Clients: c, Namespace: cpNS, Identity: identity, NamespaceSelector: sel,
			LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-cp.Done()
		}
	}
	t.Cleanup(stop)
	return cp, stop
}

// TestKubeReplicas: two replicas share one CA (the first creates the
// Secret), elect one leader, and the other takes over when it stops; the
// leader publishes the root certificate in the mesh's namespaces (again
// when deleted) and writes analysis and refusals to custom resources'
// status.
func TestKubeReplicas(t *testing.T) {
	c := kubetest.Clients(t)
	kubetest.InstallCRDs(t, c)
	cpNS := kubetest.Namespace(t, c, "kubesrc-cp", nil)
	appNS := kubetest.Namespace(t, c, "kubesrc-app", nil)
	ctx := context.Background()

	a, stopA := kubeCP(t, c, cpNS, "replica-a", "127.0.0.1:0", cpNS, appNS)
	b, stopB := kubeCP(t, c, cpNS, "replica-b", "127.0.0.1:0", cpNS, appNS)
	if !bytes.Equal(a.CA().RootPEM(), b.CA().RootPEM()) || !strings.Contains(a.CASource(), SelfSignedCASecret) {
		t.Fatalf("replicas sign with different roots (CA from %s and %s)", a.CASource(), b.CASource())
	}
	if a.APIToken() == "" || a.APIToken() != b.APIToken() {
		t.Error("replicas have different API tokens")
	}
	kubetest.Poll(t, 30*time.Second, "a leader", func() bool { return a.IsLeader() || b.IsLeader() })
	leader, follower, stopLeader := a, b, stopA
	if b.IsLeader() {
		leader, follower, stopLeader = b, a, stopB
	}
	if follower.IsLeader() {
		t.Fatal("two leaders")
	}
	terms := make(chan context.Context, 4)
	follower.OnLeader(func(term context.Context) { terms <- term })

	// The root certificate ConfigMap, published in every mesh namespace
	// and re-created when deleted.
	cms := c.Kube.CoreV1().ConfigMaps(appNS)
	root := string(leader.CA().RootPEM())
	hasRoot := func() bool {
		cm, err := cms.Get(ctx, RootCertConfigMap, metav1.GetOptions{})
		return err == nil && cm.Data[RootCertKey] == root
	}
	kubetest.Poll(t, 30*time.Second, "the root certificate ConfigMap", hasRoot)
	if err := cms.Delete(ctx, RootCertConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	took := kubetest.Poll(t, 30*time.Second, "the root certificate ConfigMap re-created", hasRoot)
	t.Logf("root certificate ConfigMap re-created %v after its deletion", took)

	// Status: an invalid VirtualService gets its refusal, a valid one
	// routing to an undefined subset its analysis.
	vsGVR := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	vss := c.Dynamic.Resource(vsGVR).Namespace(appNS)
	mk := func(name, subset string, weight int64) {
		_, err := vss.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": map[string]any{"name": name},
			"spec": map[string]any{"hosts": []any{"reviews"}, "http": []any{map[string]any{
				"route": []any{map[string]any{"destination": map[string]any{"host": "reviews", "subset": subset}, "weight": weight}}}}},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("invalid", "v1", -1)
	mk("nosubset", "v9", 100)
	// codes returns the codes in an object's status, and whether its
	// observedGeneration is its generation.
	codes := func(name string) (string, bool) {
		u, err := vss.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", false
		}
		vm, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
		og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		var out []string
		for _, m := range vm {
			code, _, _ := unstructured.NestedString(m.(map[string]any), "type", "code")
			out = append(out, code)
		}
		return strings.Join(out, ","), og == u.GetGeneration()
	}
	kubetest.Poll(t, 30*time.Second, "the refusal in the invalid VirtualService's status", func() bool {
		got, current := codes("invalid")
		return got == "WEFT0001" && current
	})
	kubetest.Poll(t, 30*time.Second, "unknown host in the other VirtualService's status", func() bool {
		got, current := codes("nosubset")
		return got == "WEFT0102,WEFT0101" && current
	})
	// The status follows the analysis: with the Service there, the host
	// is known and the subset is what is missing.
	if _, err := c.Kube.CoreV1().Services(appNS).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Poll(t, 30*time.Second, "undefined subset in the VirtualService's status", func() bool {
		got, current := codes("nosubset")
		return got == "WEFT0101" && current
	})
	if leader.Snapshot().Object("VirtualService", appNS, "invalid") != nil {
		t.Error("the invalid VirtualService reached the model")
	}

	// The leader stops: the follower takes over (the Lease is released).
	stopLeader()
	took = kubetest.Poll(t, 30*time.Second, "the follower to lead", follower.IsLeader)
	t.Logf("the follower led %v after the leader stopped", took)
	select {
	case term := <-terms:
		if term.Err() != nil {
			t.Error("the new leader's term is already over")
		}
	case <-time.After(10 * time.Second):
		t.Error("OnLeader hook not run when the follower became leader")
	}
	// And its writers work: a deleted ConfigMap comes back.
	if err := cms.Delete(ctx, RootCertConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Poll(t, 30*time.Second, "the new leader to re-create the ConfigMap", hasRoot)
}

// TestKubeProxyAuth: a proxy authenticates with a projected
// ServiceAccount token (TokenRequest, audience weft), checked by
// TokenReview; it may claim only that service account, and other
// audiences and forged tokens are refused. The telemetry intake takes the
// same credential.
func TestKubeProxyAuth(t *testing.T) {
	c := kubetest.Clients(t)
	cpNS := kubetest.Namespace(t, c, "kubesrc-cpa", nil)
	appNS := kubetest.Namespace(t, c, "kubesrc-auth", nil)
	ctx := context.Background()
	// Bound on every interface, xDS is TLS with a certificate for the
	// Service name injected proxies dial; the test dials it on loopback.
	cp, _ := kubeCP(t, c, cpNS, "replica", "0.0.0.0:0", cpNS, appNS)
	if !cp.XDSTLS() {
		t.Fatal("xDS off loopback without TLS")
	}
	_, port, _ := net.SplitHostPort(cp.XDSAddr())
	xdsAddr := net.JoinHostPort("127.0.0.1", port)
	creds := credentials.NewTLS(&tls.Config{RootCAs: cp.CA().Roots(), ServerName: "istiod." + cpNS + ".svc", MinVersion: tls.VersionTLS12})

	sas := c.Kube.CoreV1().ServiceAccounts(appNS)
	if _, err := sas.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reviews"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(aud string) string {
		tr, err := sas.CreateToken(ctx, "reviews", &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
			Audiences: []string{aud}, ExpirationSeconds: ptrTo(int64(600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	weftTok := token(DefaultAudience)

	a := openADS(t, xdsAddr, creds, weftTok, sidecarIn(appNS, "reviews"))
	if s := a.secrets(t); s["default"] == nil {
		t.Fatalf("secrets %v", s)
	}
	if err := openADS(t, xdsAddr, creds, weftTok, sidecarIn(appNS, "ratings")).end(t); status.Code(err) != codes.PermissionDenied ||
		!strings.Contains(err.Error(), "system:serviceaccount:"+appNS+":reviews") {
		t.Errorf("claiming another service account: %v", err)
	}
	for name, tok := range map[string]string{
		"other audience": token("https://example.com"),
		"forged":         jwt(time.Now().Add(time.Hour)),
		"none":           "",
	} {
		if err := openADS(t, xdsAddr, creds, tok, sidecarIn(appNS, "reviews")).end(t); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s token: %v, want Unauthenticated", name, err)
		}
	}

	// What the proxy is sent for a Service of its namespace: the pod
	// behind it, through the same translation as local mode.
	if _, err := c.Kube.CoreV1().Services(appNS).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ratings"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 9080}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.DiscoveryV1().EndpointSlices(appNS).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "ratings-1", Labels: map[string]string{discoveryv1.LabelServiceName: "ratings"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptrTo("http"), Port: ptrTo(int32(9080))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.250.98.1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster := "outbound|9080||ratings." + appNS + ".svc.cluster.local"
	kubetest.Poll(t, 30*time.Second, "the Service's endpoint in the proxy's resources", func() bool {
		res := translate.GenerateWith(cp.Snapshot(), sidecarIn(appNS, "reviews"), translate.Options{TrustDomain: cp.TrustDomain()})
		cla := res.Endpoints[cluster]
		if res.Clusters[cluster] == nil || cla == nil || len(cla.Endpoints) != 1 || len(cla.Endpoints[0].LbEndpoints) != 1 {
			return false
		}
		a := cla.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress()
		return a.GetAddress() == "10.250.98.1" && a.GetPortValue() == 9080
	})

	post := func(tok string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+cp.APIAddr()+"/api/v1/telemetry", strings.NewReader(`{}`))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(weftTok); code == http.StatusUnauthorized || code >= 500 {
		t.Errorf("telemetry with the ServiceAccount token: %d", code)
	}
	if code := post(token("https://example.com")); code != http.StatusUnauthorized {
		t.Errorf("telemetry with another audience's token: %d, want 401", code)
	}
}

func ptrTo[T any](v T) *T { return &v }
