package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weft-mesh/weft/internal/netnstest"
	"github.com/weft-mesh/weft/xds/node"
)

// capturedMesh is a control plane and captured pods, each in a network
// namespace of its own, linked by a bridge in the control plane's
// namespace (10.30.0.1), which also plays the world outside the mesh.
type capturedMesh struct {
	t      *testing.T
	prefix string
	cp     *netnstest.NS
	state  string // the control plane's state directory
	shared string // what the sidecars' user may read: root certificate, token, labels
	nextIP int
}

const cpAddr = "10.30.0.1"

func newCapturedMesh(t *testing.T) *capturedMesh {
	netnstest.Require(t)
	// The sidecars run as their own user, who must be able to run weft.
	if err := os.Chmod(filepath.Dir(weftBin), 0o755); err != nil {
		t.Fatal(err)
	}
	shared, err := os.MkdirTemp("", "weft-capture-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &capturedMesh{t: t, prefix: netnstest.Prefix(), state: filepath.Join(t.TempDir(), "state"), shared: shared, nextIP: 2}
	m.cp = netnstest.New(t, m.prefix+"-cp")
	m.cp.Bridge("br0", cpAddr+"/24")
	// The pods share the mesh-wide join token (this test is about capture;
	// identity-scoped tokens have their own tests).
	cp := startWith(t, t.TempDir(), "weft controlplane", nil, m.cp.Start, "controlplane", "--state-dir", m.state,
		"--api-addr", "127.0.0.1:15080", "--xds-addr", cpAddr+":15010", "--join-token-scope", "mesh")
	eventually(t, 20*time.Second, "control plane serving xDS over TLS", func() error {
		if !strings.Contains(cp.output(), "xds_tls=true") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	for _, f := range []struct{ from, to string }{
		{filepath.Join(m.state, "ca", "root-cert.pem"), "root-cert.pem"},
		{filepath.Join(m.state, "join-token"), "token"},
	} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shared, f.to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// weft runs the CLI inside the control plane's namespace.
func (m *capturedMesh) weft(stdin string, args ...string) string {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, append(args, "--server", "http://127.0.0.1:15080", "--state-dir", m.state)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := m.cp.Start(cmd); err != nil {
		m.t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		m.t.Fatalf("weft %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// capturedPod is a pod: its namespace, address and sidecar.
type capturedPod struct {
	ns    *netnstest.NS
	ip    string
	proxy *proc
}

// pod starts a pod: a namespace linked to the bridge, the capture rules
// (`weft iptables`, as root, as the init container), and `weft proxy
// sidecar` in pod mode as the sidecar's user, with the identity and probes
// the injector would give it.
func (m *capturedMesh) pod(name, serviceAccount string, labels map[string]string, probes string) *capturedPod {
	m.t.Helper()
	p := &capturedPod{ns: netnstest.New(m.t, fmt.Sprintf("%s-%s", m.prefix, name)), ip: fmt.Sprintf("10.30.0.%d", m.nextIP)}
	m.nextIP++
	p.ns.Attach(m.cp, "br0", "v"+name, p.ip+"/24")
	p.ns.IP("route", "add", "10.96.0.0/16", "via", cpAddr) // the service range, as a node routes it
	ipt := exec.Command(weftBin, "iptables")
	out, err := runInNS(p.ns, ipt)
	if err != nil {
		m.t.Fatalf("weft iptables in %s: %v\n%s", name, err, out)
	}
	var lines []string
	for k, v := range labels {
		lines = append(lines, fmt.Sprintf("%s=%q", k, v))
	}
	labelsFile := filepath.Join(m.shared, name+"-labels")
	if err := os.WriteFile(labelsFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		m.t.Fatal(err)
	}
	env := []string{
		"INTERCEPTION_MODE=REDIRECT", "POD_NAME=" + name + "-7c9d", "POD_NAMESPACE=default", "INSTANCE_IP=" + p.ip,
		"SERVICE_ACCOUNT=" + serviceAccount, "ISTIO_META_WORKLOAD_NAME=" + name,
		"WEFT_POD_LABELS=" + labelsFile, "WEFT_XDS_ADDRESS=" + cpAddr + ":15010",
		"WEFT_CA_ROOT=" + filepath.Join(m.shared, "root-cert.pem"), "WEFT_JOIN_TOKEN_FILE=" + filepath.Join(m.shared, "token"),
		"ISTIO_KUBE_APP_PROBERS=" + probes,
	}
	asSidecar := func(cmd *exec.Cmd) error {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: node.ProxyUID, Gid: node.ProxyUID}
		return p.ns.Start(cmd)
	}
	p.proxy = startWith(m.t, "/", "sidecar "+name, env, asSidecar, "proxy", "sidecar", "--access-log", "json")
	return p
}

// runInNS runs cmd to completion inside ns.
func runInNS(ns *netnstest.NS, cmd *exec.Cmd) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := ns.Start(cmd); err != nil {
		return "", err
	}
	err := cmd.Wait()
	return out.String(), err
}

// app serves HTTP inside ns at addr, answering who it is and how it was
// reached.
func app(t *testing.T, ns *netnstest.NS, addr, version string) {
	t.Helper()
	ln, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			io.WriteString(w, "ok")
			return
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "hello %s from=%s host=%s", version, host, r.Host)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// call sends GET url from ns, with Host host (when set) and headers.
func call(ns *netnstest.NS, url, host string, hdr ...string) (int, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ns.HTTPClient(10 * time.Second).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expect polls until GET url from ns answers 200 with a body starting
// with want.
func expect(t *testing.T, ns *netnstest.NS, url, host, want string, hdr ...string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("GET %s (Host %q) answers %q", url, host, want), func() error {
		code, body, err := call(ns, url, host, hdr...)
		if err != nil {
			return err
		}
		if code != 200 || !strings.HasPrefix(body, want) {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
}

const capturedServices = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hello}
spec:
  hosts: [hello.default.svc.cluster.local]
  addresses: [10.96.0.20]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  endpoints:
  - {address: 10.30.0.3, serviceAccount: hello, labels: {app: hello, version: v1, security.istio.io/tlsMode: istio}}
  - {address: 10.30.0.4, serviceAccount: hello, labels: {app: hello, version: v2, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hello}
spec:
  host: hello
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello}
spec:
  hosts: [hello]
  http:
  - match: [{headers: {x-version: {exact: v2}}}]
    route: [{destination: {host: hello, subset: v2}}]
  - route: [{destination: {host: hello, subset: v1}}]
`

// TestCapturedPods runs captured pods as Kubernetes would, without
// Kubernetes: network namespaces, `weft iptables`, sidecars in pod mode as
// user 1337, apps that know nothing of the mesh. An app reaches a service
// by its address and name, routed by a VirtualService over mutual TLS to
// apps listening on all addresses or only on their pod IP; addresses
// outside the mesh are passed through; hosts outside the mesh reach a
// PERMISSIVE app, not a STRICT one; the kubelet's probes reach the apps
// through port 15020.
func TestCapturedPods(t *testing.T) {
	m := newCapturedMesh(t)
	m.weft(capturedServices, "apply", "-n", "default", "-f", "-")
	client := m.pod("client", "client", map[string]string{"app": "client"}, "")
	probes := `{"/app-health/hello/readyz":{"httpGet":{"path":"/healthz","port":8080,"scheme":"HTTP"},"timeoutSeconds":2},` +
		`"/app-health/hello/livez":{"tcpSocket":{"port":8080}},"/app-health/broken/livez":{"tcpSocket":{"port":8081}}}`
	v1 := m.pod("hello-v1", "hello", map[string]string{"app": "hello", "version": "v1"}, probes)
	v2 := m.pod("hello-v2", "hello", map[string]string{"app": "hello", "version": "v2"}, "")
	app(t, v1.ns, "0.0.0.0:8080", "v1") // on every address
	app(t, v2.ns, v2.ip+":8080", "v2")  // on the pod IP only

	// Outside-the-mesh servers, in the control plane's namespace.
	app(t, m.cp, cpAddr+":80", "outside")
	tcpEcho := func() {
		ln, err := m.cp.Listen("tcp", cpAddr+":9000")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					fmt.Fprintf(c, "echo for %s: ", c.RemoteAddr().(*net.TCPAddr).IP)
					io.Copy(c, c)
				}()
			}
		}()
	}
	tcpEcho()

	for _, p := range []*capturedPod{client, v1, v2} {
		expect(t, m.cp, "http://"+p.ip+":15021/healthz/ready", "", "ready")
	}

	t.Run("outbound by service address and name, per VirtualService, mTLS", func(t *testing.T) {
		expect(t, client.ns, "http://10.96.0.20/", "", "hello v1 from=127.0.0.6 host=10.96.0.20")
		expect(t, client.ns, "http://10.96.0.20/", "hello", "hello v1 from=127.0.0.6 host=hello")
		expect(t, client.ns, "http://10.96.0.20/", "hello.default.svc.cluster.local", "hello v2", "x-version", "v2")
		// The destination sidecars took the calls over mutual TLS from the client's identity.
		for _, p := range []*capturedPod{v1, v2} {
			eventually(t, 10*time.Second, p.ip+" reports a mutual_tls request from the client's identity", func() error {
				_, stats, err := call(m.cp, "http://"+p.ip+":15090/stats/prometheus", "")
				if err != nil {
					return err
				}
				for _, line := range strings.Split(stats, "\n") {
					if strings.HasPrefix(line, "istio_requests_total{") && strings.Contains(line, `reporter="destination"`) &&
						strings.Contains(line, `connection_security_policy="mutual_tls"`) &&
						strings.Contains(line, `source_principal="spiffe://cluster.local/ns/default/sa/client"`) {
						return nil
					}
				}
				return fmt.Errorf("not in its stats:\n%s", stats)
			})
		}
	})

	t.Run("passthrough outside the mesh", func(t *testing.T) {
		expect(t, client.ns, "http://"+cpAddr+"/", "", "hello outside from="+client.ip)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := client.ns.DialContext(ctx, "tcp", cpAddr+":9000")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "ping\n")
		want := "echo for " + client.ip + ": ping\n"
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
			t.Fatalf("TCP passthrough: %q %v", buf, err)
		}
		eventually(t, 10*time.Second, "the client's sidecar logs the passthrough", func() error {
			if !strings.Contains(client.proxy.output(), `"upstream_cluster":"PassthroughCluster"`) {
				return fmt.Errorf("no PassthroughCluster in its access log")
			}
			return nil
		})
	})

	t.Run("inbound from outside the mesh", func(t *testing.T) {
		// STRICT (the default): plaintext is refused.
		if code, body, err := call(m.cp, "http://"+v1.ip+":8080/", ""); err == nil {
			t.Errorf("plaintext to a STRICT pod answered %d %q", code, body)
		}
		m.weft(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: hello}
spec:
  selector: {matchLabels: {app: hello}}
  mtls: {mode: PERMISSIVE}
`, "apply", "-n", "default", "-f", "-")
		expect(t, m.cp, "http://"+v1.ip+":8080/", "", "hello v1 from=127.0.0.6")
		expect(t, m.cp, "http://"+v2.ip+":8080/", "", "hello v2 from=127.0.0.6")
	})

	t.Run("app probes through 15020", func(t *testing.T) {
		for path, want := range map[string]int{
			"/app-health/hello/readyz": 200, "/app-health/hello/livez": 200, "/app-health/broken/livez": 503,
		} {
			code, body, err := call(m.cp, "http://"+v1.ip+":15020"+path, "")
			if err != nil || code != want {
				t.Errorf("%s: %d %q %v, want %d", path, code, body, err, want)
			}
		}
	})
}
