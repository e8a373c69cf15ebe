// Package e2e runs weft end to end: the real binary, real processes and
// real sockets on loopback.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var weftBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weft-e2e-")
	if err != nil {
		panic(err)
	}
	weftBin = filepath.Join(dir, "weft")
	build := exec.Command("go", "build", "-o", weftBin, "github.com/weft-mesh/weft/cmd/weft")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build weft:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a weft process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// start runs weft with args in dir; the process (group) is killed at cleanup
// and its output shown if the test failed.
func start(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, dir, name, nil, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, dir, name string, env []string, args ...string) *proc {
	t.Helper()
	return startWith(t, dir, name, env, nil, args...)
}

// startWith is startEnv, where launch (when not nil) starts the command
// instead of exec.Cmd.Start, say inside a network namespace, and may set
// more of its SysProcAttr first.
func startWith(t *testing.T, dir, name string, env []string, launch func(*exec.Cmd) error, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(weftBin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = lockedWriter{p.mu, p.log}
	p.cmd.Stderr = lockedWriter{p.mu, p.log}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 2 * time.Second // a child holding the output pipe must not block Wait
	if launch == nil {
		launch = (*exec.Cmd).Start
	}
	if err := launch(p.cmd); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("---- output of %s (%v) ----\n%s", name, args, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM and waits, then kills the whole group.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// kill sends SIGKILL to the process alone (not its children).
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// mesh is a running local mesh.
type mesh struct {
	t            *testing.T
	dir          string // working directory: holds .weft
	api          string
	xds          string
	gateway      string            // the ingress gateway's address for Gateway port 80
	gatewayPorts map[uint32]string // every address the gateway holds, by Gateway port
	gatewayAdmin string
	up           *proc
}

// Every address a test hands a weft process is port 0: the process binds
// it before anything else and reports the port it got (weft up and weft
// controlplane in STATE_DIR/endpoints.json, a proxy in its log and on its
// admin /listeners). A port picked by the test and bound later by the
// process could be taken in between by anything else on the machine.
const anyPort = "127.0.0.1:0"

// upMesh runs `weft up` (with a demo when demo != "", and more flags) in a
// fresh folder and returns once it is up.
func upMesh(t *testing.T, demo string, extra ...string) *mesh {
	t.Helper()
	m := &mesh{t: t, dir: t.TempDir()}
	args := []string{"up", "--api-addr", anyPort, "--xds-addr", anyPort, "--gateway-addr", anyPort, "--gateway-admin-addr", anyPort}
	if demo != "" {
		args = append(args, "--demo", demo)
	}
	m.up = start(t, m.dir, "weft up", append(args, extra...)...)
	m.readEndpoints(m.up)
	m.waitAPI()
	return m
}

// upMeshWith is upMesh with extra `weft up` flags; it also returns the
// ingress gateway's admin address.
func upMeshWith(t *testing.T, demo string, extra ...string) (*mesh, string) {
	t.Helper()
	m := upMesh(t, demo, extra...)
	return m, m.gatewayAdmin
}

// startControlPlane runs `weft controlplane` (with more flags) in a fresh
// folder and returns the mesh it serves, without a gateway.
func startControlPlane(t *testing.T, extra ...string) (*mesh, *proc) {
	t.Helper()
	m := &mesh{t: t, dir: t.TempDir()}
	cp := start(t, m.dir, "weft controlplane", append([]string{"controlplane", "--api-addr", anyPort, "--xds-addr", anyPort}, extra...)...)
	m.readEndpoints(cp)
	m.waitAPI()
	return m, cp
}

// readEndpoints waits for the addresses p records in the mesh's state dir
// (.weft/endpoints.json), failing if p exits first.
func (m *mesh) readEndpoints(p *proc) {
	m.t.Helper()
	var e struct {
		API          string            `json:"api"`
		XDS          string            `json:"xds"`
		Gateway      string            `json:"gateway"`
		GatewayPorts map[uint32]string `json:"gateway_ports"`
		GatewayAdmin string            `json:"gateway_admin"`
	}
	path := filepath.Join(m.dir, ".weft", "endpoints.json")
	eventually(m.t, 60*time.Second, p.name+" records its addresses in "+path, func() error {
		select {
		case <-p.done:
			m.t.Fatalf("%s exited before it was up:\n%s", p.name, p.output())
		default:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &e)
	})
	m.api, m.xds, m.gateway, m.gatewayPorts, m.gatewayAdmin = e.API, e.XDS, e.Gateway, e.GatewayPorts, e.GatewayAdmin
}

// proxyStarted matches the log line of a proxy that bound its admin
// address.
var proxyStarted = regexp.MustCompile(`msg="proxy started" .*?admin=(\S+)`)

// startProxy runs `weft proxy sidecar|gateway` with args and --admin on
// port 0, and returns it with the admin address it bound.
func (m *mesh) startProxy(name string, args ...string) (*proc, string) {
	m.t.Helper()
	p := start(m.t, m.dir, name, append(append([]string{"proxy"}, args...), "--admin", anyPort)...)
	var admin string
	eventually(m.t, 30*time.Second, name+" binds its admin address", func() error {
		select {
		case <-p.done:
			m.t.Fatalf("%s exited:\n%s", name, p.output())
		default:
		}
		mm := proxyStarted.FindStringSubmatch(p.output())
		if mm == nil {
			return fmt.Errorf("no \"proxy started\" line in its log yet")
		}
		admin = mm[1]
		return nil
	})
	return p, admin
}

// listenerAddr waits until the proxy with admin address admin serves
// listener name, and returns the address it is bound at.
func listenerAddr(t *testing.T, admin, name string) string {
	t.Helper()
	var addr string
	eventually(t, 60*time.Second, "listener "+name+" on the proxy with admin "+admin, func() error {
		var l struct {
			Statuses []struct {
				Name         string `json:"name"`
				LocalAddress struct {
					SocketAddress struct {
						Address   string `json:"address"`
						PortValue int    `json:"port_value"`
					} `json:"socket_address"`
				} `json:"local_address"`
			} `json:"listener_statuses"`
		}
		if err := jsonGet("http://"+admin+"/listeners?format=json", &l); err != nil {
			return err
		}
		for _, s := range l.Statuses {
			if s.Name == name {
				a := s.LocalAddress.SocketAddress
				addr = net.JoinHostPort(a.Address, strconv.Itoa(a.PortValue))
				return nil
			}
		}
		return fmt.Errorf("not served yet: %+v", l.Statuses)
	})
	return addr
}

// restartControlPlane starts `weft controlplane` again at the mesh's API
// and xDS addresses (its proxies know those). They were free while it was
// down, so another process may have taken one meanwhile (an outgoing
// connection's local port, say): that is retried until the port is free.
func (m *mesh) restartControlPlane(extra ...string) *proc {
	m.t.Helper()
	args := append([]string{"controlplane", "--api-addr", m.api, "--xds-addr", m.xds}, extra...)
	for attempt := 1; ; attempt++ {
		cp := start(m.t, m.dir, fmt.Sprintf("weft controlplane (restart %d)", attempt), args...)
		ok := false
		eventually(m.t, 60*time.Second, "the restarted control plane answers or fails", func() error {
			select {
			case <-cp.done:
				return nil
			default:
			}
			resp, err := http.Get("http://" + m.api + "/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			ok = resp.StatusCode == 200
			if !ok {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
		if ok {
			return cp
		}
		if !strings.Contains(cp.output(), "address already in use") || attempt == 20 {
			m.t.Fatalf("the control plane did not restart:\n%s", cp.output())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (m *mesh) waitAPI() {
	m.t.Helper()
	eventually(m.t, 20*time.Second, "control plane API answers", func() error {
		resp, err := http.Get("http://" + m.api + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// weft runs a CLI command in the mesh's folder and returns its combined
// output and exit code.
func (m *mesh) weft(stdin string, args ...string) (string, int) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, append(args, "--server", "http://"+m.api)...)
	cmd.Dir = m.dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		m.t.Fatalf("weft %v: %v", args, err)
	}
	return string(out), code
}

// apply applies YAML text and fails the test on a non-zero exit.
func (m *mesh) apply(ns, yaml string) string {
	m.t.Helper()
	out, code := m.weft(yaml, "apply", "-n", ns, "-f", "-")
	if code != 0 {
		m.t.Fatalf("weft apply failed (%d):\n%s", code, out)
	}
	return out
}

// applyFile applies a file from the repository.
func (m *mesh) applyFile(ns, path string) string {
	m.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		m.t.Fatal(err)
	}
	return m.apply(ns, string(b))
}

// run starts `weft run` for a workload and returns its process.
func (m *mesh) run(ns, service, labels string, cmd ...string) *proc {
	m.t.Helper()
	return m.runEnv(ns, service, labels, nil, cmd...)
}

// runEnv is run with extra environment for the workload. cmd may start
// with more `weft run` flags, ended by "--".
func (m *mesh) runEnv(ns, service, labels string, env []string, cmd ...string) *proc {
	m.t.Helper()
	args := []string{"run", "--server", "http://" + m.api, "--xds", m.xds, "-n", ns,
		"--service", service, "--port", "8080", "--labels", labels}
	if !hasDashDash(cmd) {
		args = append(args, "--")
	}
	args = append(args, cmd...)
	return startEnv(m.t, m.dir, "weft run "+service+" "+labels, env, args...)
}

func hasDashDash(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return true
		}
	}
	return false
}

// echo starts an instance of the echo app as service svc, version v.
func (m *mesh) echo(ns, svc, v string, env ...string) *proc {
	m.t.Helper()
	return m.runEnv(ns, svc, "app="+svc+",version="+v, env, weftBin, "demo-app", "echo", "echo")
}

// permissive is a namespace-wide PeerAuthentication PERMISSIVE. Tests that
// talk to one instance directly (to steer or count it) are clients from
// outside the mesh; without it the default STRICT mode refuses them.
const permissive = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec:
  mtls: {mode: PERMISSIVE}
`

// inbound returns the registered (sidecar inbound) address of the first
// instance of service svc with version v, waiting for it to register.
func (m *mesh) inbound(ns, svc, v string) string {
	m.t.Helper()
	var addr string
	eventually(m.t, 60*time.Second, fmt.Sprintf("an instance of %s %s registered", svc, v), func() error {
		var list struct {
			Items []struct {
				Metadata struct{ Name string }
				Spec     struct {
					Address string
					Ports   map[string]int
					Labels  map[string]string
				}
			}
		}
		if err := jsonGet("http://"+m.api+"/api/v1/objects?kind=WorkloadEntry&namespace="+ns, &list); err != nil {
			return err
		}
		for _, it := range list.Items {
			if it.Spec.Labels["app"] == svc && it.Spec.Labels["version"] == v {
				port := it.Spec.Ports["http"]
				for _, p := range it.Spec.Ports {
					if port == 0 {
						port = p // a TCP workload's one port
					}
				}
				addr = fmt.Sprintf("%s:%d", it.Spec.Address, port)
				return nil
			}
		}
		return fmt.Errorf("none among %d WorkloadEntries", len(list.Items))
	})
	return addr
}

var client = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, Proxy: nil}}

// get fetches path from the gateway with optional Host and headers.
func get(addr, host, path string, headers map[string]string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// eventually retries f until it succeeds or the deadline passes. Deadlines
// here are generous upper bounds for convergence, not performance checks.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %v: %v", what, d, err)
}

// gatewayConfigHas waits until the ingress gateway has ACKed (so applied)
// a configuration of kind (listeners, routes, clusters, endpoints) holding
// every one of want: the positive sign that a change reached it.
func (m *mesh) gatewayConfigHas(kind string, want ...string) {
	m.t.Helper()
	eventually(m.t, 30*time.Second, "the gateway's "+kind+" hold "+strings.Join(want, ", "), func() error {
		resp, err := http.Get("http://" + m.api + "/api/v1/proxies/istio-ingressgateway/config/" + kind)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("%d %s %v", resp.StatusCode, b, err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				return fmt.Errorf("no %s yet", w)
			}
		}
		return nil
	})
}

// jsonGet decodes a JSON API answer.
func jsonGet(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
