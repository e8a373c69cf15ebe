package xdsclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weft-mesh/weft/ca"
)

func issue(t *testing.T, c *ca.CA) []*tlsv3.Secret {
	t.Helper()
	s, err := c.Issue("spiffe://cluster.local/ns/default/sa/a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return []*tlsv3.Secret{ca.RootSecret(ca.SecretRoot, c.RootPEM()), ca.CertificateSecret(ca.SecretDefault, s)}
}

// TestSecretsAndToken: the stream carries the join token; secrets are
// subscribed first, reach Apply with the rest, are replaced as a whole by
// the next SDS response, and show redacted in Acked.
func TestSecretsAndToken(t *testing.T) {
	authority, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeADS(t, "127.0.0.1:0")
	rec := newRecorder()
	c := New(Options{Server: f.addr, Node: testNode(), Apply: rec.apply, Token: "tok-123",
		BackoffMin: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	converge(t, f, rec)
	f.mu.Lock()
	auth := f.auth
	f.mu.Unlock()
	if len(auth) != 1 || auth[0] != "Bearer tok-123" {
		t.Fatalf("authorization metadata %q", auth)
	}

	first := issue(t, authority)
	f.push(t, typeSecret, "s1", first[0], first[1])
	if ack := f.next(t, typeSecret); ack.GetVersionInfo() != "s1" || ack.GetErrorDetail() != nil {
		t.Fatalf("SDS ACK = %v", ack)
	}
	res := rec.next(t)
	if len(res.Secrets) != 2 || len(res.Clusters) != 1 || len(res.Listeners) != 1 {
		t.Fatalf("Apply got %d secrets, %d clusters, %d listeners", len(res.Secrets), len(res.Clusters), len(res.Listeners))
	}
	if !bytes.Equal(res.Secrets[ca.SecretDefault].GetTlsCertificate().GetPrivateKey().GetInlineBytes(),
		first[1].GetTlsCertificate().GetPrivateKey().GetInlineBytes()) {
		t.Fatal("Apply did not get the private key")
	}

	// A rotation replaces the set; the same set again changes nothing.
	next := issue(t, authority)
	f.push(t, typeSecret, "s2", next[1])
	f.next(t, typeSecret)
	if res := rec.next(t); len(res.Secrets) != 1 || res.Secrets[ca.SecretRoot] != nil {
		t.Fatalf("after an SDS response without ROOTCA, secrets %v", res.Secrets)
	}
	f.push(t, typeSecret, "s2", next[1])
	f.next(t, typeSecret)
	rec.noneYet(t)

	a := c.Acked()[typeSecret]
	if a.Version != "s2" || len(a.Resources) != 1 {
		t.Fatalf("Acked SDS %s with %d", a.Version, len(a.Resources))
	}
	got := a.Resources[0].(*tlsv3.Secret)
	if got.GetTlsCertificate().GetPrivateKey().GetInlineString() != ca.Redacted || strings.Contains(got.String(), "PRIVATE KEY") {
		t.Fatalf("Acked shows the private key: %v", got.GetTlsCertificate().GetPrivateKey())
	}
	if c.res.Secrets[ca.SecretDefault].GetTlsCertificate().GetPrivateKey().GetInlineBytes() == nil {
		t.Fatal("Acked redacted the client's own copy")
	}

	// A malformed secret is NACKed and the applied set stays.
	f.push(t, typeSecret, "bad", &tlsv3.Secret{})
	if nack := f.next(t, typeSecret); nack.GetErrorDetail() == nil || nack.GetVersionInfo() != "s2" {
		t.Fatalf("secret without a name: %v", nack)
	}
}

// TestTLS: with Options.TLS the client verifies the control plane against
// the mesh root and refuses a server certified by another CA.
func TestTLS(t *testing.T) {
	authority, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := authority.NewServerCert([]string{"127.0.0.1"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeADS(t, "127.0.0.1:0", grpc.Creds(credentials.NewTLS(sc.TLSConfig())))

	other, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	ended := &countingHandler{msg: "xds stream ended; keeping the current config"}
	bad := New(Options{Server: f.addr, Node: testNode(), Apply: rec.apply, TLS: ca.ClientTLS(other.Roots()),
		BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond, Log: slog.New(ended)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bad.Run(ctx) }()
	// Three attempts failed: a stream any of them opened would have reached
	// the server before the client gave up on it.
	deadline := time.Now().Add(wait)
	for ended.n.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d failed attempts", ended.n.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-f.stream:
		t.Fatal("a client trusting another root opened a stream")
	default:
	}
	cancel()
	<-done

	good := New(Options{Server: f.addr, Node: testNode(), Apply: rec.apply, TLS: ca.ClientTLS(authority.Roots()),
		BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- good.Run(ctx2) }()
	defer func() { cancel2(); <-done2 }()
	converge(t, f, rec)
}

// TestTokenSourceAtEachStream: a TokenSource is asked again for every
// stream, so a rotated token reaches the control plane at the next
// reconnect; one that fails opens no stream.
func TestTokenSourceAtEachStream(t *testing.T) {
	f := newFakeADS(t, "127.0.0.1:0")
	var calls atomic.Int32
	c := New(Options{Server: f.addr, Node: testNode(), Apply: newRecorder().apply,
		TokenSource: func() (string, error) { return fmt.Sprintf("tok-%d", calls.Add(1)), nil },
		BackoffMin:  20 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	auth := func() string {
		f.waitStream(t)
		f.mu.Lock()
		defer f.mu.Unlock()
		return strings.Join(f.auth, ",")
	}
	if got := auth(); got != "Bearer tok-1" {
		t.Fatalf("first stream: authorization %q", got)
	}
	f.srv.Stop()
	f.start(t, f.addr)
	if got := auth(); got == "Bearer tok-1" || !strings.HasPrefix(got, "Bearer tok-") {
		t.Fatalf("after a reconnect: authorization %q, want a token read anew", got)
	}

	g := newFakeADS(t, "127.0.0.1:0")
	failing := New(Options{Server: g.addr, Node: testNode(), Apply: newRecorder().apply,
		TokenSource: func() (string, error) { return "", errors.New("token file gone") },
		BackoffMin:  20 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	fctx, fcancel := context.WithCancel(context.Background())
	fdone := make(chan error, 1)
	go func() { fdone <- failing.Run(fctx) }()
	defer func() { fcancel(); <-fdone }()
	select {
	case <-g.stream:
		t.Fatal("a stream was opened without a token")
	case <-time.After(300 * time.Millisecond):
	}
}
