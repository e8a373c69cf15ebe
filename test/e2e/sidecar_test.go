package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var outboundOf = regexp.MustCompile(`msg="workload registered".* outbound=(\S+)`)

// outbound returns the outbound (HTTP_PROXY) address of a `weft run`
// sidecar, from its log.
func outbound(t *testing.T, p *proc) string {
	t.Helper()
	var addr string
	eventually(t, 30*time.Second, p.name+" registered", func() error {
		m := outboundOf.FindStringSubmatch(p.output())
		if m == nil {
			return fmt.Errorf("not yet")
		}
		addr = m[1]
		return nil
	})
	return addr
}

// viaProxy sends GET http://host/ through a sidecar's outbound address, as
// its app would through HTTP_PROXY.
func viaProxy(proxyAddr, host string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})}}
	resp, err := c.Get("http://" + host + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestSidecarScopesProxies: an Istio Sidecar narrows what a proxy
// receives to the hosts its egress lists (`weft proxy-config clusters`
// shows only those), and traffic to any other host follows its
// outboundTrafficPolicy: REGISTRY_ONLY answers 502, as Istio's block_all.
func TestSidecarScopesProxies(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "alpha", "v1")
	m.echo("default", "beta", "v1")
	web := m.echo("default", "web", "v1")
	out := outbound(t, web)

	clusters := func() string {
		o, _ := m.weft("", "proxy-config", "clusters", "web-v1")
		return o
	}
	eventually(t, 30*time.Second, "web has both services", func() error {
		if c := clusters(); !strings.Contains(c, "alpha.default.svc.cluster.local") || !strings.Contains(c, "beta.default.svc.cluster.local") {
			return fmt.Errorf("clusters:\n%s", c)
		}
		for _, h := range []string{"alpha", "beta"} {
			if code, body, err := viaProxy(out, h+":8080"); err != nil || code != 200 {
				return fmt.Errorf("%s: %d %q %v", h, code, body, err)
			}
		}
		return nil
	})

	m.weft(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web}
spec:
  workloadSelector: {labels: {app: web}}
  egress:
  - hosts: ["./alpha.default.svc.cluster.local"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`, "apply", "-f", "-", "--wait")
	c := clusters()
	if !strings.Contains(c, "alpha.default.svc.cluster.local") || strings.Contains(c, "beta.default.svc.cluster.local") || strings.Contains(c, "web.default.svc.cluster.local") {
		t.Errorf("under the Sidecar web's clusters are:\n%s\nwant alpha's only", c)
	}
	if code, body, err := viaProxy(out, "alpha:8080"); err != nil || code != 200 {
		t.Errorf("alpha under the Sidecar: %d %q %v", code, body, err)
	}
	if code, body, err := viaProxy(out, "beta:8080"); err != nil || code != 502 {
		t.Errorf("beta, outside the Sidecar, REGISTRY_ONLY: %d %q %v, want 502", code, body, err)
	}
	// Other proxies are not scoped by web's Sidecar.
	if o, _ := m.weft("", "proxy-config", "clusters", "alpha-v1"); !strings.Contains(o, "beta.default.svc.cluster.local") {
		t.Errorf("alpha's clusters lost beta:\n%s", o)
	}

	// Removing the Sidecar restores everything.
	if o, code := m.weft("", "delete", "sidecar", "web", "--wait"); code != 0 {
		t.Fatalf("delete sidecar: %s", o)
	}
	if code, body, err := viaProxy(out, "beta:8080"); err != nil || code != 200 {
		t.Errorf("beta after the Sidecar went: %d %q %v", code, body, err)
	}
}
