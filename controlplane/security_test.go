package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/server"
)

func startCPIn(t *testing.T, dir string, o Options) *ControlPlane {
	t.Helper()
	o.StateDir = dir
	if o.APIAddr == "" {
		o.APIAddr = "127.0.0.1:0"
	}
	if o.XDSAddr == "" {
		o.XDSAddr = "127.0.0.1:0"
	}
	o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := Start(ctx, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-cp.Done() })
	return cp
}

// TestStateFiles: the first start writes the CA and both tokens (the
// mesh-wide join token only when asked for) with private modes; the next
// start on the same directory reuses them.
func TestStateFiles(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := Start(ctx, Options{StateDir: dir, APIAddr: "127.0.0.1:0", XDSAddr: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler), JoinTokenScope: JoinScopeMesh})
	if err != nil {
		t.Fatal(err)
	}
	join, apiTok, root := cp.JoinToken(), cp.APIToken(), cp.CA().RootPEM()
	cancel()
	<-cp.Done()
	if join == "" || apiTok == "" || join == apiTok {
		t.Fatalf("tokens: join %d chars, api %d chars, equal %v", len(join), len(apiTok), join == apiTok)
	}
	for name, want := range map[string]os.FileMode{JoinTokenFile: 0o600, APITokenFile: 0o600, CADir: 0o700,
		filepath.Join(CADir, ca.RootKeyFile): 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", name, fi.Mode().Perm(), want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, JoinTokenFile)); strings.TrimSpace(string(b)) != join {
		t.Error("join-token file differs from JoinToken()")
	}
	if tok, err := client.ReadToken(dir); err != nil || tok != apiTok {
		t.Errorf("client.ReadToken = %v (equal: %v)", err, tok == apiTok)
	}

	cp2 := startCPIn(t, dir, Options{JoinTokenScope: JoinScopeMesh})
	if cp2.JoinToken() != join || cp2.APIToken() != apiTok || string(cp2.CA().RootPEM()) != string(root) {
		t.Error("a restart changed a token or the root")
	}
}

func TestAPIWritesNeedToken(t *testing.T) {
	cp := startCPIn(t, t.TempDir(), Options{})
	ctx := context.Background()
	src := []client.Source{{Name: "se.yaml", Content: seVS}}
	_, err := client.New(cp.APIAddr()).Apply(ctx, src, client.ApplyOptions{Namespace: "shop"})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("apply without token: %v, want 401", err)
	}
	if _, err := client.New(cp.APIAddr(), client.WithToken(cp.APIToken())).Apply(ctx, src, client.ApplyOptions{Namespace: "shop"}); err != nil {
		t.Fatalf("apply with token: %v", err)
	}
}

// adsStream opens an ADS stream presenting token (if any) and subscribes
// to secrets as meta.
type adsStream struct {
	st    discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps chan *discovery.DiscoveryResponse
	errc  chan error
}

func openADS(t *testing.T, addr string, creds credentials.TransportCredentials, token string, meta *node.Meta) *adsStream {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := &adsStream{st: st, resps: make(chan *discovery.DiscoveryResponse, 16), errc: make(chan error, 1)}
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				a.errc <- err
				return
			}
			a.resps <- r
		}
	}()
	_ = st.Send(&discovery.DiscoveryRequest{TypeUrl: server.SecretType, Node: meta.Node()}) // a refused stream may be gone already
	return a
}

func (a *adsStream) secrets(t *testing.T) map[string]*tlsv3.Secret {
	t.Helper()
	select {
	case r := <-a.resps:
		out := map[string]*tlsv3.Secret{}
		for _, any := range r.Resources {
			s := &tlsv3.Secret{}
			if err := any.UnmarshalTo(s); err != nil {
				t.Fatal(err)
			}
			out[s.Name] = s
		}
		return out
	case err := <-a.errc:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no SDS response")
	}
	return nil
}

func (a *adsStream) end(t *testing.T) error {
	t.Helper()
	for {
		select {
		case <-a.resps:
		case err := <-a.errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("stream not ended")
			return nil
		}
	}
}

func sidecarIn(ns, sa string) *node.Meta {
	return &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "w-1", Namespace: ns, WorkloadName: "w", ServiceAccount: sa}
}

const memberRoll = `apiVersion: maistra.io/v1
kind: ServiceMeshMemberRoll
metadata: {name: default, namespace: istio-system}
spec:
  members: [%s]
`

// TestProxyDoors: the (mesh-wide) join token, membership and the reserved
// control plane identity decide who gets configuration and a certificate.
func TestProxyDoors(t *testing.T) {
	cp := startCPIn(t, t.TempDir(), Options{TrustDomain: "example.org", JoinTokenScope: JoinScopeMesh})
	api := client.New(cp.APIAddr(), client.WithToken(cp.APIToken()))
	ctx := context.Background()

	for name, tok := range map[string]string{"no token": "", "wrong token": "x" + cp.JoinToken()} {
		if err := openADS(t, cp.XDSAddr(), nil, tok, sidecarIn("shop", "")).end(t); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v, want Unauthenticated", name, err)
		}
	}
	if err := openADS(t, cp.XDSAddr(), nil, cp.JoinToken(), sidecarIn("istio-system", "weft-controlplane")).end(t); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a proxy claiming the control plane's identity: %v, want PermissionDenied", err)
	}

	shop := openADS(t, cp.XDSAddr(), nil, cp.JoinToken(), sidecarIn("shop", "catalog"))
	secrets := shop.secrets(t)
	chain, err := ca.ParseCerts(secrets[ca.SecretDefault].GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	if err != nil {
		t.Fatal(err)
	}
	if want := "spiffe://example.org/ns/shop/sa/catalog"; len(chain[0].URIs) != 1 || chain[0].URIs[0].String() != want {
		t.Fatalf("certificate for %v, want %s", chain[0].URIs, want)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: cp.CA().Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("certificate does not verify against the mesh root: %v", err)
	}

	// A member roll without "shop" disconnects it, naming the roll.
	if _, err := api.Apply(ctx, []client.Source{{Name: "smmr.yaml", Content: fmt.Sprintf(memberRoll, "bookinfo")}}, client.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	err = shop.end(t)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"shop"`) || !strings.Contains(err.Error(), "istio-system/default") {
		t.Fatalf("after the member roll: %v, want PermissionDenied naming shop and the roll", err)
	}
	if err := openADS(t, cp.XDSAddr(), nil, cp.JoinToken(), sidecarIn("shop", "")).end(t); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a new stream from a non-member: %v", err)
	}
	// The root namespace and listed namespaces stay members.
	openADS(t, cp.XDSAddr(), nil, cp.JoinToken(), sidecarIn("bookinfo", "")).secrets(t)
	openADS(t, cp.XDSAddr(), nil, cp.JoinToken(), sidecarIn("istio-system", "istio-ingressgateway-service-account")).secrets(t)
}

// TestXDSTLS: off loopback the xDS listener serves a mesh-CA certificate
// for its host and the control plane's SPIFFE ID. The listener itself is
// bound on 127.0.0.1 (tests stay on loopback); the options are those of a
// control plane configured for 192.0.2.7.
func TestXDSTLS(t *testing.T) {
	dir := t.TempDir()
	c := &ControlPlane{opts: Options{StateDir: dir, XDSAddr: "192.0.2.7:15010", TrustDomain: "cluster.local"}}
	if err := c.setupSecurity(); err != nil {
		t.Fatal(err)
	}
	opts, err := c.xdsServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	if !c.XDSTLS() || len(opts) != 1 {
		t.Fatalf("XDSTLS %v with %d options", c.XDSTLS(), len(opts))
	}
	gs := grpc.NewServer(opts...)
	defer gs.Stop()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	conn, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{RootCAs: c.CA().Roots(), ServerName: "192.0.2.7", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("TLS to the xDS listener as 192.0.2.7: %v", err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != ControlPlaneID("cluster.local") {
		t.Errorf("xDS certificate URIs %v", leaf.URIs)
	}
	if _, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{RootCAs: c.CA().Roots(), ServerName: "203.0.113.1"}); err == nil {
		t.Error("the xDS certificate verified for another address")
	}

	// On loopback the listener takes TLS (gRPC clients with mesh
	// certificates) and plaintext (local proxies) alike, so proxies are
	// not told to dial it with TLS.
	loop := &ControlPlane{opts: Options{XDSAddr: "127.0.0.1:15010", TrustDomain: "cluster.local"}, ca: c.ca}
	if o, err := loop.xdsServerOptions(); err != nil || len(o) != 1 || loop.XDSTLS() {
		t.Errorf("loopback xDS: %d options, err %v, TLS %v", len(o), err, loop.XDSTLS())
	}
	hosts, err := certHosts("0.0.0.0:15010")
	if err != nil || len(hosts) < 2 || hosts[0] != "localhost" {
		t.Errorf("hosts for 0.0.0.0: %v, %v", hosts, err)
	}
}

// TestJWKSWiring: a RequestAuthentication's jwksUri is fetched in the
// background once the model asks for it, and the rebuilt model serves it.
func TestJWKSWiring(t *testing.T) {
	const doc = `{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	var hits atomic.Int32
	jw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		io.WriteString(w, doc)
	}))
	defer jw.Close()
	cp := startCPIn(t, t.TempDir(), Options{})
	api := client.New(cp.APIAddr(), client.WithToken(cp.APIToken()))
	ra := `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - issuer: https://issuer.example
    jwksUri: ` + jw.URL + `/jwks.json
`
	if _, err := api.Apply(context.Background(), []client.Source{{Name: "ra.yaml", Content: ra}}, client.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	uri := jw.URL + "/jwks.json"
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, ok := cp.Snapshot().JWKS(uri); ok {
			if got != doc {
				t.Fatalf("JWKS = %s", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key set was never served (%d fetches)", hits.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
