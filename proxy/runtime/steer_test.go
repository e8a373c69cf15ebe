package runtime

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// closedSoon reports whether the peer of c sees it closed.
func closedSoon(t *testing.T, peer net.Conn) bool {
	t.Helper()
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := peer.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe)
}

// A hand-off queue gives Accept what is delivered; once closed, what was
// queued and what is delivered later is closed, never left hanging.
func TestHandoffQueue(t *testing.T) {
	h := newHandoff("0.0.0.0:9080")
	if h.Addr().String() != "0.0.0.0:9080" {
		t.Errorf("Addr %s", h.Addr())
	}
	a, aPeer := net.Pipe()
	h.deliver(a)
	got, err := h.Accept()
	if err != nil || got != a {
		t.Fatalf("Accept = %v, %v", got, err)
	}
	queued, queuedPeer := net.Pipe()
	h.deliver(queued)
	h.Close()
	if !closedSoon(t, queuedPeer) {
		t.Error("a connection queued at Close was not closed")
	}
	late, latePeer := net.Pipe()
	h.deliver(late)
	if !closedSoon(t, latePeer) {
		t.Error("a connection delivered after Close was not closed")
	}
	if _, err := h.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	a.Close()
	aPeer.Close()
}
