package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-mesh/weft/internal/rawhttp"
)

// This file holds the end-to-end checks of issue 14's findings: what an
// adversarial review of the local mesh got through.

// TestStateFilePermissions: after chmod 644 on the CA key and the API
// token and 777 on the state directory, the control plane refuses to
// start, naming each file and the chmod that fixes it (it restarted
// silently before). Fixed, it starts again.
func TestStateFilePermissions(t *testing.T) {
	m, cp := startControlPlane(t)
	dir, state := m.dir, filepath.Join(m.dir, ".weft")
	cp.stop(10 * time.Second)

	key, apiTok := filepath.Join(state, "ca", "root-key.pem"), filepath.Join(state, "api-token")
	for path, mode := range map[string]os.FileMode{key: 0o644, apiTok: 0o644, state: 0o777} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	p := start(t, dir, "weft controlplane (loose modes)", "controlplane", "--api-addr", anyPort, "--xds-addr", anyPort)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the control plane started with world-readable secrets:\n%s", p.output())
	}
	out := p.output()
	if p.cmd.ProcessState.ExitCode() == 0 {
		t.Errorf("exit code 0 with loose modes")
	}
	for _, want := range []string{"chmod 600 " + key, "chmod 600 " + apiTok, "chmod go-w " + state} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, path := range []string{key, apiTok} {
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(state, 0o700); err != nil {
		t.Fatal(err)
	}
	fixed := start(t, dir, "weft controlplane (fixed modes)", "controlplane", "--api-addr", anyPort, "--xds-addr", anyPort)
	m.readEndpoints(fixed)
	m.waitAPI()
}

// adminReady reports whether a proxy's admin server answers /ready 200.
func adminReady(admin string) bool {
	code, _, err := get(admin, "", "/ready", nil)
	return err == nil && code == 200
}

// createToken runs `weft token create` in the mesh's folder and returns
// the token it prints on stdout.
func (m *mesh) createToken(ns, sa string, env ...string) (string, string, error) {
	m.t.Helper()
	cmd := exec.Command(weftBin, "token", "create", "--server", "http://"+m.api, "-n", ns, "--service-account", sa)
	cmd.Dir = m.dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), stderr.String(), err
}

// TestJoinTokensAreScoped: issue 14 showed a proxy holding the mesh-wide
// join token getting certificates for default/bookinfo-productpage,
// istio-system's gateway, even kube-system/admin. Now there is no such
// token by default: `weft token create` (with the API token) prints a token
// for one identity, a proxy claiming another with it is refused with a
// message naming both, one claiming that identity joins, and `weft run`
// mints its own token and revokes it when it exits.
func TestJoinTokensAreScoped(t *testing.T) {
	m := upMesh(t, "")
	if _, err := os.Stat(filepath.Join(m.dir, ".weft", "join-token")); err == nil {
		t.Error("weft up made a mesh-wide join token without --join-token-scope mesh")
	}
	if _, stderr, err := m.createToken("default", "bookinfo-reviews", "WEFT_TOKEN=not-the-api-token"); err == nil || !strings.Contains(stderr, "wrong API token") {
		t.Errorf("token create with a wrong API token: %v %s", err, stderr)
	}
	tok, stderr, err := m.createToken("default", "bookinfo-reviews")
	if err != nil || tok == "" || !strings.Contains(stderr, "admits default/bookinfo-reviews") {
		t.Fatalf("weft token create: %v %q %s", err, tok, stderr)
	}
	tokenFile := filepath.Join(m.dir, "reviews.token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sidecar := func(name, ns, sa string) (string, *proc) {
		p, admin := m.startProxy("weft proxy "+name, "sidecar", "--xds", m.xds, "--join-token-file", tokenFile,
			"--name", name, "-n", ns, "--service-account", sa, "--labels", "app="+name, "--outbound", anyPort)
		return admin, p
	}
	_, forged := sidecar("forged", "default", "bookinfo-productpage")
	_, admin := sidecar("forged-admin", "kube-system", "admin")
	own, _ := sidecar("reviews", "default", "bookinfo-reviews")
	eventually(t, 20*time.Second, "the proxy claiming the token's identity joins", func() error {
		if !adminReady(own) {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	for p, claim := range map[*proc]string{forged: "default/bookinfo-productpage", admin: "kube-system/admin"} {
		eventually(t, 20*time.Second, "the refusal of "+claim+" in the proxy's log", func() error {
			if out := p.output(); !strings.Contains(out, "admits identity default/bookinfo-reviews only; the proxy claims "+claim) {
				return fmt.Errorf("not yet:\n%s", out)
			}
			return nil
		})
	}
	if out := m.up.output(); !strings.Contains(out, "the proxy claims default/bookinfo-productpage") {
		t.Errorf("the control plane did not log the refusal:\n%s", out)
	}

	// weft run mints a token for its own identity, and revokes it at exit.
	echo := m.echo("default", "echo", "v1")
	m.apply("default", edge(""))
	waitEcho(t, m)
	out, code := m.weft("", "token", "list")
	if code != 0 || !strings.Contains(out, "default/default") || !strings.Contains(out, "weft run default/echo") {
		t.Fatalf("weft token list (%d):\n%s", code, out)
	}
	echo.stop(10 * time.Second)
	out, _ = m.weft("", "token", "list")
	if strings.Contains(out, "weft run default/echo") {
		t.Errorf("weft run's token outlived it:\n%s", out)
	}
}

// TestMeshWideJoinTokenOptIn: with --join-token-scope mesh the control
// plane makes STATE_DIR/join-token, and a proxy holding it may join as any
// identity, as before; the default refuses that same file.
func TestMeshWideJoinTokenOptIn(t *testing.T) {
	m, cp := startControlPlane(t, "--join-token-scope", "mesh")
	state := filepath.Join(m.dir, ".weft")
	if !strings.Contains(cp.output(), "whoever holds") {
		t.Errorf("no warning about the mesh-wide token:\n%s", cp.output())
	}
	_, admin := m.startProxy("weft proxy", "sidecar", "--xds", m.xds, "--join-token-file", filepath.Join(state, "join-token"),
		"--name", "any", "-n", "kube-system", "--service-account", "admin", "--outbound", anyPort)
	eventually(t, 20*time.Second, "a proxy with the mesh-wide token joins as any identity", func() error {
		if !adminReady(admin) {
			return fmt.Errorf("not ready")
		}
		return nil
	})
}

// rawStatus sends one raw HTTP/1.1 request to addr and returns the
// answer's status code.
func rawStatus(t *testing.T, addr, req string) int {
	t.Helper()
	resp, err := rawhttp.Send(addr, req, 15*time.Second)
	if err != nil {
		t.Fatalf("no answer to %q: %v", req, err)
	}
	return resp.Status
}

// TestAdminAndAPIRefuseWebPages: issue 14 stopped `weft up`'s gateway for
// good with a POST /quitquitquit any web page can send, and read
// /config_dump under any Host. Now the gateway's admin server and the
// control plane's API refuse cross-origin requests and foreign Host names
// (DNS rebinding), and when the gateway does stop (a local
// /quitquitquit), weft up says so and starts it again.
func TestAdminAndAPIRefuseWebPages(t *testing.T) {
	// weft up's terminal shows warnings only; the restart is logged at info.
	m, admin := upMeshWith(t, "", "--log-level", "info")
	eventually(t, 20*time.Second, "the gateway is ready", func() error {
		if !adminReady(admin) {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	_, port, _ := net.SplitHostPort(admin)

	evil := "POST /quitquitquit HTTP/1.1\r\nHost: " + admin + "\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nquit"
	if code := rawStatus(t, admin, evil); code != http.StatusForbidden {
		t.Errorf("cross-origin POST /quitquitquit: %d, want 403", code)
	}
	if code := rawStatus(t, admin, "GET /config_dump HTTP/1.1\r\nHost: evil.example:"+port+"\r\n\r\n"); code != http.StatusForbidden {
		t.Errorf("GET /config_dump with Host evil.example: %d, want 403", code)
	}
	if code := rawStatus(t, admin, "GET /config_dump HTTP/1.1\r\nHost: localhost:"+port+"\r\n\r\n"); code != http.StatusOK {
		t.Errorf("GET /config_dump with Host localhost: %d, want 200", code)
	}
	if !adminReady(admin) {
		t.Fatal("the gateway stopped after the refused requests")
	}
	_, apiPort, _ := net.SplitHostPort(m.api)
	if code := rawStatus(t, m.api, "GET /api/v1/objects HTTP/1.1\r\nHost: evil.example:"+apiPort+"\r\n\r\n"); code != http.StatusForbidden {
		t.Errorf("API read with Host evil.example: %d, want 403", code)
	}
	tok, err := os.ReadFile(filepath.Join(m.dir, ".weft", "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	apply := "POST /api/v1/apply HTTP/1.1\r\nHost: " + m.api + "\r\nOrigin: http://evil.example\r\nAuthorization: Bearer " + strings.TrimSpace(string(tok)) +
		"\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}"
	if code := rawStatus(t, m.api, apply); code != http.StatusForbidden {
		t.Errorf("cross-origin apply: %d, want 403", code)
	}

	// A local client may still stop the gateway; weft up brings it back.
	if code := rawStatus(t, admin, "POST /quitquitquit HTTP/1.1\r\nHost: "+admin+"\r\nContent-Length: 0\r\n\r\n"); code != http.StatusOK {
		t.Fatalf("local POST /quitquitquit: %d", code)
	}
	eventually(t, 30*time.Second, "weft up reports the exit and restarts the gateway", func() error {
		out := m.up.output()
		if !strings.Contains(out, "ingress gateway exited while the mesh is up") || !strings.Contains(out, "ingress gateway restarted") {
			return fmt.Errorf("not in weft up's output yet")
		}
		if !adminReady(admin) {
			return fmt.Errorf("gateway admin not ready")
		}
		return nil
	})
	m.echo("default", "echo", "v1")
	m.apply("default", edge(""))
	waitEcho(t, m)
}

// headerLines returns n header lines "X-Hi: i".
func headerLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "X-H%d: %d\r\n", i, i)
	}
	return b.String()
}

// checkFraming sends issue 14's requests as raw bytes to an HTTP listener
// of a running proxy (addr, reached with Host host) and checks each
// answer: the smuggling shapes get 400 and a closed connection, header
// sections over the limits 431, and a request within them reaches the
// route (okStatus).
func checkFraming(t *testing.T, what, addr, host string, okStatus, maxCount, maxKB int) {
	t.Helper()
	get := func(extra string) string {
		return "GET / HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n"
	}
	cases := []struct {
		name, req string
		status    int
		closed    bool
	}{
		{"Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400, true},
		{"obs-folded Transfer-Encoding", "POST / HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400, true},
		{"too many headers", get(headerLines(maxCount)), 431, true},
		{"too large headers", get("X-Big: " + strings.Repeat("a", (maxKB+1)<<10) + "\r\n"), 431, true},
		// Well within: proxies add headers of their own (x-request-id,
		// x-forwarded-*, trace context) before the next hop counts them.
		{"within the limits", get(headerLines(maxCount / 2)), okStatus, false},
	}
	for _, c := range cases {
		send := rawhttp.Send
		if c.closed {
			send = rawhttp.SendWatchClose
		}
		resp, err := send(addr, c.req, 15*time.Second)
		if err != nil {
			t.Errorf("%s, %s: %v", what, c.name, err)
			continue
		}
		if resp.Status != c.status || resp.Closed != c.closed {
			t.Errorf("%s, %s: %d (closed %v) %q; want %d (closed %v)", what, c.name, resp.Status, resp.Closed, resp.Body, c.status, c.closed)
		}
	}
}

// TestRequestFramingAtEveryListener: issue 14 found the gateway reading
// Content-Length with Transfer-Encoding, and an obs-folded
// Transfer-Encoding, as chunked and keeping the connection, and taking
// 1 MB of headers and 20,000 of them. Sent as raw bytes to the gateway and
// to a sidecar's inbound listener of a running mesh, they are refused and
// the connection closed; Envoy's limits apply by default and follow
// --max-request-headers-kb and --max-headers-count.
func TestRequestFramingAtEveryListener(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.apply("default", edge("")+"---\n"+permissive)
	waitEcho(t, m)
	checkFraming(t, "gateway", m.gateway, "anything", 200, 100, 60)
	in := m.inbound("default", "echo", "v1")
	eventually(t, 20*time.Second, "the sidecar takes plaintext (PERMISSIVE)", func() error {
		code, _, err := get(in, "", "/", nil)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	checkFraming(t, "sidecar inbound", in, "echo", 200, 100, 60)

	c, _ := upMeshWith(t, "", "--max-request-headers-kb", "4", "--max-headers-count", "20")
	c.echo("default", "echo", "v1")
	c.apply("default", edge(""))
	waitEcho(t, c)
	checkFraming(t, "gateway with configured limits", c.gateway, "anything", 200, 20, 4)
}

// TestApplyManyConflictingVirtualServices: issue 14 applied 10,000
// VirtualServices for one host and got 1.89 GB of findings back, each
// naming every other object. Through the CLI, an apply of 300 answers 100
// findings of each code with a count of the rest, each naming three
// others; `weft analyze` lists them all.
func TestApplyManyConflictingVirtualServices(t *testing.T) {
	m := upMesh(t, "")
	var b strings.Builder
	for i := range 300 {
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs-%03d}\nspec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}}]}]\n", i)
	}
	out := m.apply("default", b.String())
	if n := strings.Count(out, "[WEFT0104]"); n != 100 {
		t.Errorf("apply printed %d WEFT0104 findings, want 100", n)
	}
	if !strings.Contains(out, "... and 400 more findings (weft analyze lists them all)") {
		t.Errorf("apply does not count the findings it left out:\n%.2000s", out)
	}
	if !strings.Contains(out, "is also routed by VirtualService default/vs-001, default/vs-002, default/vs-003 and 296 more;") {
		t.Errorf("a WEFT0104 finding does not name three others and count the rest:\n%.2000s", out)
	}
	all, code := m.weft("", "analyze", "-n", "default")
	if code != 79 || strings.Count(all, "[WEFT0104]") != 300 || strings.Count(all, "[WEFT0102]") != 300 {
		t.Errorf("weft analyze (%d): %d WEFT0104, %d WEFT0102; want 300 each", code, strings.Count(all, "[WEFT0104]"), strings.Count(all, "[WEFT0102]"))
	}
}
