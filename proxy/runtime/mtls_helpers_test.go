package runtime

import (
	"context"
	"crypto/tls"
	"net/http"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	rawv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

var (
	clientID = mtlstest.SPIFFE("default", "productpage")
	serverID = mtlstest.SPIFFE("default", "reviews")
)

const meshSNI = "outbound_.9080_._.reviews.default.svc.cluster.local"

// withChains gives listener l the contract's filter chains for mode
// ("STRICT", "PERMISSIVE", "DISABLE"), all holding l's filters.
func withChains(t testing.TB, l *listenerv3.Listener, mode string) *listenerv3.Listener {
	t.Helper()
	filters := l.FilterChains[0].Filters
	tlsChain := &listenerv3.FilterChain{Name: "inbound-tls", Filters: filters,
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"},
		TransportSocket:  mtlstest.Socket(t, mtlstest.DownstreamContext())}
	switch mode {
	case "DISABLE":
		l.FilterChains = []*listenerv3.FilterChain{{Name: "inbound-plaintext", Filters: filters}}
		l.ListenerFilters = nil
		return l
	case "PERMISSIVE":
		l.FilterChains = []*listenerv3.FilterChain{tlsChain, {Name: "inbound-plaintext", Filters: filters,
			FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}}}
	default:
		l.FilterChains = []*listenerv3.FilterChain{tlsChain}
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: mtls.TLSInspector,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &tlsinspectorv3.TlsInspector{})}}}
	return l
}

// inboundResources is a sidecar's inbound side: listener "in" at addr in
// mode, routing everything to the app, with the workload's secrets.
func inboundResources(t testing.TB, addr, mode, app string, secrets map[string]*tlsv3.Secret) *Resources {
	r := simple(t, addr, 0, app)
	r.Listeners = map[string]*listenerv3.Listener{"in": withChains(t, rdsListener(t, "in", addr, "rc"), mode)}
	r.Listeners["in"].TrafficDirection = corev3.TrafficDirection_INBOUND
	r.Secrets = secrets
	return r
}

// tlsMetadata marks an endpoint as running a sidecar.
func tlsMetadata() *corev3.Metadata {
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.transport_socket_match": {Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}},
	}}
}

// autoMTLS gives cluster c the contract's transport_socket_matches.
func autoMTLS(t testing.TB, c *clusterv3.Cluster, sans ...string) *clusterv3.Cluster {
	c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
		{Name: "tlsMode-istio", Match: tlsMetadata().FilterMetadata["envoy.transport_socket_match"],
			TransportSocket: mtlstest.Socket(t, mtlstest.UpstreamContext(meshSNI, sans...))},
		{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: &corev3.TransportSocket{
			Name: mtls.TransportSocketRaw, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &rawv3.RawBuffer{})}}},
	}
	return c
}

// outboundResources is a sidecar's outbound side: listener "l" routing
// to cluster "c" (auto mTLS, servers' identity sans) over endpoints, the
// sidecar ones (tlsMode: istio) first.
func outboundResources(t testing.TB, sidecars, plain []string, secrets map[string]*tlsv3.Secret, sans ...string) *Resources {
	assignment := cla(t, "c", append(append([]string{}, sidecars...), plain...)...)
	for i := range sidecars {
		assignment.Endpoints[0].LbEndpoints[i].Metadata = tlsMetadata()
	}
	return &Resources{
		Listeners: map[string]*listenerv3.Listener{"l": rdsListener(t, "l", "127.0.0.1:0", "rc")},
		Routes:    map[string]*routev3.RouteConfiguration{"rc": routeConfig("rc", routeTo("c", 0))},
		Clusters:  map[string]*clusterv3.Cluster{"c": autoMTLS(t, edsCluster("c", clusterv3.Cluster_ROUND_ROBIN), sans...)},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"c": assignment},
		Secrets:   secrets,
	}
}

// serveOn compiles r on a new proxy with opts and returns it with the
// address of its listener name.
func serveOn(t testing.TB, r *Resources, opts Options, name string) (*Proxy, string) {
	t.Helper()
	p := New(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	update(t, p, r)
	return p, p.ListenerAddr(name).String()
}

func update(t testing.TB, p *Proxy, r *Resources) {
	t.Helper()
	cfg, err := p.Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
}

// meshClient is an HTTPS client with a mesh identity, checking nothing of
// the server: for tests of what the server accepts.
func meshClient(t testing.TB, ca *mtlstest.CA, id string) *http.Client {
	leaf := ca.Issue(t, mtlstest.LeafOptions{URIs: []string{id}})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{leaf.TLS}},
	}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func plainClient(t testing.TB) *http.Client {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// tcpResults collects OnConnection results.
type tcpResults chan *tcpproxy.Result

func (rs tcpResults) hook(r *tcpproxy.Result) { c := *r; rs <- &c }

// errReset is what reading a connection the peer closed with unread bytes
// returns.
var errReset = syscall.ECONNRESET
