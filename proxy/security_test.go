package proxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/xds/node"
)

// TestStartOverTLSWithJoinToken: with CARoot the proxy dials xDS over TLS,
// verifying the control plane against the mesh root, and presents its
// join token.
func TestStartOverTLSWithJoinToken(t *testing.T) {
	authority, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := authority.NewServerCert([]string{"127.0.0.1"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	backend := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer backend.Close()
	ads := &scriptedADS{res: resources(t, "127.0.0.1:0", backend.Listener.Addr().String()),
		nodes: make(chan *core.Node, 8), auth: make(chan []string, 8)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(sc.TLSConfig())))
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, ads)
	go gs.Serve(lis)
	defer gs.Stop()

	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "client-1", Namespace: "default", WorkloadName: "client"}
	ctx, cancel := context.WithCancel(context.Background())
	h, err := Start(ctx, Options{Meta: meta, XDSAddress: lis.Addr().String(), JoinToken: "join-xyz", CARoot: authority.RootFile()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); h.Wait() }()
	select {
	case <-h.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not ready over TLS")
	}
	if got := <-ads.auth; len(got) != 1 || got[0] != "Bearer join-xyz" {
		t.Fatalf("authorization metadata %q", got)
	}
}

// TestXDSServerName: a control plane reached by IP (a Service's ClusterIP)
// whose certificate names it only by DNS name is verified against that
// name when given, and refused otherwise.
func TestXDSServerName(t *testing.T) {
	authority, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	const name = "istiod.istio-system.svc"
	sc, err := authority.NewServerCert([]string{name}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(sc.TLSConfig())))
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, &scriptedADS{res: resources(t, "127.0.0.1:0", "127.0.0.1:1"),
		nodes: make(chan *core.Node, 8), auth: make(chan []string, 8)})
	go gs.Serve(lis)
	defer gs.Stop()

	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "client-1", Namespace: "default", WorkloadName: "client"}
	start := func(serverName string) *Handle {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		h, err := Start(ctx, Options{Meta: meta, XDSAddress: lis.Addr().String(), CARoot: authority.RootFile(), XDSServerName: serverName})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); h.Wait() })
		return h
	}
	select {
	case <-start(name).Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not ready with --xds-server-name " + name)
	}
	// Without the name the certificate does not match 127.0.0.1: the
	// stream never comes up (the client keeps retrying).
	select {
	case <-start("").Ready():
		t.Fatal("proxy ready although the control plane's certificate does not name its address")
	case <-time.After(2 * time.Second):
	}
	if _, err := Start(context.Background(), Options{Meta: meta, XDSAddress: "127.0.0.1:1", XDSServerName: name}); err == nil || !strings.Contains(err.Error(), "--ca-root") {
		t.Errorf("a server name without a root: %v", err)
	}
}

func TestXDSTransportChoice(t *testing.T) {
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "x", Namespace: "default"}
	_, err := Start(context.Background(), Options{Meta: meta, XDSAddress: "192.0.2.10:15010"})
	if err == nil || !strings.Contains(err.Error(), "--ca-root") {
		t.Fatalf("plaintext xDS to another host: %v, want an error asking for --ca-root", err)
	}
	_, err = Start(context.Background(), Options{Meta: meta, XDSAddress: "192.0.2.10:15010", CARoot: filepath.Join(t.TempDir(), "none.pem")})
	if err == nil || !strings.Contains(err.Error(), "none.pem") {
		t.Fatalf("missing CA root: %v", err)
	}
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, "LOCALHOST": true,
		"0.0.0.0:1": false, "10.0.0.1:15010": false, "cp.example.com:15010": false} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}

func TestReadJoinTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if _, err := ReadJoinTokenFile(path); err == nil {
		t.Error("missing file: no error")
	}
	os.WriteFile(path, []byte("  abc123\n"), 0o600)
	if tok, err := ReadJoinTokenFile(path); err != nil || tok != "abc123" {
		t.Errorf("ReadJoinTokenFile = %q, %v", tok, err)
	}
	for _, bad := range []string{"\n", "two words"} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := ReadJoinTokenFile(path); err == nil {
			t.Errorf("token file %q accepted", bad)
		}
	}
}
