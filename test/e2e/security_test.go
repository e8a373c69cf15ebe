package e2e

import (
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// mtlsGet fetches path from addr over mutual TLS with client c.
func mtlsGet(c *http.Client, addr, path string) (int, string, error) {
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// waitEcho waits until the gateway answers 200 from the echo service.
func waitEcho(t *testing.T, m *mesh) {
	t.Helper()
	eventually(t, 30*time.Second, "gateway reaches echo", func() error {
		code, body, err := get(m.gateway, "", "/", nil)
		if err != nil || code != 200 || !strings.HasPrefix(body, "echo ") {
			return fmt.Errorf("%d %v %q", code, err, body)
		}
		return nil
	})
}

// TestMutualTLSByDefault: with no security config at all, the gateway
// reaches a sidecar over mTLS, a plaintext client and a client with a
// certificate from another CA are refused, and a client with a mesh
// certificate gets in. Secrets stay on disk with mode 0600 and out of
// proxy-config, and the API refuses writes without its token.
func TestMutualTLSByDefault(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.apply("default", edge(""))
	waitEcho(t, m)
	in := m.inbound("default", "echo", "v1")

	if code, body, err := get(in, "", "/", nil); err == nil {
		t.Fatalf("plaintext request to a STRICT sidecar answered %d %q; want the connection refused", code, body)
	}

	forged := mtlsClient(strangerCA(t).clientCert(t, "spiffe://cluster.local/ns/default/sa/default"), nil, nil)
	if code, _, err := mtlsGet(forged, in, "/"); err == nil {
		t.Fatalf("a certificate from another CA was accepted (%d)", code)
	}

	ca := meshCA(t, m)
	var server *x509.Certificate
	good := mtlsClient(ca.clientCert(t, "spiffe://cluster.local/ns/default/sa/sleep"), ca.pool, func(c *x509.Certificate) { server = c })
	code, body, err := mtlsGet(good, in, "/")
	if err != nil || code != 200 || !strings.HasPrefix(body, "echo v1") {
		t.Fatalf("mesh certificate: %d %v %q", code, err, body)
	}
	if len(server.URIs) != 1 || server.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/default" {
		t.Errorf("sidecar's certificate names %v; want spiffe://cluster.local/ns/default/sa/default", server.URIs)
	}
	if ttl := server.NotAfter.Sub(server.NotBefore); ttl > 2*time.Hour {
		t.Errorf("sidecar certificate lives %v; want a short-lived SVID", ttl)
	}

	for _, f := range []string{".weft/api-token", ".weft/join-tokens.json", ".weft/ca/root-key.pem"} {
		st, err := os.Stat(filepath.Join(m.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}

	for _, format := range []string{"json", "yaml"} {
		out, _ := m.weft("", "proxy-config", "secret", proxyName(t, m, "echo-v1"), "-o", format)
		if strings.Contains(out, "PRIVATE KEY") || !strings.Contains(out, "[redacted]") {
			t.Errorf("proxy-config secret -o %s shows a private key or no redaction:\n%.600s", format, out)
		}
	}
	if out, _ := m.weft("", "proxy-config", "secret", proxyName(t, m, "echo-v1")); strings.Contains(out, "PRIVATE KEY") || !strings.Contains(out, "Cert Chain   true") {
		t.Errorf("proxy-config secret table:\n%.600s", out)
	}

	resp, err := http.Post("http://"+m.api+"/api/v1/apply", "application/json", strings.NewReader(`{"sources":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("write without the API token: %d, want 401", resp.StatusCode)
	}

	// The destination sidecar reports the connection as mutual TLS.
	eventually(t, 20*time.Second, "mutual_tls in the control plane's metrics", func() error {
		b, err := httpGet("http://" + m.api + "/metrics")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(b, "\n") {
			if strings.HasPrefix(line, "istio_requests_total{") && strings.Contains(line, `reporter="destination"`) &&
				strings.Contains(line, `destination_workload="echo-v1"`) && strings.Contains(line, `connection_security_policy="mutual_tls"`) {
				return nil
			}
		}
		return fmt.Errorf("no destination-reported mutual_tls request to echo-v1 yet")
	})
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestPeerAuthenticationModes walks Istio's PeerAuthentication examples:
// namespace PERMISSIVE takes plaintext and mTLS, a workload DISABLE with the
// gateway still reaching it (auto mTLS follows the destination's mode), and
// removing the policies restores STRICT.
func TestPeerAuthenticationModes(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.apply("default", edge(""))
	waitEcho(t, m)
	in := m.inbound("default", "echo", "v1")
	ca := meshCA(t, m)
	good := mtlsClient(ca.clientCert(t, "spiffe://cluster.local/ns/default/sa/sleep"), ca.pool, nil)

	m.apply("default", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec:
  mtls: {mode: PERMISSIVE}
`)
	eventually(t, 15*time.Second, "PERMISSIVE takes plaintext", func() error {
		code, _, err := get(in, "", "/", nil)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	if code, _, err := mtlsGet(good, in, "/"); err != nil || code != 200 {
		t.Fatalf("PERMISSIVE refused mTLS: %d %v", code, err)
	}

	m.apply("default", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: echo-off}
spec:
  selector: {matchLabels: {app: echo}}
  mtls: {mode: DISABLE}
`)
	eventually(t, 15*time.Second, "DISABLE refuses TLS", func() error {
		if code, _, err := mtlsGet(good, in, "/"); err == nil {
			return fmt.Errorf("TLS still answered %d", code)
		}
		return nil
	})
	for i := 0; i < 20; i++ {
		if code, body, err := get(m.gateway, "", "/", nil); err != nil || code != 200 {
			t.Fatalf("gateway to a DISABLE workload: %d %v %q", code, err, body)
		}
	}

	m.weft("", "delete", "-n", "default", "peerauthentication", "echo-off")
	m.weft("", "delete", "-n", "default", "peerauthentication", "default")
	eventually(t, 15*time.Second, "STRICT again without policies", func() error {
		if code, _, err := get(in, "", "/", nil); err == nil {
			return fmt.Errorf("plaintext still answered %d", code)
		}
		return nil
	})
	waitEcho(t, m)
}

// TestCertificateRotationUnderLoad: with certificates living 4 seconds the
// sidecar's certificate changes several times while requests flow through
// the gateway, and not one request fails.
func TestCertificateRotationUnderLoad(t *testing.T) {
	m, _ := upMeshWith(t, "", "--cert-ttl", "4s")
	m.echo("default", "echo", "v1")
	m.apply("default", edge(""))
	waitEcho(t, m)
	in := m.inbound("default", "echo", "v1")
	ca := meshCA(t, m)

	var mu sync.Mutex
	serials := map[string]bool{}
	probe := func() {
		c := mtlsClient(ca.clientCert(t, "spiffe://cluster.local/ns/default/sa/probe"), ca.pool, func(c *x509.Certificate) {
			mu.Lock()
			serials[c.SerialNumber.String()] = true
			mu.Unlock()
		})
		if code, _, err := mtlsGet(c, in, "/"); err != nil || code != 200 {
			t.Errorf("probe: %d %v", code, err)
		}
	}
	l := startLoad(m.gateway, 4, func(code int, body string) bool { return code == 200 && strings.HasPrefix(body, "echo v1") })
	// Renewed every 2 s: the load runs until the sidecar has presented
	// three certificates (the bound only stops a build that never rotates).
	eventually(t, 2*time.Minute, "three certificates presented under load", func() error {
		probe()
		mu.Lock()
		defer mu.Unlock()
		if len(serials) < 3 {
			return fmt.Errorf("%d distinct certificates so far", len(serials))
		}
		return nil
	})
	l.finish(t)
}

// proxyName returns the instance name of the connected proxy of workload wl.
func proxyName(t *testing.T, m *mesh, wl string) string {
	t.Helper()
	var list struct {
		Proxies []struct{ Name, Workload string }
	}
	if err := jsonGet("http://"+m.api+"/api/v1/proxies", &list); err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Proxies {
		if p.Workload == wl {
			return p.Name
		}
	}
	t.Fatalf("no connected proxy of workload %s in %+v", wl, list.Proxies)
	return ""
}

// TestTrustDomain: with --trust-domain, certificates, the SANs clients
// expect and the principals in metrics all name that domain.
func TestTrustDomain(t *testing.T) {
	m, _ := upMeshWith(t, "", "--trust-domain", "example.org")
	m.echo("default", "echo", "v1")
	m.apply("default", edge(""))
	waitEcho(t, m) // the gateway accepted the sidecar's example.org certificate
	ca := meshCA(t, m)
	var server *x509.Certificate
	c := mtlsClient(ca.clientCert(t, "spiffe://example.org/ns/default/sa/sleep"), ca.pool, func(c *x509.Certificate) { server = c })
	if code, _, err := mtlsGet(c, m.inbound("default", "echo", "v1"), "/"); err != nil || code != 200 {
		t.Fatalf("mTLS to the sidecar: %d %v", code, err)
	}
	if len(server.URIs) != 1 || server.URIs[0].String() != "spiffe://example.org/ns/default/sa/default" {
		t.Errorf("sidecar certificate names %v", server.URIs)
	}
	eventually(t, 20*time.Second, "principals in metrics name example.org", func() error {
		b, err := httpGet("http://" + m.api + "/metrics")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(b, "\n") {
			if strings.Contains(line, `reporter="destination"`) && strings.Contains(line, `destination_workload="echo-v1"`) &&
				strings.Contains(line, `destination_principal="spiffe://example.org/ns/default/sa/default"`) &&
				strings.Contains(line, `source_principal="spiffe://example.org/ns/istio-system/sa/istio-ingressgateway-service-account"`) {
				return nil
			}
		}
		return fmt.Errorf("no destination series with example.org principals yet")
	})
}
