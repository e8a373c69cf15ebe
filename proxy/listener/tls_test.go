package listener

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/sds"
)

var (
	serverID = mtlstest.SPIFFE("default", "web")
	clientID = mtlstest.SPIFFE("default", "app")
)

func ads(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}
}

// tlsSocket is the contract's inbound DownstreamTlsContext.
func tlsSocket(t testing.TB) *corev3.TransportSocket {
	a, err := anypb.New(&tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{ads("default")},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: ads("ROOTCA")},
			AlpnProtocols: []string{"h2", "http/1.1"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: mtls.TransportSocketTLS, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

// inbound returns virtualInbound in mode "STRICT", "PERMISSIVE" or
// "DISABLE", as the contract's table has it.
func inbound(t testing.TB, mode string) *listenerv3.Listener {
	l := testListener(t, &hcmv3.HttpConnectionManager{
		StatPrefix:     "inbound",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "inbound"}},
	})
	filters := l.FilterChains[0].Filters
	tlsChain := &listenerv3.FilterChain{Name: "inbound-tls", Filters: filters, TransportSocket: tlsSocket(t),
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"}}
	plain := &listenerv3.FilterChain{Name: "inbound-plaintext", Filters: filters,
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}}
	switch mode {
	case "DISABLE":
		l.FilterChains = []*listenerv3.FilterChain{{Name: "inbound-plaintext", Filters: filters}}
		return l
	case "PERMISSIVE":
		l.FilterChains = []*listenerv3.FilterChain{tlsChain, plain}
	default:
		l.FilterChains = []*listenerv3.FilterChain{tlsChain}
	}
	ti, err := anypb.New(&tlsinspectorv3.TlsInspector{})
	if err != nil {
		t.Fatal(err)
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: mtls.TLSInspector, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: ti}}}
	return l
}

func TestParseChains(t *testing.T) {
	for mode, want := range map[string]string{
		"STRICT":     "inbound-tls:tls:TLS",
		"PERMISSIVE": "inbound-tls:tls:TLS inbound-plaintext:raw_buffer:plain",
		"DISABLE":    "inbound-plaintext::plain",
	} {
		s, err := Parse(inbound(t, mode))
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		var got []string
		for _, c := range s.Chains {
			kind := "plain"
			if c.TLS != nil {
				kind = "TLS"
			}
			got = append(got, c.Name+":"+c.TransportProtocol+":"+kind)
		}
		if strings.Join(got, " ") != want || s.TLSInspector != (mode != "DISABLE") || s.RouteConfigName != "inbound" {
			t.Errorf("%s: chains %v inspector %v", mode, got, s.TLSInspector)
		}
		if refs := s.Secrets(); mode != "DISABLE" && (len(refs) != 2 || refs[0].Field != "filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0]") {
			t.Errorf("%s: Secrets() = %+v", mode, refs)
		}
	}

	edit := func(mode string, f func(*listenerv3.Listener)) *listenerv3.Listener {
		l := inbound(t, mode)
		f(l)
		return l
	}
	for _, tc := range []struct {
		name string
		l    *listenerv3.Listener
		want string
	}{
		{"no chains", edit("STRICT", func(l *listenerv3.Listener) { l.FilterChains = nil }), "filter_chains: at least one filter chain required"},
		{"tls without inspector", edit("STRICT", func(l *listenerv3.Listener) { l.ListenerFilters = nil }),
			`filter_chains[0].filter_chain_match.transport_protocol: "tls" needs listener_filters envoy.filters.listener.tls_inspector`},
		{"other inspector", edit("STRICT", func(l *listenerv3.Listener) { l.ListenerFilters[0].Name = "envoy.filters.listener.http_inspector" }),
			`listener_filters[0].name: unsupported listener filter "envoy.filters.listener.http_inspector"`},
		{"same match twice", edit("PERMISSIVE", func(l *listenerv3.Listener) { l.FilterChains[1].FilterChainMatch.TransportProtocol = "tls" }),
			"filter_chains[1].filter_chain_match: same match as filter_chains[0]"},
		{"other match", edit("STRICT", func(l *listenerv3.Listener) { l.FilterChains[0].FilterChainMatch.ServerNames = []string{"a"} }),
			"filter_chains[0].filter_chain_match.server_names: unsupported field"},
		{"unknown protocol", edit("STRICT", func(l *listenerv3.Listener) { l.FilterChains[0].FilterChainMatch.TransportProtocol = "quic" }),
			`filter_chains[0].filter_chain_match.transport_protocol: unsupported "quic"`},
		{"different filters", edit("PERMISSIVE", func(l *listenerv3.Listener) {
			l.FilterChains[1].Filters = []*listenerv3.Filter{proto.Clone(l.FilterChains[1].Filters[0]).(*listenerv3.Filter)}
			l.FilterChains[1].Filters[0].Name = "x"
		}), "filter_chains[1].filters: must equal filter_chains[0].filters"},
		{"bad socket", edit("STRICT", func(l *listenerv3.Listener) { l.FilterChains[0].TransportSocket.Name = "envoy.transport_sockets.alts" }),
			`filter_chains[0].transport_socket.name: unsupported transport socket "envoy.transport_sockets.alts"`},
		{"bad timeout", edit("STRICT", func(l *listenerv3.Listener) { l.ListenerFiltersTimeout = durationOf(-1) }),
			"listener_filters_timeout: must be a positive duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// mesh is a CA, a secret store holding the server's identity, and client
// certificates.
type mesh struct {
	ca    *mtlstest.CA
	store *sds.Store
}

func newMesh(t *testing.T) *mesh {
	m := &mesh{ca: mtlstest.NewCA(t, "mesh"), store: sds.NewStore()}
	m.publish(t, m.ca.Secrets(t, serverID))
	return m
}

func (m *mesh) publish(t *testing.T, secrets map[string]*tlsv3.Secret) {
	parsed := map[string]*sds.Secret{}
	for n, s := range secrets {
		p, err := sds.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		parsed[n] = p
	}
	m.store.Publish(parsed)
}

// client returns an HTTP client presenting a certificate of ca for id,
// offering h2 when h2 is set. It trusts any server: the tests here are
// about what the server accepts.
func client(t *testing.T, ca *mtlstest.CA, id string, h2 bool) *http.Client {
	leaf := ca.Issue(t, mtlstest.LeafOptions{URIs: []string{id}})
	p := new(http.Protocols)
	p.SetHTTP1(true)
	if h2 {
		p = new(http.Protocols)
		p.SetHTTP2(true)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Protocols:       p,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{leaf.TLS}},
	}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// serve runs an HTTP server through Dispatch with the selector *cur; the
// handler answers with the protocol, the chain's TLS state and the peer.
func serve(t *testing.T, cur *atomic.Pointer[Selector]) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve("inbound", Dispatch(ln, cur.Load), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer := "none"
		if r.TLS != nil {
			peer = "nobody"
			if p, ok := mtls.Peer(r.TLS); ok {
				peer = p
			}
		}
		_, local := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		fmt.Fprintf(w, "%s %s local=%v", r.Proto, peer, local)
	}), ServerOptions{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return s.Addr().String()
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func selector(t *testing.T, m *mesh, mode string) *Selector {
	s, err := Parse(inbound(t, mode))
	if err != nil {
		t.Fatal(err)
	}
	return NewSelector(s, m.store)
}

// TestDispatchModes checks each mode's chains over real sockets: who gets
// in, with which protocol and identity.
func TestDispatchModes(t *testing.T) {
	m := newMesh(t)
	forger := mtlstest.NewCA(t, "forger")
	var cur atomic.Pointer[Selector]
	addr := serve(t, &cur)
	plain := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer plain.CloseIdleConnections()
	mtlsH1, mtlsH2 := client(t, m.ca, clientID, false), client(t, m.ca, clientID, true)
	forged := client(t, forger, clientID, false)

	type want struct{ plain, h1, h2, forged string }
	for _, tc := range []struct {
		mode string
		want want
	}{
		{"STRICT", want{"refused", "HTTP/1.1 " + clientID + " local=true", "HTTP/2.0 " + clientID + " local=true", "refused"}},
		{"PERMISSIVE", want{"HTTP/1.1 none local=true", "HTTP/1.1 " + clientID + " local=true", "HTTP/2.0 " + clientID + " local=true", "refused"}},
		{"DISABLE", want{"HTTP/1.1 none local=true", "refused", "refused", "refused"}},
	} {
		// The selector changes under the same socket: the next connection
		// follows it.
		cur.Store(selector(t, m, tc.mode))
		for _, c := range []*http.Client{plain, mtlsH1, mtlsH2, forged} {
			c.CloseIdleConnections()
		}
		got := func(c *http.Client, scheme string) string {
			body, err := get(c, scheme+"://"+addr+"/")
			if err != nil {
				return "refused"
			}
			return body
		}
		g := want{got(plain, "http"), got(mtlsH1, "https"), got(mtlsH2, "https"), got(forged, "https")}
		if g != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.mode, g, tc.want)
		}
	}
}

// TestStrictClosesPlaintext: plaintext to a TLS-only listener gets no
// answer at all, the connection is closed.
func TestStrictClosesPlaintext(t *testing.T) {
	m := newMesh(t)
	var cur atomic.Pointer[Selector]
	cur.Store(selector(t, m, "STRICT"))
	addr := serve(t, &cur)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(conn); len(b) != 0 || !closedErr(err) {
		t.Fatalf("read %q, %v; want a closed connection and nothing", b, err)
	}
}

// TestInspectTimeout: a client that sends nothing is dropped after the
// listener_filters_timeout, and a nil selector closes connections.
func TestInspectTimeout(t *testing.T) {
	m := newMesh(t)
	s, err := Parse(inbound(t, "PERMISSIVE"))
	if err != nil {
		t.Fatal(err)
	}
	s.InspectTimeout = 50 * time.Millisecond
	var cur atomic.Pointer[Selector]
	cur.Store(NewSelector(s, m.store))
	addr := serve(t, &cur)
	for _, nilSel := range []bool{false, true} {
		if nilSel {
			cur.Store(nil)
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(conn)
		conn.Close()
		if len(b) != 0 || !closedErr(err) {
			t.Fatalf("nil selector %v: read %q, %v; want the connection closed", nilSel, b, err)
		}
	}
}

// TestDispatchCloseDropsPending: closing the listener closes connections
// still being inspected; Accept then reports net.ErrClosed.
func TestDispatchCloseDropsPending(t *testing.T) {
	m := newMesh(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sel := selector(t, m, "PERMISSIVE")
	d := Dispatch(ln, func() *Selector { return sel })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dd := d.(*dispatcher)
	for i := 0; ; i++ {
		dd.mu.Lock()
		n := len(dd.pending)
		dd.mu.Unlock()
		if n == 1 {
			break
		}
		if i == 1000 {
			t.Fatal("connection never reached inspection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(conn); len(b) != 0 || !closedErr(err) {
		t.Fatalf("read %q, %v; want closed", b, err)
	}
	if _, err := d.Accept(); !errorsIsClosed(err) {
		t.Fatalf("Accept after Close = %v", err)
	}
}

// FuzzParseChains feeds arbitrary Listener encodings, seeded with the three
// inbound modes: Parse never panics, errors name the listener, and an
// accepted listener has chains a Selector can be built from.
func FuzzParseChains(f *testing.F) {
	for _, mode := range []string{"STRICT", "PERMISSIVE", "DISABLE"} {
		b, err := proto.Marshal(inbound(f, mode))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	store := sds.NewStore()
	f.Fuzz(func(t *testing.T, raw []byte) {
		l := &listenerv3.Listener{}
		if err := proto.Unmarshal(raw, l); err != nil {
			return
		}
		s, err := Parse(l)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "listener ") {
				t.Fatalf("error names no listener: %v", err)
			}
			return
		}
		if len(s.Chains) == 0 {
			t.Fatal("accepted a listener without chains")
		}
		if sel := NewSelector(s, store); sel.tls == nil && sel.raw == nil {
			t.Fatal("a selector that takes no connection")
		}
	})
}
