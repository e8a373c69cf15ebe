package controlplane

import (
	"context"
	"testing"
)

// TestLocalLeads: a local control plane is the only writer there is: it
// leads, and a writer registered with OnLeader runs until it stops.
func TestLocalLeads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := Start(ctx, Options{StateDir: t.TempDir(), APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if !cp.IsLeader() {
		t.Error("a local control plane does not lead")
	}
	terms := make(chan context.Context, 1)
	cp.OnLeader(func(term context.Context) { terms <- term })
	term := <-terms
	cancel()
	<-cp.Done()
	<-term.Done()
	if cp.IsLeader() {
		t.Error("still leading after stopping")
	}
}
