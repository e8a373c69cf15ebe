package server

import (
	"context"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// TestRevalidateEndsStream: a stream whose credential is revoked (the
// control plane's Revalidate says so) ends at the next push with the
// revalidation's status; the principal it is asked about is the one the
// stream authenticated as.
func TestRevalidateEndsStream(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	var revoked atomic.Bool
	var asked atomic.Value
	auth := func(context.Context) (Principal, error) {
		return Principal{Namespace: "coolapp", ServiceAccount: "default", Subject: "join token 1a2b", Credential: "1a2b"}, nil
	}
	revalidate := func(p Principal) error {
		asked.Store(p.Credential)
		if revoked.Load() {
			return grpcstatus.Error(codes.Unauthenticated, "join token 1a2b was revoked")
		}
		return nil
	}
	s, addr, _ := startWith(t, gen, Options{Authenticate: auth, Revalidate: revalidate})
	c := dial(t, addr, sidecar("web"))
	c.subscribeAll()
	if got := c.expect(5); len(got) != 5 {
		t.Fatalf("got %v", types(got))
	}
	revoked.Store(true)
	s.Push("token revoked")
	if err := c.streamErr(t); grpcstatus.Code(err) != codes.Unauthenticated {
		t.Fatalf("after revocation: %v, want Unauthenticated", err)
	}
	if got, _ := asked.Load().(string); got != "1a2b" {
		t.Errorf("Revalidate asked about credential %q, want 1a2b", got)
	}
	waitFor(t, "connection removed", func() bool { return len(s.Connections()) == 0 })
}
