package capture

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
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

// The test binary doubles as a client that connects from another user (the
// sidecar's): run with CAPTURE_HELPER_DIAL=ADDR (and CAPTURE_HELPER_SRC=IP
// to bind a source address), it prints the line the server sends.
func TestMain(m *testing.M) {
	if addr := os.Getenv("CAPTURE_HELPER_DIAL"); addr != "" {
		os.Exit(helperDial(addr, os.Getenv("CAPTURE_HELPER_SRC")))
	}
	os.Exit(m.Run())
}

func helperDial(addr, src string) int {
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		fmt.Println("dial error:", err)
		return 1
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Println("read error:", err)
		return 1
	}
	fmt.Print(line)
	return 0
}

// pod is a namespace with capture rules, and the hub it is linked to.
type pod struct {
	t       *testing.T
	ns, hub *netnstest.NS
	ip      string
	helper  string // the test binary, where the sidecar's user may run it
}

func newPod(t *testing.T) *pod {
	ns, hub := netnstest.Pod(t)
	return &pod{t: t, ns: ns, hub: hub, ip: "10.20.0.2", helper: helperBinary(t)}
}

// helperBinary copies the test binary where user 1337 may run it.
func helperBinary(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "weft-capture-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "capture.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// serve answers every connection on a socket bound in ns with one line:
// label, then, for capture ports, the original destination and whether
// the connection was redirected.
func serve(t *testing.T, ns *netnstest.NS, addr, label string, capture bool) {
	t.Helper()
	ln, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line := label
			if capture {
				dst, redirected, err := OriginalDst(c.(*net.TCPConn))
				if err != nil {
					line += " error " + err.Error()
				} else {
					line += fmt.Sprintf(" %s %v", dst, redirected)
				}
			}
			fmt.Fprintln(c, line)
			c.Close()
		}
	}()
}

// asProxy dials addr inside the pod as the sidecar's user.
func (p *pod) asProxy(addr, src string) string {
	cmd := exec.Command(p.helper, "-test.run=^$")
	cmd.Env = []string{"CAPTURE_HELPER_DIAL=" + addr, "CAPTURE_HELPER_SRC=" + src}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: node.ProxyUID, Gid: node.ProxyUID}}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := p.ns.Start(cmd); err != nil {
		p.t.Fatalf("start helper: %v", err)
	}
	_ = cmd.Wait()
	return strings.TrimSpace(out.String())
}

// TestCapture applies the default rules in a pod namespace and checks
// where each kind of connection lands, and the original destination the
// capture ports recover.
func TestCapture(t *testing.T) {
	p := newPod(t)
	serve(t, p.ns, "0.0.0.0:15001", "outbound", true)
	serve(t, p.ns, "0.0.0.0:15006", "inbound", true)
	serve(t, p.ns, p.ip+":8080", "app", false)
	serve(t, p.ns, "0.0.0.0:15021", "health", false)
	serve(t, p.hub, "10.20.0.1:9000", "server", false)

	if got := p.ns.FirstLine("10.20.0.1:9000"); got != "server" {
		t.Fatalf("before the rules: %q", got)
	}
	cfg := DefaultConfig()
	rs, err := cfg.Rulesets()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, c := range rs[0].Chains {
		want[c.Name] = len(c.Rules)
	}
	for range 2 { // again: replaces, does not add
		if err := Apply(rs, p.ns.Fd()); err != nil {
			t.Fatal(err)
		}
		got, err := Installed(IPv4, p.ns.Fd())
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("installed rules per chain %v, want %v", got, want)
		}
	}
	if got, _ := Installed(IPv4, -1); got != nil {
		t.Fatalf("rules in the test's own namespace: %v", got)
	}

	for _, c := range []struct {
		what, got, want string
	}{
		{"app to a service address", p.ns.FirstLine("10.96.0.10:80"), "outbound 10.96.0.10:80 true"},
		{"app to another host", p.ns.FirstLine("10.20.0.1:9000"), "outbound 10.20.0.1:9000 true"},
		{"sidecar to another host", p.asProxy("10.20.0.1:9000", ""), "server"},
		{"another host to the app's port", p.hub.FirstLine(p.ip + ":8080"), "inbound 10.20.0.2:8080 true"},
		{"another host to the readiness port", p.hub.FirstLine(p.ip + ":15021"), "health"},
		{"sidecar to its own pod address", p.asProxy(p.ip+":8080", ""), "inbound 10.20.0.2:8080 true"},
		{"sidecar to its app from 127.0.0.6", p.asProxy(p.ip+":8080", "127.0.0.6"), "app"},
		{"app to itself", p.ns.FirstLine(p.ip + ":8080"), "app"},
		{"app to loopback", p.ns.FirstLine("127.0.0.1:15021"), "health"},
		{"app to the capture port itself", p.ns.FirstLine(p.ip + ":15001"), "outbound 10.20.0.2:15001 false"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}

	if err := Cleanup(p.ns.Fd()); err != nil {
		t.Fatal(err)
	}
	if got, err := Installed(IPv4, p.ns.Fd()); err != nil || got != nil {
		t.Fatalf("after cleanup: %v %v", got, err)
	}
	if err := Cleanup(p.ns.Fd()); err != nil {
		t.Fatalf("cleanup without a table: %v", err)
	}
	if got := p.ns.FirstLine("10.20.0.1:9000"); got != "server" {
		t.Errorf("after cleanup: %q", got)
	}
}

// BenchmarkOriginalDst measures the per-connection cost of recovering a
// redirected connection's destination and wrapping it.
func BenchmarkOriginalDst(b *testing.B) {
	p, _ := netnstest.Pod(b)
	ln, err := p.Listen("tcp", "0.0.0.0:15001")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	if err := Apply(mustRules(b), p.Fd()); err != nil {
		b.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	client, err := p.DialContext(ctx, "tcp", "10.96.0.10:80")
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	c := (<-accepted).(*net.TCPConn)
	defer c.Close()
	want := netip.MustParseAddrPort("10.96.0.10:80")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dst, ok, err := OriginalDst(c)
		if err != nil || !ok || dst != want {
			b.Fatalf("OriginalDst = %v %v %v", dst, ok, err)
		}
	}
}

// BenchmarkNewConn is the wrapping a redirected connection gets: one
// allocation.
func BenchmarkNewConn(b *testing.B) {
	dst := netip.MustParseAddrPort("10.96.0.10:80")
	c := &net.TCPConn{}
	b.ReportAllocs()
	for b.Loop() {
		if NewConn(c, dst).LocalAddr() == nil {
			b.Fatal("no address")
		}
	}
}

func mustRules(tb testing.TB) []*Ruleset {
	c := DefaultConfig()
	rs, err := c.Rulesets()
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}
