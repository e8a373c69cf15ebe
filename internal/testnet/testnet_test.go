package testnet

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestRefusing(t *testing.T) {
	addr := Refusing(t)
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
	// The port stays taken while the test runs.
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("%s could be bound again", addr)
	}
}

func TestBlackhole(t *testing.T) {
	addr := Blackhole(t)
	// The dial can only end by its own deadline: nothing answers or refuses.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial %s: %v, want a timeout", addr, err)
	}
}
