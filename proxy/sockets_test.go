package proxy

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/weft-mesh/weft/internal/testnet"
)

// TestHeldSocketOutlivesItsListeners: a pre-bound socket is leased by one
// listener at a time; closing a lease (the listener went away) wakes its
// Accept and hands the socket back, still bound, so a connection arriving
// in between waits for the next listener instead of finding the port free.
func TestHeldSocketOutlivesItsListeners(t *testing.T) {
	ln := testnet.Listen(t)
	addr := ln.Addr().String()
	set := newSocketSet(map[string]net.Listener{addr: ln})

	first := set.take(addr)
	if first == nil || first.Addr().String() != addr {
		t.Fatalf("take = %v", first)
	}
	if again := set.take(addr); again != nil {
		t.Fatal("a leased socket was handed out twice")
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := first.Accept()
		if c != nil {
			c.Close()
		}
		accepted <- err
	}()
	first.Close() // wakes the blocked Accept
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake Accept")
	}

	// No listener now: the port stays bound and a client's connection waits.
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial while no listener holds the socket: %v", err)
	}
	defer client.Close()
	second := set.take(addr)
	if second == nil {
		t.Fatal("the socket did not come back after its lease closed")
	}
	c, err := second.Accept()
	if err != nil {
		t.Fatalf("the next listener's Accept: %v", err)
	}
	c.Close()
	second.Close()

	set.closeAll()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("after closeAll the socket is still open: %v", err)
	}
	if set.take(addr) != nil {
		t.Error("take after closeAll")
	}
}
