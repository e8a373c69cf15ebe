package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/sds"
)

var (
	webID = mtlstest.SPIFFE("default", "web")
	appID = mtlstest.SPIFFE("default", "app")
)

// upstream serves "PROTO PEER" over HTTP; with store, over the contract's
// inbound TLS (identity from store).
func upstream(t *testing.T, store *sds.Store) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if store != nil {
		d, err := mtls.ParseDownstream(mtlstest.Socket(t, mtlstest.DownstreamContext()))
		if err != nil {
			t.Fatal(err)
		}
		ln = tls.NewListener(ln, d.ServerConfig(store))
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer := "plaintext"
		if r.TLS != nil {
			peer, _ = mtls.Peer(r.TLS)
		}
		fmt.Fprintf(w, "%s %s", r.Proto, peer)
	}), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// autoMTLS is the contract's auto-mTLS cluster over a TLS endpoint (with
// tlsMode: istio metadata) and a plaintext one.
func autoMTLS(t *testing.T, tlsAddr, plainAddr string, sans ...string) *clusterv3.Cluster {
	c := static(t, "outbound|8080||web.default.svc.cluster.local", tlsAddr, plainAddr)
	c.ConnectTimeout = durationpb.New(10 * time.Second) // handshakes on a busy machine
	c.LoadAssignment.Endpoints[0].LbEndpoints[0].Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		TransportSocketMatchKey: {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
	}}
	raw, err := anypb.New(&rawv3.RawBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
			TransportSocket: mtlstest.Socket(t, mtlstest.UpstreamContext("outbound_.8080_._.web.default.svc.cluster.local", sans...))},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{},
			TransportSocket: &corev3.TransportSocket{Name: mtls.TransportSocketRaw, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: raw}}},
	}
	return c
}

// mesh returns a CA and a state whose store holds the client's identity.
func mesh(t *testing.T, log *slog.Logger) (*mtlstest.CA, *State) {
	ca := mtlstest.NewCA(t, "mesh")
	st := NewState(StateOptions{Log: log})
	mtlstest.Publish(t, st.Secrets(), ca.Secrets(t, appID))
	t.Cleanup(st.Close)
	return ca, st
}

func roundTrip(rt http.RoundTripper, ep *lb.Endpoint) (string, error) {
	req, _ := http.NewRequest("GET", "http://"+ep.Address+"/", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func endpointAt(t *testing.T, c *Cluster, addr string) *lb.Endpoint {
	for _, e := range c.Endpoints {
		if e.Address == addr {
			return e
		}
	}
	t.Fatalf("no endpoint %s", addr)
	return nil
}

// TestTransportSocketMatches: each endpoint is reached with the socket its
// metadata selects, TLS (client identity from the store, HTTP/1.1 or, for
// gRPC, h2 by ALPN) or plaintext, through separate pools.
func TestTransportSocketMatches(t *testing.T) {
	ca, st := mesh(t, nil)
	tlsAddr, plainAddr := upstream(t, ca.Store(t, webID)), upstream(t, nil)
	c, err := st.Compile(autoMTLS(t, tlsAddr, plainAddr, webID), nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsEP, plainEP := endpointAt(t, c, tlsAddr), endpointAt(t, c, plainAddr)
	if c.TLSFor(tlsEP) == nil || c.TLSFor(plainEP) != nil || c.TLS != nil {
		t.Fatalf("sockets: tls ep %v, plain ep %v, default %v", c.TLSFor(tlsEP), c.TLSFor(plainEP), c.TLS)
	}
	if c.transportOf(tlsEP) == c.transportOf(plainEP) {
		t.Fatal("TLS and plaintext endpoints share a transport")
	}
	for _, tc := range []struct {
		ep   *lb.Endpoint
		h2   bool
		want string
	}{
		{tlsEP, false, "HTTP/1.1 " + appID},
		{tlsEP, true, "HTTP/2.0 " + appID},
		{plainEP, false, "HTTP/1.1 plaintext"},
	} {
		got, err := roundTrip(c.TransportFor(tc.ep, tc.h2), tc.ep)
		if err != nil || got != tc.want {
			t.Errorf("%s h2=%v: %q, %v; want %q", tc.ep.Address, tc.h2, got, err, tc.want)
		}
	}
	if c.TransportFor(plainEP, true) != nil {
		t.Error("plaintext gRPC should use the caller's h2c transport")
	}
	// The TCP proxy's dial is TLS to the TLS endpoint.
	conn, err := c.Dial(context.Background(), tlsEP)
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := conn.(*tls.Conn)
	conn.Close()
	if !ok || !tc.ConnectionState().HandshakeComplete {
		t.Fatalf("Dial to a TLS endpoint returned %T", conn)
	}
	refs := c.Secrets()
	if len(refs) != 2 || refs[0].Field != "transport_socket_matches[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0]" {
		t.Fatalf("Secrets() = %+v", refs)
	}
}

// TestTLSPoolsFollowSettings: the same address turning from plaintext to
// TLS (metadata), or changing TLS settings, gets a new transport; the old
// one is dropped once unused.
func TestTLSPoolsFollowSettings(t *testing.T) {
	ca, st := mesh(t, nil)
	tlsAddr, plainAddr := upstream(t, ca.Store(t, webID)), upstream(t, nil)
	plainFirst := autoMTLS(t, plainAddr, tlsAddr, webID) // tlsAddr without metadata: plaintext
	c1, err := st.Compile(plainFirst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(c1.TransportFor(endpointAt(t, c1, tlsAddr), false), endpointAt(t, c1, tlsAddr)); err == nil && !strings.Contains(got, "HTTPS server") {
		t.Fatalf("plaintext request to a TLS server: %q", got)
	}
	c2, err := st.Compile(autoMTLS(t, tlsAddr, plainAddr, webID), nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Retain([]*Cluster{c2})
	ep := endpointAt(t, c2, tlsAddr)
	if c2.transportOf(ep) == c1.transportOf(endpointAt(t, c1, tlsAddr)) {
		t.Fatal("the plaintext pool of an address is reused for TLS")
	}
	if got, err := roundTrip(c2.TransportFor(ep, false), ep); err != nil || got != "HTTP/1.1 "+appID {
		t.Fatalf("after switching to TLS: %q, %v", got, err)
	}
	c3, err := st.Compile(autoMTLS(t, tlsAddr, plainAddr, webID, appID), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c3.transportOf(endpointAt(t, c3, tlsAddr)) == c2.transportOf(ep) {
		t.Fatal("different SANs share a pool")
	}
	c4, err := st.Compile(autoMTLS(t, tlsAddr, plainAddr, webID, appID), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c4.transportOf(endpointAt(t, c4, tlsAddr)) != c3.transportOf(endpointAt(t, c3, tlsAddr)) {
		t.Fatal("equal settings do not share a pool")
	}
	st.Retain([]*Cluster{c4})
	st.mu.Lock()
	n := len(st.transports)
	st.mu.Unlock()
	if n != 2 { // c4's TLS and plaintext
		t.Fatalf("%d transports retained, want 2", n)
	}
}

// TestUpstreamTLSFailureIsConnectFailure: a server whose identity matches
// no SAN (or from another CA) fails the dial, as a *net.OpError "dial" the
// forwarder counts as UF, and the log says why.
func TestUpstreamTLSFailureIsConnectFailure(t *testing.T) {
	var logs safeBuffer
	ca, st := mesh(t, slog.New(slog.NewTextHandler(&logs, nil)))
	forger := mtlstest.NewCA(t, "forger")
	for _, tc := range []struct {
		name   string
		server *sds.Store
		want   string
	}{
		{"SAN mismatch", ca.Store(t, mtlstest.SPIFFE("default", "db")), "match none of the 1 allowed"},
		{"forged server", forger.Store(t, webID), "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := upstream(t, tc.server)
			c, err := st.Compile(autoMTLS(t, addr, upstream(t, nil), webID), nil)
			if err != nil {
				t.Fatal(err)
			}
			ep := endpointAt(t, c, addr)
			_, err = roundTrip(c.TransportFor(ep, false), ep)
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "dial" || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a dial error about %q", err, tc.want)
			}
			if _, err := c.Dial(context.Background(), ep); !errors.As(err, &op) || op.Op != "dial" {
				t.Fatalf("Dial err = %v", err)
			}
			if !strings.Contains(logs.String(), "upstream TLS handshake failed") || !strings.Contains(logs.String(), addr) {
				t.Fatalf("log lacks the failure:\n%s", logs.String())
			}
		})
	}
}

func TestSocketParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*clusterv3.Cluster)
		want string
	}{
		{"unnamed match", func(c *clusterv3.Cluster) { c.TransportSocketMatches[0].Name = "" }, "transport_socket_matches[0].name: empty"},
		{"bad socket", func(c *clusterv3.Cluster) { c.TransportSocketMatches[1].TransportSocket.Name = "x" },
			`transport_socket_matches[1].transport_socket.name: unsupported transport socket "x"`},
		{"bad default", func(c *clusterv3.Cluster) {
			c.TransportSocket = mtlstest.Socket(t, mtlstest.DownstreamContext())
		}, "transport_socket.typed_config: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := autoMTLS(t, "127.0.0.1:1", "127.0.0.1:2")
			tc.edit(c)
			_, err := Compile(c, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `cluster "outbound|8080||web.default.svc.cluster.local": `) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
