package runtime

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/internal/netnstest"
	"github.com/weft-mesh/weft/proxy/capture"
	"github.com/weft-mesh/weft/proxy/listener"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

// fchain is a filter chain matching destination port (0: any) with filters.
func fchain(name string, port uint32, filters ...*listenerv3.Filter) *listenerv3.FilterChain {
	fc := &listenerv3.FilterChain{Name: name, Filters: filters}
	if port != 0 {
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port)}
	}
	return fc
}

func tcpFilter(t testing.TB, cluster string) *listenerv3.Filter {
	t.Helper()
	tc, err := anypb.New(&tcpv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: tcpproxy.FilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc}}
}

// httpFilter is an HCM with RDS route config rds, or inline rc when set.
func httpFilter(t testing.TB, rds string, rc *routev3.RouteConfiguration) *listenerv3.Filter {
	t.Helper()
	m := &hcmv3.HttpConnectionManager{StatPrefix: "http", HttpFilters: []*hcmv3.HttpFilter{{Name: listener.RouterFilter}}}
	if rc != nil {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
	} else {
		m.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: rds,
			ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}
	}
	tc, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: listener.HTTPConnectionManager, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tc}}
}

// captureListener is a listener at addr with chains; bind false makes it
// bind_to_port: false.
func captureListener(t testing.TB, name, addr string, bind, useOriginalDst bool, chains ...*listenerv3.FilterChain) *listenerv3.Listener {
	l := &listenerv3.Listener{Name: name, Address: sockAddr(t, addr), FilterChains: chains}
	if !bind {
		l.BindToPort = wrapperspb.Bool(false)
	}
	if useOriginalDst {
		l.UseOriginalDst = wrapperspb.Bool(true)
	}
	return l
}

func staticCluster(t testing.TB, name string, addrs ...string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LoadAssignment:       cla(t, name, addrs...),
	}
}

func passthroughCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(5 * time.Second),
	}
}

// httpUpstream answers every request with "label host=HOST".
func httpUpstream(t testing.TB, addr, label string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s host=%s", label, r.Host)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// lineServer writes label and a newline to every connection.
func lineServer(t testing.TB, addr, label string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, label)
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func portOf(t testing.TB, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fetchHost GETs url with Host host (when set): "STATUS BODY".
func fetchHost(c *http.Client, url, host string) string {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err.Error()
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// sockets hands the proxy the sockets a test bound, by address.
func sockets(m map[string]net.Listener) func(string) net.Listener {
	return func(addr string) net.Listener { return m[addr] }
}

// A use_original_dst listener hands a connection to the listener that
// binds no socket at its destination's port; without it, the connection
// stays. Connections need not be redirected for that: one that was not
// has its local address as destination.
func TestHandOffByAddress(t *testing.T) {
	hello := httpUpstream(t, "127.0.0.1:0", "hello")
	fallback := tcpEcho(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := portOf(t, addr)
	base := func(withHTTP bool) *Resources {
		r := &Resources{
			Listeners: map[string]*listenerv3.Listener{
				"outbound": captureListener(t, "outbound", addr, true, true, fchain("catchall", 0, tcpFilter(t, "fallback"))),
			},
			Routes: map[string]*routev3.RouteConfiguration{"r": routeConfig("r", routeTo("hello", 0))},
			Clusters: map[string]*clusterv3.Cluster{
				"hello": staticCluster(t, "hello", hello), "fallback": staticCluster(t, "fallback", fallback),
			},
		}
		if withHTTP {
			r.Listeners["0.0.0.0_"+port] = captureListener(t, "0.0.0.0_"+port, "0.0.0.0:"+port, false, false, fchain("", 0, httpFilter(t, "r", nil)))
		}
		return r
	}
	p := New(Options{Sockets: sockets(map[string]net.Listener{addr: ln})})
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	update(t, p, base(true))
	if s := p.servers[lkey{name: "0.0.0.0_" + port}]; s == nil || s.socket {
		t.Fatalf("the bind_to_port: false listener: %+v", s)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if got := fetchHost(client, "http://"+addr+"/", "svc"); got != "200 hello host=svc" {
		t.Fatalf("handed off: %q", got)
	}
	// Without the HTTP listener the connection stays: a TCP echo.
	update(t, p, base(false))
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, "kept\n")
}

// Chains matching a destination_port form a group of their own, with
// their own filters: here HTTP for the listener's port, beside a TCP
// default chain.
func TestDestinationPortChains(t *testing.T) {
	hello := httpUpstream(t, "127.0.0.1:0", "hello")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port, _ := strconv.Atoi(portOf(t, addr))
	r := &Resources{
		Listeners: map[string]*listenerv3.Listener{"in": captureListener(t, "in", addr, true, false,
			fchain("other", 0, tcpFilter(t, "fallback")),
			fchain("http", uint32(port), httpFilter(t, "", routeConfig("inline", routeTo("hello", 0)))),
		)},
		Clusters: map[string]*clusterv3.Cluster{
			"hello": staticCluster(t, "hello", hello), "fallback": staticCluster(t, "fallback", tcpEcho(t)),
		},
	}
	p := New(Options{Sockets: sockets(map[string]net.Listener{addr: ln})})
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	update(t, p, r)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if got := fetchHost(client, "http://"+addr+"/", "x"); got != "200 hello host=x" {
		t.Fatalf("port group: %q", got)
	}
	cfg := p.Current()
	if l := cfg.Listener("in"); l.TCP == nil || l.ByPort[uint32(port)] == nil || l.ByPort[uint32(port)].Routes == nil {
		t.Fatalf("compiled listener %+v", l)
	}
}

// TestCapturedSidecar runs a proxy whose capture ports are sockets in a
// pod namespace with the capture rules, as a captured sidecar: what an app
// there sends to a service address, to an address outside the mesh and
// to the capture port itself, and what another host sends to the app,
// each lands where the contract says. (The proxy's own upstream
// connections are made from the test's namespace, where the upstreams
// listen on loopback addresses.)
func TestCapturedSidecar(t *testing.T) {
	ns, hub := netnstest.Pod(t)
	hello := httpUpstream(t, "127.0.0.1:0", "hello")
	passHTTP := httpUpstream(t, "127.0.0.2:0", "passthrough")
	passTCP := lineServer(t, "127.0.0.2:0", "passthrough-tcp")
	db := tcpEcho(t)
	app := httpUpstream(t, "127.0.0.1:0", "app")
	catchall := lineServer(t, "127.0.0.1:0", "inbound-catchall")
	q := portOf(t, passHTTP)

	socks := map[string]net.Listener{}
	for _, a := range []string{"0.0.0.0:15001", "0.0.0.0:15006"} {
		ln, err := ns.Listen("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		socks[a] = ln
	}
	cfg := capture.DefaultConfig()
	var err error
	if cfg.OutboundCIDRs, err = capture.ParseCIDRs("10.96.0.0/16,127.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	rs, err := cfg.Rulesets()
	if err != nil {
		t.Fatal(err)
	}
	if err := capture.Apply(rs, ns.Fd()); err != nil {
		t.Fatal(err)
	}

	resources := func(helloRoute *routev3.Route) *Resources {
		inbound := captureListener(t, "virtualInbound", "0.0.0.0:15006", true, false,
			fchain("inbound-8080", 8080, httpFilter(t, "", routeConfig("inbound|8080||", routeTo("inbound|8080||", 0)))),
			fchain("inbound-passthrough", 0, tcpFilter(t, "catchall")))
		od, _ := anypb.New(&originaldstv3.OriginalDst{})
		inbound.ListenerFilters = []*listenerv3.ListenerFilter{{Name: listener.OriginalDstFilter, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: od}}}
		inbound.TrafficDirection = corev3.TrafficDirection_INBOUND
		return &Resources{
			Listeners: map[string]*listenerv3.Listener{
				"virtualOutbound": captureListener(t, "virtualOutbound", "0.0.0.0:15001", true, true,
					fchain("blackhole", 15001, tcpFilter(t, "BlackHoleCluster")),
					fchain("passthrough", 0, tcpFilter(t, "PassthroughCluster"))),
				"0.0.0.0_" + q:    captureListener(t, "0.0.0.0_"+q, "0.0.0.0:"+q, false, false, fchain("", 0, httpFilter(t, q, nil))),
				"10.96.0.30_5000": captureListener(t, "10.96.0.30_5000", "10.96.0.30:5000", false, false, fchain("", 0, tcpFilter(t, "db"))),
				"virtualInbound":  inbound,
			},
			Routes: map[string]*routev3.RouteConfiguration{q: {Name: q, VirtualHosts: []*routev3.VirtualHost{
				{Name: "hello", Domains: []string{"hello:" + q, "10.96.0.20", "10.96.0.20:" + q}, Routes: []*routev3.Route{helloRoute}},
				{Name: "allow_any", Domains: []string{"*"}, Routes: []*routev3.Route{routeTo("PassthroughCluster", 0)}},
			}}},
			Clusters: map[string]*clusterv3.Cluster{
				"hello": staticCluster(t, "hello", hello), "db": staticCluster(t, "db", db),
				"PassthroughCluster": passthroughCluster("PassthroughCluster"), "BlackHoleCluster": staticCluster(t, "BlackHoleCluster"),
				"inbound|8080||": staticCluster(t, "inbound|8080||", app), "catchall": staticCluster(t, "catchall", catchall),
			},
		}
	}
	conns := make(tcpResults, 32)
	p := New(Options{Sockets: sockets(socks), OnConnection: conns.hook})
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	update(t, p, resources(routeTo("hello", 0)))

	app1 := ns.HTTPClient(5 * time.Second)
	for _, c := range []struct{ what, url, host, want string }{
		{"service address", "http://10.96.0.20:" + q + "/", "", "200 hello host=10.96.0.20:" + q},
		{"service name", "http://10.96.0.20:" + q + "/", "hello:" + q, "200 hello host=hello:" + q},
		{"unknown host: allow_any to the original destination", "http://127.0.0.2:" + q + "/", "", "200 passthrough host=127.0.0.2:" + q},
	} {
		if got := fetchHost(app1, c.url, c.host); got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, got, c.want)
		}
	}
	if got := ns.FirstLine(passTCP); got != "passthrough-tcp" {
		t.Errorf("TCP to an address outside the mesh: %q", got)
	}
	if r := conns.next(t); r.Cluster != "PassthroughCluster" || r.Upstream != passTCP {
		t.Errorf("passthrough connection reported as %+v", r)
	}
	if got := ns.FirstLine("10.20.0.2:15001"); got != "" {
		t.Errorf("a connection to the capture port itself got %q, want it closed", got)
	}
	if r := conns.next(t); r.Cluster != "BlackHoleCluster" || r.Flags != tcpproxy.FlagNoHealthy {
		t.Errorf("connection to the capture port reported as %+v", r)
	}
	if got := fetchHost(hub.HTTPClient(5*time.Second), "http://10.20.0.2:8080/", ""); got != "200 app host=10.20.0.2:8080" {
		t.Errorf("inbound to the app's port: %q", got)
	}
	if got := hub.FirstLine("10.20.0.2:9999"); got != "inbound-catchall" {
		t.Errorf("inbound to another port: %q", got)
	}

	// A TCP connection to a service survives a configuration swap; new
	// requests follow the new routes.
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dbConn, err := ns.DialContext(dctx, "tcp", "10.96.0.30:5000")
	if err != nil {
		t.Fatal(err)
	}
	defer dbConn.Close()
	echoOnce(t, dbConn, "before\n")
	update(t, p, resources(directRoute("v2")))
	echoOnce(t, dbConn, "after\n")
	if got := fetchHost(app1, "http://10.96.0.20:"+q+"/", ""); got != "200 " {
		t.Errorf("after the swap: %q, want the direct response", got)
	}
}

func (rs tcpResults) next(t testing.TB) *tcpproxy.Result {
	t.Helper()
	select {
	case r := <-rs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no connection reported")
		return nil
	}
}

// BenchmarkCapturedHop is BenchmarkProxyHop's request sent by an app in a
// pod namespace through the same proxy two ways: "plain" to a listener
// bound at the pod's address, "captured" to a service address, which the
// capture rules redirect and the proxy hands to the listener of that port
// after recovering the original destination. With kept-alive connections
// a captured request should cost what a plain one does (capture works per
// connection); "new-connection" opens one per request, showing what
// capture adds to a connection.
func BenchmarkCapturedHop(b *testing.B) {
	ns, _ := netnstest.Pod(b)
	up := benchUpstream(b)
	socks := map[string]net.Listener{}
	for _, a := range []string{"0.0.0.0:15001", netnstest.PodAddr + ":8080"} {
		ln, err := ns.Listen("tcp", a)
		if err != nil {
			b.Fatal(err)
		}
		socks[a] = ln
	}
	cfg := capture.DefaultConfig()
	rs, err := cfg.Rulesets()
	if err != nil {
		b.Fatal(err)
	}
	if err := capture.Apply(rs, ns.Fd()); err != nil {
		b.Fatal(err)
	}
	r := &Resources{
		Listeners: map[string]*listenerv3.Listener{
			"virtualOutbound": captureListener(b, "virtualOutbound", "0.0.0.0:15001", true, true, fchain("", 0, tcpFilter(b, "PassthroughCluster"))),
			"0.0.0.0_80":      captureListener(b, "0.0.0.0_80", "0.0.0.0:80", false, false, fchain("", 0, httpFilter(b, "80", nil))),
			"plain":           captureListener(b, "plain", netnstest.PodAddr+":8080", true, false, fchain("", 0, httpFilter(b, "80", nil))),
		},
		Routes:   map[string]*routev3.RouteConfiguration{"80": routeConfig("80", routeTo("items", 0))},
		Clusters: map[string]*clusterv3.Cluster{"items": staticCluster(b, "items", hostOf(b, up.URL)), "PassthroughCluster": passthroughCluster("PassthroughCluster")},
	}
	p := New(Options{Sockets: sockets(socks)})
	b.Cleanup(func() { p.Shutdown(context.Background()) })
	update(b, p, r)
	for _, conn := range []string{"keepalive", "new-connection"} {
		for _, path := range []struct{ name, url string }{
			{"plain", "http://" + netnstest.PodAddr + ":8080/items/7?full=1"},
			{"captured", "http://10.96.0.20/items/7?full=1"},
		} {
			b.Run(path.name+"/"+conn, func(b *testing.B) {
				c := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DialContext: ns.DialContext,
					DisableKeepAlives: conn == "new-connection"}}
				b.Cleanup(c.CloseIdleConnections)
				benchGet(b, c, path.url)
			})
		}
	}
}
