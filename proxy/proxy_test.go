package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weft-mesh/weft/internal/testnet"
	"github.com/weft-mesh/weft/xds/node"
)

// scriptedADS answers every new subscription on a stream with a fixed set
// of resources per type, and records the nodes it saw.
type scriptedADS struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	res   map[string][]proto.Message
	nodes chan *core.Node
	auth  chan []string // if set, receives each stream's authorization metadata
}

func (s *scriptedADS) StreamAggregatedResources(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	if s.auth != nil {
		md, _ := metadata.FromIncomingContext(st.Context())
		s.auth <- md.Get("authorization")
	}
	sent := map[string]bool{}
	for {
		req, err := st.Recv()
		if err != nil {
			return nil
		}
		if req.GetNode() != nil {
			s.nodes <- req.GetNode()
		}
		if sent[req.GetTypeUrl()] {
			continue // an ACK
		}
		sent[req.GetTypeUrl()] = true
		resp := &discovery.DiscoveryResponse{TypeUrl: req.GetTypeUrl(), VersionInfo: "1", Nonce: "n-" + req.GetTypeUrl()}
		for _, m := range s.res[req.GetTypeUrl()] {
			a, err := anypb.New(m)
			if err != nil {
				return err
			}
			resp.Resources = append(resp.Resources, a)
		}
		if err := st.Send(resp); err != nil {
			return err
		}
	}
}

func sockAddr(host string, port int) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// resources routes everything a listener at listenAddr receives to backend.
func resources(t *testing.T, listenAddr, backend string) map[string][]proto.Message {
	t.Helper()
	lhost, lp, _ := net.SplitHostPort(listenAddr)
	listenPort, _ := strconv.Atoi(lp)
	host, p, _ := net.SplitHostPort(backend)
	port, _ := strconv.Atoi(p)
	const cl = "outbound|80||backend.default.svc.cluster.local"
	ads := &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
	h, err := anypb.New(&hcm.HttpConnectionManager{
		StatPrefix:     "outbound",
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "outbound", ConfigSource: ads}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]proto.Message{
		resource.ClusterType: {&cluster.Cluster{
			Name:                 cl,
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
			ConnectTimeout:       durationpb.New(10 * time.Second),
			EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: ads},
		}},
		resource.EndpointType: {&endpoint.ClusterLoadAssignment{
			ClusterName: cl,
			Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: []*endpoint.LbEndpoint{{
				HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: sockAddr(host, port)}},
			}}}},
		}},
		resource.ListenerType: {&listener.Listener{
			Name:    "virtualOutbound",
			Address: sockAddr(lhost, listenPort),
			FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: h},
			}}}},
		}},
		resource.RouteType: {&route.RouteConfiguration{
			Name: "outbound",
			VirtualHosts: []*route.VirtualHost{{
				Name:    "backend",
				Domains: []string{"*"},
				Routes: []*route.Route{{
					Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
					Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cl}}},
				}},
			}},
		}},
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startADS serves ads on a loopback gRPC server until the test ends and
// returns its address.
func startADS(t *testing.T, ads *scriptedADS) string {
	t.Helper()
	lis := testnet.Listen(t)
	gs := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, ads)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// TestStartServesAndQuits runs the whole data plane against a scripted
// control plane: it becomes ready, forwards a request on the socket it was
// handed, advertises its bound admin address in the Node, lists and dumps
// its config, and drains on /quitquitquit, closing the socket.
func TestStartServesAndQuits(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "hello from backend")
	}))
	defer backend.Close()
	out := testnet.Listen(t) // bound first, handed to the proxy
	outAddr := out.Addr().String()

	ads := &scriptedADS{res: resources(t, outAddr, backend.Listener.Addr().String()), nodes: make(chan *core.Node, 8)}
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "client-1", Namespace: "default", WorkloadName: "client", Outbound: outAddr}
	h, err := Start(context.Background(), Options{Meta: meta, XDSAddress: startADS(t, ads), Sockets: map[string]net.Listener{outAddr: out}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("proxy not ready")
	}

	n := <-ads.nodes
	got, err := node.Parse(n)
	if err != nil {
		t.Fatal(err)
	}
	if got.Admin != h.Admin() || strings.HasSuffix(h.Admin(), ":0") {
		t.Errorf("node ADMIN_ADDRESS = %q, bound admin = %q", got.Admin, h.Admin())
	}
	if meta.Admin != "" {
		t.Errorf("Start modified the caller's Meta: Admin = %q", meta.Admin)
	}

	if code, body := httpGet(t, "http://"+h.Admin()+"/ready"); code != 200 {
		t.Fatalf("/ready = %d %q", code, body)
	}
	if code, body := httpGet(t, "http://"+outAddr+"/anything"); code != 200 || body != "hello from backend" {
		t.Fatalf("through the proxy: %d %q", code, body)
	}
	if code, body := httpGet(t, "http://"+h.Admin()+"/config_dump?resource=listeners"); code != 200 || !strings.Contains(body, `"name": "virtualOutbound"`) {
		t.Fatalf("/config_dump = %d %s", code, body)
	}
	if code, body := httpGet(t, "http://"+h.Admin()+"/listeners"); code != 200 || body != "virtualOutbound::"+outAddr+"\n" {
		t.Fatalf("/listeners = %d %q", code, body)
	}
	_, port, _ := net.SplitHostPort(outAddr)
	if code, body := httpGet(t, "http://"+h.Admin()+"/listeners?format=json"); code != 200 ||
		!strings.Contains(body, `"name": "virtualOutbound"`) || !strings.Contains(body, `"port_value": `+port) {
		t.Fatalf("/listeners?format=json = %d %s", code, body)
	}

	resp, err := http.Post("http://"+h.Admin()+"/quitquitquit", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	done := make(chan error, 1)
	go func() { done <- h.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Wait after quit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not stop after /quitquitquit")
	}
	// The socket it was handed is closed, not merely idle. (Dialing the
	// port would race with anyone binding it anew.)
	out.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := out.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the outbound socket after shutdown: Accept = %v, want it closed", err)
	}
}

// TestStartBindsNodeAddresses: the addresses the node serves are bound by
// Start, before any configuration, ports 0 resolved in the Node the control
// plane sees; an address that cannot be bound fails Start, naming it.
func TestStartBindsNodeAddresses(t *testing.T) {
	ads := &scriptedADS{nodes: make(chan *core.Node, 8)}
	xds := startADS(t, ads)
	meta := &node.Meta{Type: node.Router, IP: "127.0.0.1", Name: "gw", Namespace: "istio-system",
		GatewayPorts: map[uint32]string{80: "127.0.0.1:0", 443: "127.0.0.1:0"}, GatewayHost: "127.0.0.1"}
	ctx, cancel := context.WithCancel(context.Background())
	h, err := Start(ctx, Options{Meta: meta, XDSAddress: xds})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); h.Wait() }()
	got, err := node.Parse(<-ads.nodes)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint32{80, 443} {
		a := got.GatewayPorts[p]
		if a == "" || strings.HasSuffix(a, ":0") || a != h.Meta().GatewayPorts[p] {
			t.Fatalf("gateway port %d: node says %q, handle %q", p, a, h.Meta().GatewayPorts[p])
		}
		if ln, err := net.Listen("tcp", a); err == nil {
			ln.Close()
			t.Errorf("gateway port %d: %s is not held by the proxy", p, a)
		}
	}
	if meta.GatewayPorts[80] != "127.0.0.1:0" {
		t.Errorf("Start modified the caller's GatewayPorts: %v", meta.GatewayPorts)
	}

	busy := testnet.Listen(t)
	side := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "x", Namespace: "default", Outbound: busy.Addr().String()}
	if _, err := Start(context.Background(), Options{Meta: side, XDSAddress: xds}); err == nil ||
		!strings.Contains(err.Error(), "outbound address") || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("Start with a taken outbound address: %v", err)
	}
}

// TestListenerBindFailureReported: a listener the proxy cannot bind is
// NACKed and reported to OnNACK, naming the address.
func TestListenerBindFailureReported(t *testing.T) {
	busy := testnet.Listen(t) // another process's port
	backend := testnet.Refusing(t)
	ads := &scriptedADS{res: resources(t, busy.Addr().String(), backend), nodes: make(chan *core.Node, 8)}
	nacks := make(chan error, 8)
	meta := &node.Meta{Type: node.Router, IP: "127.0.0.1", Name: "gw", Namespace: "istio-system"}
	ctx, cancel := context.WithCancel(context.Background())
	h, err := Start(ctx, Options{Meta: meta, XDSAddress: startADS(t, ads), OnNACK: func(err error) { nacks <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); h.Wait() }()
	select {
	case err := <-nacks:
		if !strings.Contains(err.Error(), "bind "+busy.Addr().String()) || !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("NACK reason %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no NACK reported for a listener that cannot bind")
	}
	select {
	case <-h.Ready():
		t.Error("ready without its listener")
	default:
	}
}

func TestStartRejectsMissingOptions(t *testing.T) {
	if _, err := Start(context.Background(), Options{XDSAddress: "127.0.0.1:1"}); err == nil {
		t.Error("Start without Meta: want error")
	}
	if _, err := Start(context.Background(), Options{Meta: &node.Meta{}}); err == nil {
		t.Error("Start without XDSAddress: want error")
	}
}

// TestRunStopsOnContext checks Run drains and returns when its context ends,
// even with the control plane unreachable.
func TestRunStopsOnContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "x", Namespace: "default"}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Meta: meta, XDSAddress: testnet.Refusing(t)}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
