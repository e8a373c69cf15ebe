package kube

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/kubetest"
)

// TestMutualTLS: with STRICT mutual TLS (Istio's mesh-wide
// PeerAuthentication, applied unchanged), Bookinfo's calls are mutual TLS
// between the identities of their ServiceAccounts, as the destinations'
// own metrics say; a pod in a namespace outside the mesh is refused, while
// the same client in the mesh, and outside it through the ingress
// gateway, gets through.
func TestMutualTLS(t *testing.T) {
	m := meshFor(t)
	m.mustKubectl(t, "", "apply", "-f", bookinfoDir+"security/peer-authentication-strict.yaml")
	t.Cleanup(func() {
		m.kubectl("", "delete", "-f", bookinfoDir+"security/peer-authentication-strict.yaml", "--ignore-not-found")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Traffic through every hop (reviews v2 and v3 call ratings).
	eventually(t, time.Minute, "pages served by every reviews version", func() error {
		c, err := m.versions("", 15)
		if err == nil && (c["v2"] == 0 || c["v3"] == 0) {
			err = fmt.Errorf("got %v", c)
		}
		return err
	})
	const td = "spiffe://cluster.local/ns/"
	sa := func(name string) string { return td + m.ns + "/sa/bookinfo-" + name }
	for _, hop := range []struct{ dst, src string }{
		{"details", "productpage"}, {"reviews", "productpage"}, {"ratings", "reviews"}, {"productpage", ""},
	} {
		pods, err := m.pods(ctx, "app="+hop.dst)
		if err != nil || len(pods) == 0 {
			t.Fatalf("pods of %s: %v", hop.dst, err)
		}
		want := []string{`reporter="destination"`, `destination_principal="` + sa(hop.dst) + `"`, `response_code="200"`}
		if hop.src != "" {
			want = append(want, `source_principal="`+sa(hop.src)+`"`, `connection_security_policy="mutual_tls"`)
		} else {
			// productpage is called by the ingress gateway, whose
			// identity is its own ServiceAccount's in istio-system.
			want = append(want, `source_principal="`+td+inject.SystemNamespace+`/sa/istio-ingressgateway-service-account"`, `connection_security_policy="mutual_tls"`)
		}
		found := false
		for _, p := range pods {
			metrics, err := scrape(ctx, p.Status.PodIP)
			if err != nil {
				t.Fatal(err)
			}
			found = found || hasSeries(metrics, "istio_requests_total{", want)
		}
		if !found {
			t.Errorf("no istio_requests_total of %s with %v", hop.dst, want)
		}
	}

	// The same client three times: `weft load`, failing on any error.
	outside, err := m.namespace("outside", false)
	if err != nil {
		t.Fatal(err)
	}
	details := fmt.Sprintf("http://details.%s:9080/details/0", m.ns)
	type client struct {
		ns, name, url string
		wantOK        bool
	}
	clients := []client{
		{m.ns, "in-mesh", details, true},
		{outside, "outside", details, false},
		{outside, "outside-via-gateway", m.gateway + "/productpage", true},
	}
	for _, c := range clients {
		kubetest.CreatePod(t, m.c, c.ns, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: c.name},
			Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "load", Image: m.image, ImagePullPolicy: corev1.PullIfNotPresent,
					Args: []string{"load", c.url, "--qps", "5", "--duration", "1s", "--timeout", "5s", "--fail-on-error"},
				}},
			},
		})
	}
	for _, c := range clients {
		var phase corev1.PodPhase
		kubetest.Poll(t, 2*time.Minute, "pod "+c.ns+"/"+c.name+" to finish", func() bool {
			p, err := m.c.Kube.CoreV1().Pods(c.ns).Get(ctx, c.name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			phase = p.Status.Phase
			return phase == corev1.PodSucceeded || phase == corev1.PodFailed
		})
		logs, _ := m.c.Kube.CoreV1().Pods(c.ns).GetLogs(c.name, &corev1.PodLogOptions{Container: "load"}).DoRaw(ctx)
		ok := phase == corev1.PodSucceeded
		t.Logf("%s/%s -> %s: %s\n%s", c.ns, c.name, c.url, phase, lastLines(string(logs), 3))
		if ok != c.wantOK {
			t.Errorf("%s/%s -> %s: %s, want success=%v\n%s", c.ns, c.name, c.url, phase, c.wantOK, logs)
		}
	}
}

// scrape GETs a pod's sidecar metrics (:15090, never captured).
func scrape(ctx context.Context, ip string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ip+":15090/stats/prometheus", nil)
	if err != nil {
		return "", err
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("metrics of %s: %w", ip, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// failedSeries lists the istio_requests_total series of every Bookinfo
// pod and the gateway whose response code is not 200, for failure
// messages: they say which hop failed and how (response_flags).
func (m *mesh) failedSeries(ctx context.Context) string {
	return m.failedSeriesIn(ctx, m.ns)
}

// failedSeriesIn is failedSeries for the pods of namespace ns.
func (m *mesh) failedSeriesIn(ctx context.Context, ns string) string {
	var b strings.Builder
	l, _ := m.c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	var pods []corev1.Pod
	if l != nil {
		pods = l.Items
	}
	gw, _ := m.c.Kube.CoreV1().Pods(inject.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: "istio=ingressgateway"})
	pods = append(pods, gw.Items...)
	for _, p := range pods {
		metrics, err := scrape(ctx, p.Status.PodIP)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", p.Name, err)
			continue
		}
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, "istio_requests_total{") && !strings.Contains(l, `response_code="200"`) {
				fmt.Fprintf(&b, "%s: %s\n", p.Name, l)
			}
		}
	}
	return b.String()
}

// hasSeries reports whether a line of metric name holds every label in want.
func hasSeries(metrics, name string, want []string) bool {
	for _, l := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(l, name) {
			continue
		}
		all := true
		for _, w := range want {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}

// TestValidationWebhook: kubectl apply of an invalid VirtualService is
// refused by the installed webhook, naming the object and the field, and
// nothing is stored.
func TestValidationWebhook(t *testing.T) {
	m := meshFor(t)
	bad := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-bad
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        subset: v1
`
	_, errOut, ok := kubetest.Kubectl(t, bad, "apply", "-n", m.ns, "-f", "-")
	want := `admission webhook "validation.istio.io" denied the request: VirtualService ` + m.ns + `/reviews-bad: spec.http[0].route[0].destination.host: required`
	if ok || !strings.Contains(errOut, want) {
		t.Errorf("kubectl apply of an invalid VirtualService: ok=%v\n%s\nwant %s", ok, errOut, want)
	}
	if out, errOut, ok := kubetest.Kubectl(t, "", "get", "vs", "reviews-bad", "-n", m.ns); ok || !strings.Contains(errOut, "NotFound") {
		t.Errorf("the refused VirtualService was stored: %s%s", out, errOut)
	}
}
