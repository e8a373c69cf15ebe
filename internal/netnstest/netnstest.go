// Package netnstest gives tests network namespaces of their own, linked by
// veth pairs and bridges that exist only inside them, so transparent
// capture can be tested with real netfilter rules without touching the
// machine's own network: nothing a test creates is in the root namespace,
// and nothing has a route off the machine.
//
// Code runs inside a namespace on a goroutine locked to an OS thread that
// joined it (Do): sockets made there belong to the namespace for good, and
// processes started there (Start) live in it.
package netnstest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Require skips t unless it can create network namespaces: it needs root
// and the ip command (iproute2). Under CI (CI=true) a missing prerequisite
// fails the test instead, so CI never passes by skipping.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "needs root to create network namespaces and netfilter rules"
	default:
		if _, err := exec.LookPath("ip"); err != nil {
			why = "needs the ip command (iproute2; scripts/install-test-deps.sh installs it)"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("netns test %s (CI=true: not skipping)", why)
	}
	t.Skipf("netns test %s", why)
}

// NS is a network namespace made by a test; it is deleted at cleanup.
type NS struct {
	Name string
	t    testing.TB
	fd   int
}

// Prefix returns a short random prefix for the names of one test's
// namespaces, so parallel tests and leftovers never clash.
func Prefix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "wt" + hex.EncodeToString(b[:])
}

// New creates namespace name with lo up. It is deleted when the test ends
// (after the cleanups registered later, such as the processes in it).
func New(t testing.TB, name string) *NS {
	t.Helper()
	Require(t)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "true" && strings.Contains(string(out), "Operation not permitted") {
			t.Skipf("netns test: cannot create a namespace here: %s", out)
		}
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, t: t, fd: -1}
	t.Cleanup(func() {
		if ns.fd >= 0 {
			unix.Close(ns.fd)
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	ns.fd = fd
	ns.IP("link", "set", "lo", "up")
	return ns
}

// Fd is the namespace's file descriptor (for nftables' WithNetNSFd).
func (ns *NS) Fd() int { return ns.fd }

// IP runs `ip -n NS args...` and fails the test on error.
func (ns *NS) IP(args ...string) {
	ns.t.Helper()
	full := append([]string{"-n", ns.Name}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		ns.t.Fatalf("ip %s: %v: %s", strings.Join(full, " "), err, out)
	}
}

// Bridge creates bridge dev in ns with address cidr (e.g. 10.20.0.1/24).
func (ns *NS) Bridge(dev, cidr string) {
	ns.t.Helper()
	ns.IP("link", "add", dev, "type", "bridge")
	ns.IP("addr", "add", cidr, "dev", dev)
	ns.IP("link", "set", dev, "up")
}

// Attach links ns to bridge dev of hub with a veth pair: eth0 in ns with
// address cidr, and hubIf in hub, enslaved to the bridge.
func (ns *NS) Attach(hub *NS, dev, hubIf, cidr string) {
	ns.t.Helper()
	ns.IP("link", "add", "eth0", "type", "veth", "peer", "name", hubIf, "netns", hub.Name)
	ns.IP("addr", "add", cidr, "dev", "eth0")
	ns.IP("link", "set", "eth0", "up")
	hub.IP("link", "set", hubIf, "master", dev)
	hub.IP("link", "set", hubIf, "up")
}

// Do runs fn on an OS thread inside the namespace. Sockets fn creates stay
// in the namespace; goroutines fn starts do not run in it.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine: it
			// must not run anything else in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", ns.Name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen binds a socket inside the namespace.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// DialContext connects from inside the namespace, as an app there would.
func (ns *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient is a client whose connections are made inside the namespace;
// it uses no proxy and keeps no idle connections (each request is one
// connection, so each is captured anew).
func (ns *NS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy: nil, DialContext: ns.DialContext, DisableKeepAlives: true,
	}}
}

// FirstLine connects to addr from inside the namespace and returns the
// first line it reads, without the newline: "" when the connection closes
// first, an "error: ..." text when it cannot connect.
func (ns *NS) FirstLine(addr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ns.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// PodAddr, HubAddr and ServiceRange are the addresses of Pod's namespaces.
const (
	PodAddr      = "10.20.0.2"
	HubAddr      = "10.20.0.1"
	ServiceRange = "10.96.0.0/16"
)

// Pod makes a pod's namespace (eth0 PodAddr/24) linked through a bridge
// to a hub namespace (HubAddr/24), with ServiceRange routed to the hub as
// a cluster's service addresses would be: a connection to a service
// address leaves the pod, unless capture rules redirect it first.
func Pod(tb testing.TB) (pod, hub *NS) {
	prefix := Prefix()
	hub = New(tb, prefix+"-hub")
	pod = New(tb, prefix+"-pod")
	hub.Bridge("br0", HubAddr+"/24")
	pod.Attach(hub, "br0", "vpod", PodAddr+"/24")
	pod.IP("route", "add", ServiceRange, "via", HubAddr)
	return pod, hub
}

// Start starts cmd inside the namespace (the child inherits it).
func (ns *NS) Start(cmd *exec.Cmd) error {
	return ns.Do(cmd.Start)
}
