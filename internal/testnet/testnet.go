// Package testnet gives tests loopback addresses that behave in a known
// way and stay theirs for the whole test: each is a socket the test holds
// bound until it ends, so no other process can take the port in between
// (picking a "free" port and binding it later races with everything else
// on the machine).
package testnet

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// Listen binds a loopback TCP listener on a port the kernel picks and
// closes it when the test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Refusing returns a loopback address that refuses every connection at
// once: a socket bound to it that never listens, so the kernel answers a
// connection attempt with a reset.
func Refusing(t testing.TB) string {
	t.Helper()
	_, addr := boundSocket(t)
	return addr
}

// Blackhole returns a loopback address where a connection attempt hangs
// until the dialer gives up: a listener that never accepts, its accept
// queue filled, so the kernel drops further SYNs (they are retried by the
// client for a couple of minutes). It lets a test observe a connect
// timeout on this machine, without routing anything anywhere.
func Blackhole(t testing.TB) string {
	t.Helper()
	fd, addr := boundSocket(t)
	// Backlog 0: the accept queue holds a single connection.
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("testnet: listen: %v", err)
	}
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for range 64 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			held = append(held, c) // fills the queue; never accepted
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return addr // the queue is full: SYNs are dropped
		}
		t.Fatalf("testnet: filling the accept queue of %s: %v", addr, err)
	}
	t.Fatalf("testnet: %s kept accepting connections; cannot make a black hole", addr)
	return ""
}

// boundSocket binds a TCP socket to a loopback port the kernel picks,
// without listening, and closes it when the test ends.
func boundSocket(t testing.TB) (int, string) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("testnet: socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("testnet: bind: %v", os.NewSyscallError("bind", err))
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("testnet: getsockname: %v", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		t.Fatalf("testnet: bound to %T", sa)
	}
	return fd, (&net.TCPAddr{IP: net.IP(in4.Addr[:]), Port: in4.Port}).String()
}
