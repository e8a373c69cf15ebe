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

var (
	portsMu sync.Mutex
	issued  = map[string]bool{}
)

// freePort returns a loopback address nothing listens on, never the same
// one twice in a test run: the kernel may hand a just-closed port out again.
func freePort(t *testing.T) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !issued[addr] {
			issued[addr] = true
			return addr
		}
	}
}

// mesh is a running local mesh.
type mesh struct {
	t       *testing.T
	dir     string // working directory: holds .weft
	api     string
	xds     string
	gateway string
	up      *proc
}

// upMesh runs `weft up` (with a demo when demo != "") in a fresh folder.
func upMesh(t *testing.T, demo string) *mesh {
	t.Helper()
	m := &mesh{t: t, dir: t.TempDir(), api: freePort(t), xds: freePort(t), gateway: freePort(t)}
	args := []string{"up", "--api-addr", m.api, "--xds-addr", m.xds, "--gateway-addr", m.gateway, "--gateway-admin-addr", freePort(t)}
	if demo != "" {
		args = append(args, "--demo", demo)
	}
	m.up = start(t, m.dir, "weft up", args...)
	m.waitAPI()
	return m
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
// instance of service svc with version v.
func (m *mesh) inbound(ns, svc, v string) string {
	m.t.Helper()
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
		m.t.Fatal(err)
	}
	for _, it := range list.Items {
		if it.Spec.Labels["app"] == svc && it.Spec.Labels["version"] == v {
			port := it.Spec.Ports["http"]
			for _, p := range it.Spec.Ports {
				if port == 0 {
					port = p // a TCP workload's one port
				}
			}
			return fmt.Sprintf("%s:%d", it.Spec.Address, port)
		}
	}
	m.t.Fatalf("no registered instance of %s %s", svc, v)
	return ""
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
