package runtime

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/sds"
)

func appServer(t testing.TB) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	t.Cleanup(s.Close)
	return hostOf(t, s.URL)
}

func status(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestMeshMTLS runs a client sidecar (outbound, auto mTLS) in front of a
// server sidecar in each inbound mode: who gets in, and what the server's
// Result says about the caller.
func TestMeshMTLS(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	forger := mtlstest.NewCA(t, "forger")
	app := appServer(t)
	for _, tc := range []struct {
		mode                 string
		mesh, forged, direct int // status through the mesh client, the forged one, and plaintext straight to the server
	}{
		{"STRICT", 200, 503, 0},
		{"PERMISSIVE", 200, 503, 200},
		{"DISABLE", 503, 503, 200},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			inbound := make(results, 100)
			_, in := serveOn(t, inboundResources(t, "127.0.0.1:0", tc.mode, app, mesh.Secrets(t, serverID)), Options{OnRequest: inbound.hook}, "in")
			// The client sidecar trusts the mesh root; the forged one has a
			// certificate of another CA (and trusts the mesh root too, so
			// only the server can refuse it).
			out := make(results, 100)
			_, good := serveOn(t, outboundResources(t, []string{in}, nil, mesh.Secrets(t, clientID), serverID), Options{OnRequest: out.hook}, "l")
			forgedSecrets := forger.Secrets(t, clientID)
			forgedSecrets["ROOTCA"] = mtlstest.RootSecret("ROOTCA", mesh.PEM)
			forged := make(results, 10)
			_, bad := serveOn(t, outboundResources(t, []string{in}, nil, forgedSecrets, serverID), Options{OnRequest: forged.hook}, "l")
			c := plainClient(t)

			if code, err := status(c, "http://"+good+"/"); code != tc.mesh {
				t.Fatalf("mesh client: %d %v, want %d", code, err, tc.mesh)
			}
			if tc.mesh == 200 {
				r := inbound.next(t)
				if !r.MutualTLS || r.PeerPrincipal != clientID {
					t.Fatalf("server result: mutual %v principal %q, want %q", r.MutualTLS, r.PeerPrincipal, clientID)
				}
			} else if r := out.next(t); r.Flags != "UF" {
				t.Fatalf("mTLS to a plaintext server: flags %q, want UF", r.Flags)
			}
			if tc.mode != "DISABLE" {
				out.next(t)
			}
			if code, err := status(c, "http://"+bad+"/"); code != tc.forged {
				t.Fatalf("forged client: %d %v, want %d", code, err, tc.forged)
			}
			if r := forged.next(t); r.Flags != "UF" {
				t.Fatalf("forged client: flags %q, want UF (the server's refusal is a connect failure)", r.Flags)
			}
			code, err := status(c, "http://"+in+"/")
			if code != tc.direct {
				t.Fatalf("plaintext to the server: %d %v, want %d", code, err, tc.direct)
			}
			if code == 200 {
				if r := inbound.next(t); r.MutualTLS || r.PeerPrincipal != "" {
					t.Fatalf("plaintext request reported as mutual %v %q", r.MutualTLS, r.PeerPrincipal)
				}
			}
		})
	}
}

// TestModeChangeKeepsSocket: STRICT -> PERMISSIVE on the same listener
// applies to the next connection without rebinding.
func TestModeChangeKeepsSocket(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	app := appServer(t)
	// The listener's configured address stays 127.0.0.1:0: the same
	// listener, so the port the kernel picked at the first bind is kept.
	const cfgAddr = "127.0.0.1:0"
	p, in := serveOn(t, inboundResources(t, cfgAddr, "STRICT", app, mesh.Secrets(t, serverID)), Options{}, "in")
	c := plainClient(t)
	if code, _ := status(c, "http://"+in+"/"); code != 0 {
		t.Fatalf("plaintext to STRICT answered %d", code)
	}
	update(t, p, inboundResources(t, cfgAddr, "PERMISSIVE", app, mesh.Secrets(t, serverID)))
	if got := p.ListenerAddr("in").String(); got != in {
		t.Fatalf("listener moved to %s", got)
	}
	if code, err := status(c, "http://"+in+"/"); code != 200 {
		t.Fatalf("plaintext to PERMISSIVE: %d %v", code, err)
	}
}

// TestTransportSocketPerEndpoint: auto mTLS picks TLS for the sidecar
// endpoint and plaintext for the other, in one cluster.
func TestTransportSocketPerEndpoint(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	app := appServer(t)
	inbound := make(results, 100)
	_, in := serveOn(t, inboundResources(t, "127.0.0.1:0", "STRICT", app, mesh.Secrets(t, serverID)), Options{OnRequest: inbound.hook}, "in")
	out := make(results, 100)
	_, l := serveOn(t, outboundResources(t, []string{in}, []string{app}, mesh.Secrets(t, clientID), serverID), Options{OnRequest: out.hook}, "l")
	c := plainClient(t)
	seen := map[string]int{}
	for range 6 {
		if code, err := status(c, "http://"+l+"/"); code != 200 {
			t.Fatalf("%d %v", code, err)
		}
		seen[out.next(t).Upstream]++
	}
	if seen[in] != 3 || seen[app] != 3 {
		t.Fatalf("upstreams %v, want 3 each", seen)
	}
	for range 3 {
		if r := inbound.next(t); !r.MutualTLS {
			t.Fatal("the sidecar endpoint was reached without mTLS")
		}
	}
}

// TestSANMismatchRefused: the server's identity is not one the cluster
// accepts: 503 UF.
func TestSANMismatchRefused(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	_, in := serveOn(t, inboundResources(t, "127.0.0.1:0", "STRICT", appServer(t), mesh.Secrets(t, serverID)), Options{}, "in")
	out := make(results, 10)
	_, l := serveOn(t, outboundResources(t, []string{in}, nil, mesh.Secrets(t, clientID), mtlstest.SPIFFE("default", "ratings")), Options{OnRequest: out.hook}, "l")
	if code, err := status(plainClient(t), "http://"+l+"/"); code != 503 {
		t.Fatalf("%d %v, want 503", code, err)
	}
	if r := out.next(t); r.Flags != "UF" {
		t.Fatalf("flags %q, want UF", r.Flags)
	}
}

// probe is a TLS server recording the serial of each client certificate.
func probe(t testing.TB, ca *mtlstest.CA) (addr string, serials chan string) {
	st := sds.NewStore()
	mtlstest.Publish(t, st, ca.Secrets(t, serverID))
	d, err := mtls.ParseDownstream(mtlstest.Socket(t, mtlstest.DownstreamContext()))
	if err != nil {
		t.Fatal(err)
	}
	serials = make(chan string, 10)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serials <- r.TLS.PeerCertificates[0].SerialNumber.String()
	}))
	s.TLS = d.ServerConfig(st)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String(), serials
}

// TestRotationUnderLoad swaps both sidecars' "default" in the middle of a
// bounded request loop: no request fails, and the next handshakes present
// the new certificates.
func TestRotationUnderLoad(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	app := appServer(t)
	const cfgAddr = "127.0.0.1:0" // kept across updates, and so is the bound port
	server, in := serveOn(t, inboundResources(t, cfgAddr, "STRICT", app, mesh.Secrets(t, serverID)), Options{}, "in")
	probeAddr, serials := probe(t, mesh)

	// The client sidecar sends / to the server sidecar, opening a new
	// connection every 3 requests (so handshakes keep happening), and
	// /probe to the recording server.
	clientSecrets := mesh.Secrets(t, clientID)
	out := outboundResources(t, []string{in}, nil, clientSecrets, serverID)
	out.Clusters["c"].TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t,
		&httpv3.HttpProtocolOptions{CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(3)}})}
	probeRoute := routeTo("probe", 0)
	probeRoute.Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/probe"}}
	probeRoute.Name = "probe"
	out.Routes["rc"] = routeConfig("rc", probeRoute, routeTo("c", 0))
	probeCluster := edsCluster("probe", clusterv3.Cluster_ROUND_ROBIN)
	out.Clusters["probe"] = probeCluster
	out.Clusters["probe"].TransportSocket = mtlstest.Socket(t, mtlstest.UpstreamContext("probe", serverID))
	out.Clusters["probe"].TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t,
		&httpv3.HttpProtocolOptions{CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(1)}})}
	out.Endpoints["probe"] = cla(t, "probe", probeAddr)
	client, l := serveOn(t, out, Options{}, "l")
	c := plainClient(t)

	leafSerial := func(s map[string]*tlsv3.Secret) string {
		p, err := sds.Parse(s["default"])
		if err != nil {
			t.Fatal(err)
		}
		return p.Certificate.Leaf.SerialNumber.String()
	}
	probeOnce := func() string {
		if code, err := status(c, "http://"+l+"/probe"); code != 200 {
			t.Fatalf("probe: %d %v", code, err)
		}
		return <-serials
	}
	if got, want := probeOnce(), leafSerial(clientSecrets); got != want {
		t.Fatalf("client certificate %s before rotation, want %s", got, want)
	}

	var newServer, newClient map[string]*tlsv3.Secret
	var failures atomic.Int64
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		switch i {
		case 100:
			newServer = mesh.Secrets(t, serverID)
			update(t, server, inboundResources(t, cfgAddr, "STRICT", app, newServer))
		case 200:
			newClient = mesh.Secrets(t, clientID)
			out.Secrets = newClient
			update(t, client, out)
		}
		if code, err := status(c, "http://"+l+"/"); code != 200 {
			failures.Add(1)
			t.Errorf("request %d: %d %v", i, code, err)
		}
	}
	if newClient == nil {
		t.Fatal("the loop ran out of time before both rotations")
	}
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d requests failed across rotation", n)
	}
	// New handshakes present the new certificates, both ways.
	if got, want := probeOnce(), leafSerial(newClient); got != want {
		t.Fatalf("client certificate %s after rotation, want %s", got, want)
	}
	conn, err := tls.Dial("tcp", in, &tls.Config{InsecureSkipVerify: true,
		Certificates: []tls.Certificate{mesh.Issue(t, mtlstest.LeafOptions{URIs: []string{clientID}}).TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got, want := conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), leafSerial(newServer); got != want {
		t.Fatalf("server certificate %s after rotation, want %s", got, want)
	}
}

// TestTCPMTLS: a TCP listener in STRICT mode behind a client sidecar's TCP
// listener with an mTLS cluster: bytes echo, the server's connection
// result names the caller, plaintext is refused.
func TestTCPMTLS(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	echo := tcpEcho(t)
	inConns := make(tcpResults, 10)
	inR := &Resources{
		Listeners: map[string]*listenerv3.Listener{"in": withChains(t, tcpProxyListener(t, "in", "127.0.0.1:0", "app"), "STRICT")},
		Clusters:  map[string]*clusterv3.Cluster{"app": edsCluster("app", clusterv3.Cluster_ROUND_ROBIN)},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"app": cla(t, "app", echo)},
		Secrets:   mesh.Secrets(t, serverID),
	}
	_, in := serveOn(t, inR, Options{OnConnection: inConns.hook}, "in")
	outR := &Resources{
		Listeners: map[string]*listenerv3.Listener{"out": tcpProxyListener(t, "out", "127.0.0.1:0", "c")},
		Clusters:  map[string]*clusterv3.Cluster{"c": autoMTLS(t, edsCluster("c", clusterv3.Cluster_ROUND_ROBIN), serverID)},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"c": cla(t, "c", in)},
		Secrets:   mesh.Secrets(t, clientID),
	}
	outR.Endpoints["c"].Endpoints[0].LbEndpoints[0].Metadata = tlsMetadata()
	_, out := serveOn(t, outR, Options{}, "out")

	conn, err := net.Dial("tcp", out)
	if err != nil {
		t.Fatal(err)
	}
	echoOnce(t, conn, "hello over mTLS")
	conn.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, conn)
	conn.Close()
	select {
	case r := <-inConns:
		if !r.MutualTLS || r.PeerPrincipal != clientID || r.Flags != "" {
			t.Fatalf("server connection: mutual %v principal %q flags %q", r.MutualTLS, r.PeerPrincipal, r.Flags)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no connection result")
	}

	plain, err := net.Dial("tcp", in)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(plain, "plaintext")
	if b, err := io.ReadAll(plain); len(b) != 0 || (err != nil && !errors.Is(err, errReset)) {
		t.Fatalf("plaintext to STRICT TCP: read %q %v", b, err)
	}
}

// TestSecretsIncomplete: a listener or cluster naming a secret not received
// yet waits (ErrIncomplete); a secret of the wrong kind is an error.
func TestSecretsIncomplete(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	r := inboundResources(t, "127.0.0.1:0", "STRICT", "127.0.0.1:1", nil)
	_, err := Compile(r)
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), `listener "in": filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0]: Secret "default" not received yet`) {
		t.Fatalf("err = %v", err)
	}
	out := outboundResources(t, []string{"127.0.0.1:1"}, nil, map[string]*tlsv3.Secret{"default": mesh.Secrets(t, clientID)["default"]})
	if _, err := Compile(out); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), `cluster "c": transport_socket_matches[0].transport_socket.`) || !strings.Contains(err.Error(), `Secret "ROOTCA"`) {
		t.Fatalf("err = %v", err)
	}
	swapped := mesh.Secrets(t, serverID)
	swapped["default"], swapped["ROOTCA"] = mtlstest.RootSecret("default", mesh.PEM), swapped["default"]
	swapped["ROOTCA"].Name = "ROOTCA"
	r.Secrets = swapped
	if _, err := Compile(r); err == nil || errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), `secret "default" holds no tls_certificate`) {
		t.Fatalf("err = %v", err)
	}
	bad := mesh.Secrets(t, serverID)
	bad["default"].GetTlsCertificate().PrivateKey = bad["ROOTCA"].GetValidationContext().TrustedCa
	r.Secrets = bad
	if _, err := Compile(r); err == nil || errors.Is(err, ErrIncomplete) || !strings.HasPrefix(err.Error(), `secret "default": tls_certificate.private_key`) {
		t.Fatalf("err = %v", err)
	}
}

// TestStrictClosesStalePlaintext: a plaintext keep-alive HTTP connection
// and a plaintext TCP connection accepted while PERMISSIVE do not outlive
// the switch to STRICT.
func TestStrictClosesStalePlaintext(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	app := appServer(t)
	const cfgAddr = "127.0.0.1:0" // kept across updates, and so is the bound port
	p, in := serveOn(t, inboundResources(t, cfgAddr, "PERMISSIVE", app, mesh.Secrets(t, serverID)), Options{}, "in")
	c := plainClient(t)
	if code, err := status(c, "http://"+in+"/"); code != 200 {
		t.Fatalf("plaintext to PERMISSIVE: %d %v", code, err)
	}
	update(t, p, inboundResources(t, cfgAddr, "STRICT", app, mesh.Secrets(t, serverID)))
	// The client reuses its idle connection; the server must not answer
	// on it (nor on the new one the client may retry with).
	if code, _ := status(c, "http://"+in+"/"); code != 0 {
		t.Fatalf("plaintext keep-alive connection answered %d after STRICT", code)
	}

	echo := tcpEcho(t)
	tcpR := func(mode string) *Resources {
		return &Resources{
			Listeners: map[string]*listenerv3.Listener{"in": withChains(t, tcpProxyListener(t, "in", cfgAddr, "app"), mode)},
			Clusters:  map[string]*clusterv3.Cluster{"app": edsCluster("app", clusterv3.Cluster_ROUND_ROBIN)},
			Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"app": cla(t, "app", echo)},
			Secrets:   mesh.Secrets(t, serverID),
		}
	}
	tp, tin := serveOn(t, tcpR("PERMISSIVE"), Options{}, "in")
	conn, err := net.Dial("tcp", tin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoOnce(t, conn, "plaintext while permissive")
	update(t, tp, tcpR("STRICT"))
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(conn); len(b) != 0 || (err != nil && !errors.Is(err, errReset)) {
		t.Fatalf("plaintext TCP connection after STRICT: read %q %v, want it closed", b, err)
	}
}
