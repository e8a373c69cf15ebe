package runtime

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

func packed(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// denyPath is an RBAC DENY of requests whose path starts with p.
func denyPath(p string) *httprbacv3.RBAC {
	return &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"ns[default]-policy[deny]-rule[0]": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
				Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}}}}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
		},
	}}}
}

func bucket(n uint32) *lrlv3.LocalRateLimit {
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100}}
	return &lrlv3.LocalRateLimit{
		StatPrefix:     "http_local_rate_limiter",
		TokenBucket:    &typev3.TokenBucket{MaxTokens: n, TokensPerFill: wrapperspb.UInt32(n), FillInterval: durationpb.New(time.Hour)},
		FilterEnabled:  all,
		FilterEnforced: all,
	}
}

// filtered returns resources for listener "l" at addr with http_filters
// hfs (the router appended) and inline routes to cluster "c" at upstream.
func filtered(t testing.TB, addr, upstream string, hfs []*hcmv3.HttpFilter, routes ...*routev3.Route) *Resources {
	hfs = append(hfs, &hcmv3.HttpFilter{Name: "envoy.filters.http.router"})
	l := hcmListener(t, "l", addr, &hcmv3.HttpConnectionManager{
		StatPrefix:     "l",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routeConfig("inline", routes...)},
		HttpFilters:    hfs,
	})
	return &Resources{
		Listeners: map[string]*listenerv3.Listener{"l": l},
		Clusters:  map[string]*clusterv3.Cluster{"c": edsCluster("c", clusterv3.Cluster_ROUND_ROBIN)},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"c": cla(t, "c", upstream)},
	}
}

func countingUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(up.Close)
	return up, &hits
}

func fetch(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestListenerRBAC(t *testing.T) {
	up, hits := countingUpstream(t)
	rs := make(results, 8)
	r := filtered(t, "127.0.0.1:0", hostOf(t, up.URL),
		[]*hcmv3.HttpFilter{{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed(t, denyPath("/admin"))}}},
		routeTo("c", 0))
	_, base := start(t, r, Options{OnRequest: rs.hook})

	code, body, _ := fetch(t, base+"/admin/users")
	if code != 403 || body != "RBAC: access denied" {
		t.Errorf("denied request: %d %q", code, body)
	}
	if res := rs.next(t); res.Code != 403 || res.Flags != FlagRBACDenied || res.Cluster != "" ||
		res.RBACPolicy != "ns[default]-policy[deny]-rule[0]" || res.Audit {
		t.Errorf("result %+v", res)
	}
	code, body, _ = fetch(t, base+"/public/../admin")
	if code != 403 {
		t.Errorf("dot-segment path: %d %q", code, body)
	}
	rs.next(t)
	if hits.Load() != 0 {
		t.Fatalf("denied requests reached the upstream %d times", hits.Load())
	}
	code, body, _ = fetch(t, base+"/ok")
	if code != 200 || body != "upstream" || hits.Load() != 1 {
		t.Errorf("allowed request: %d %q, upstream hits %d", code, body, hits.Load())
	}
	if res := rs.next(t); res.Flags != "" {
		t.Errorf("allowed request flags %q", res.Flags)
	}
}

// TestListenerAudit: an AUDIT policy (RBAC action LOG) never refuses, and
// marks the requests it matches in their Result.
func TestListenerAudit(t *testing.T) {
	up, _ := countingUpstream(t)
	audit := denyPath("/admin")
	audit.Rules.Action = rbacv3.RBAC_LOG
	rs := make(results, 8)
	r := filtered(t, "127.0.0.1:0", hostOf(t, up.URL),
		[]*hcmv3.HttpFilter{{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed(t, audit)}}},
		routeTo("c", 0))
	_, base := start(t, r, Options{OnRequest: rs.hook})
	for path, want := range map[string]bool{"/admin/x": true, "/public": false} {
		if code, _, _ := fetch(t, base+path); code != 200 {
			t.Errorf("%s: %d, an AUDIT policy must not refuse", path, code)
		}
		if res := rs.next(t); res.Audit != want || res.RBACPolicy != "" {
			t.Errorf("%s: audit %v policy %q, want audit %v", path, res.Audit, res.RBACPolicy, want)
		}
	}
}

func TestListenerFiltersRunWithoutRoute(t *testing.T) {
	up, _ := countingUpstream(t)
	only := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/only"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}}
	rs := make(results, 4)
	r := filtered(t, "127.0.0.1:0", hostOf(t, up.URL),
		[]*hcmv3.HttpFilter{{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed(t, denyPath("/secret"))}}},
		only)
	_, base := start(t, r, Options{OnRequest: rs.hook})
	if code, _, _ := fetch(t, base+"/secret"); code != 403 {
		t.Errorf("denied request without a route: %d, want 403 before 404", code)
	}
	rs.next(t)
	if code, _, _ := fetch(t, base+"/nothing"); code != 404 {
		t.Errorf("allowed request without a route: %d", code)
	}
	if res := rs.next(t); res.Flags != FlagNoRoute {
		t.Errorf("flags %q", res.Flags)
	}
}

func TestListenerRateLimitAndRouteOverride(t *testing.T) {
	up, hits := countingUpstream(t)
	limited := routeTo("c", 0)
	limited.Name = "reviews-limited"
	limited.Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/limited"}}
	limited.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.local_ratelimit": packed(t, bucket(3))}
	rs := make(results, 16)
	r := filtered(t, "127.0.0.1:0", hostOf(t, up.URL),
		[]*hcmv3.HttpFilter{{Name: "envoy.filters.http.local_ratelimit", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed(t, bucket(1))}}},
		limited, routeTo("c", 0))
	_, base := start(t, r, Options{OnRequest: rs.hook})

	// The listener's bucket holds one request for every other route.
	if code, _, _ := fetch(t, base+"/a"); code != 200 {
		t.Errorf("first request: %d", code)
	}
	rs.next(t)
	code, body, _ := fetch(t, base+"/a")
	if code != 429 || body != "local_rate_limited" {
		t.Errorf("second request: %d %q", code, body)
	}
	if res := rs.next(t); res.Flags != FlagRateLimited {
		t.Errorf("limited result flags %q", res.Flags)
	}
	// The route with its own bucket is not limited by the listener's.
	for i := range 4 {
		code, _, _ := fetch(t, base+"/limited/x")
		if want := map[bool]int{true: 200, false: 429}[i < 3]; code != want {
			t.Errorf("route request %d: %d, want %d", i, code, want)
		}
		rs.next(t)
	}
	if hits.Load() != 4 {
		t.Errorf("upstream hits %d, want 4 (limited requests must not reach it)", hits.Load())
	}
}

func TestTCPRBAC(t *testing.T) {
	// An echo upstream that counts connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var upConns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			upConns.Add(1)
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	rbacFilter := func(a rbacv3.RBAC_Action, block string) *listenerv3.Filter {
		return &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: packed(t,
			&netrbacv3.RBAC{StatPrefix: "tcp.", Rules: &rbacv3.RBAC{Action: a, Policies: map[string]*rbacv3.Policy{
				"p": {
					Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
					Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{
						AddressPrefix: block, PrefixLen: wrapperspb.UInt32(8)}}}},
				},
			}}})}}
	}
	proxyFilter := &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: packed(t,
		&tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "c"}})}}
	tcpRes := func(filters ...*listenerv3.Filter) *Resources {
		return &Resources{
			Listeners: map[string]*listenerv3.Listener{"l": {Name: "l", Address: sockAddr(t, "127.0.0.1:0"),
				FilterChains: []*listenerv3.FilterChain{{Filters: append(filters, proxyFilter)}}}},
			Clusters:  map[string]*clusterv3.Cluster{"c": edsCluster("c", clusterv3.Cluster_ROUND_ROBIN)},
			Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"c": cla(t, "c", ln.Addr().String())},
		}
	}
	conns := make(chan *tcpproxy.Result, 4)
	hook := func(r *tcpproxy.Result) { c := *r; conns <- &c }

	// Only 10.0.0.0/8 may connect: a loopback client is closed at once.
	p, _ := start(t, tcpRes(rbacFilter(rbacv3.RBAC_ALLOW, "10.0.0.0")), Options{OnConnection: hook})
	c, err := net.Dial("tcp", p.ListenerAddr("l").String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping"))
	if n, err := c.Read(make([]byte, 4)); err == nil {
		t.Errorf("refused connection read %d bytes", n)
	}
	c.Close()
	select {
	case res := <-conns:
		if res.Flags != FlagRBACDenied || res.Upstream != "" {
			t.Errorf("refused connection result %+v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("refused connection not reported")
	}
	if upConns.Load() != 0 {
		t.Errorf("a refused connection reached the upstream")
	}

	// Loopback allowed (DENY of 10/8 does not match): bytes flow.
	p2, _ := start(t, tcpRes(rbacFilter(rbacv3.RBAC_DENY, "10.0.0.0"), rbacFilter(rbacv3.RBAC_ALLOW, "127.0.0.0")), Options{OnConnection: hook})
	c, err = net.Dial("tcp", p2.ListenerAddr("l").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Errorf("allowed connection: %q %v", buf, err)
	}
}

// nopWriter is a ResponseWriter that keeps nothing, reused across requests.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func directRoute(name string) *routev3.Route {
	return &routev3.Route{Name: name, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}}}
}

// serveDirect serves a direct-response route through the handler of
// listener "l" with http_filters hfs, without sockets.
func serveDirect(t testing.TB, hfs []*hcmv3.HttpFilter) func() {
	r := filtered(t, "127.0.0.1:1", "127.0.0.1:2", hfs, directRoute("direct"))
	cfg, err := Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{})
	p.cur.Store(cfg)
	h := &handler{p: p, key: lkey{name: "l"}}
	req := httptest.NewRequest("GET", "/items", nil)
	w := &nopWriter{h: http.Header{}}
	return func() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// TestNoListenerFiltersNoAllocs: a listener without HTTP filters adds no
// allocation to a request (here a direct response, which allocates nothing
// else without a Tap).
func TestNoListenerFiltersNoAllocs(t *testing.T) {
	serve := serveDirect(t, nil)
	if a := testing.AllocsPerRun(200, serve); a != 0 {
		t.Errorf("a request on a listener without filters allocates %v times", a)
	}
}

func BenchmarkListenerFilters(b *testing.B) {
	for _, c := range []struct {
		name string
		hfs  []*hcmv3.HttpFilter
	}{
		{"none", nil},
		{"rbac", []*hcmv3.HttpFilter{{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed(b, denyPath("/admin"))}}}},
		{"ratelimit", []*hcmv3.HttpFilter{{Name: "envoy.filters.http.local_ratelimit", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed(b, bucket(4_000_000_000))}}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			serve := serveDirect(b, c.hfs)
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}

// allowPrincipal is an RBAC ALLOW of the SPIFFE ID id.
func allowPrincipal(id string) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"ns[default]-policy[allow]-rule[0]": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
				PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}}}}},
		},
	}}
}

// TestRBACOverMutualTLS: the peer's identity comes from the client
// certificate the inbound TLS chain verified, for HTTP and for TCP.
func TestRBACOverMutualTLS(t *testing.T) {
	mesh := mtlstest.NewCA(t, "mesh")
	up, hits := countingUpstream(t)
	r := filtered(t, "127.0.0.1:0", hostOf(t, up.URL),
		[]*hcmv3.HttpFilter{{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{
			TypedConfig: packed(t, &httprbacv3.RBAC{Rules: allowPrincipal(clientID)})}}},
		routeTo("c", 0))
	r.Listeners["l"] = withChains(t, r.Listeners["l"], "STRICT")
	r.Secrets = mesh.Secrets(t, serverID)
	_, addr := serveOn(t, r, Options{}, "l")
	if code, err := status(meshClient(t, mesh, clientID), "https://"+addr+"/"); err != nil || code != 200 {
		t.Errorf("allowed identity: %d %v", code, err)
	}
	if code, err := status(meshClient(t, mesh, mtlstest.SPIFFE("default", "intruder")), "https://"+addr+"/"); err != nil || code != 403 {
		t.Errorf("wrong identity: %d %v, want 403", code, err)
	}
	if hits.Load() != 1 {
		t.Errorf("upstream hits %d, want 1", hits.Load())
	}

	// TCP: the same policy as a network filter before tcp_proxy.
	echo := tcpEcho(t)
	tl := &listenerv3.Listener{Name: "t", Address: sockAddr(t, "127.0.0.1:0"), FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{
		{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: packed(t,
			&netrbacv3.RBAC{StatPrefix: "tcp.", Rules: allowPrincipal(clientID)})}},
		{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: packed(t,
			&tcpv3.TcpProxy{StatPrefix: "tcp", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "echo"}})}},
	}}}}
	rs := make(tcpResults, 4)
	_, taddr := serveOn(t, &Resources{
		Listeners: map[string]*listenerv3.Listener{"t": withChains(t, tl, "STRICT")},
		Clusters:  map[string]*clusterv3.Cluster{"echo": edsCluster("echo", clusterv3.Cluster_ROUND_ROBIN)},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{"echo": cla(t, "echo", echo)},
		Secrets:   mesh.Secrets(t, serverID),
	}, Options{OnConnection: rs.hook}, "t")
	dial := func(id string) (string, error) {
		leaf := mesh.Issue(t, mtlstest.LeafOptions{URIs: []string{id}})
		c, err := tls.Dial("tcp", taddr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{leaf.TLS}})
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return "", err
		}
		buf := make([]byte, 4)
		_, err = io.ReadFull(c, buf)
		return string(buf), err
	}
	if got, err := dial(clientID); err != nil || got != "ping" {
		t.Errorf("allowed identity over TCP: %q %v", got, err)
	}
	if got, err := dial(mtlstest.SPIFFE("default", "intruder")); err == nil {
		t.Errorf("wrong identity over TCP read %q", got)
	}
	for range 2 {
		select {
		case res := <-rs:
			if res.Flags == FlagRBACDenied && (res.PeerPrincipal != mtlstest.SPIFFE("default", "intruder") || !res.MutualTLS) {
				t.Errorf("refused connection result %+v", res)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("connection not reported")
		}
	}
}

// TestJWTThenRBAC is Istio's documented pair: a RequestAuthentication and
// an AuthorizationPolicy requiring requestPrincipals ["*"]. jwt_authn's
// istio_authn metadata reaches the rbac filter on a real listener.
func TestJWTThenRBAC(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	raw, _ := key.PublicKey.Bytes()
	jwks := `{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"` + b64(raw[1:33]) + `","y":"` + b64(raw[33:]) + `"}]}`
	token := func(iss string) string {
		signed := b64([]byte(`{"alg":"ES256","kid":"k"}`)) + "." + b64([]byte(`{"iss":"`+iss+`","sub":"alice","exp":`+
			strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)+`}`))
		sum := sha256.Sum256([]byte(signed))
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return signed + "." + b64(sig)
	}
	forge := func(tok string) string { // flip one signature character
		i := strings.LastIndexByte(tok, '.') + 5
		c := byte('A')
		if tok[i] == 'A' {
			c = 'B'
		}
		return tok[:i] + string(c) + tok[i+1:]
	}
	authn := &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"origins-0": {
			Issuer:            "https://issuer",
			PayloadInMetadata: "https://issuer",
			JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: jwks}}},
		}},
		Rules: []*jwtv3.RequirementRule{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{
				RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{
					{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "origins-0"}},
					{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}},
				}}}}},
		}},
	}
	anyRequestPrincipal := &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"ns[foo]-policy[httpbin]-rule[0]": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
				Filter: "istio_authn",
				Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "request.auth.principal"}}},
				Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
					MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".+"}}}}},
			}}}},
		},
	}}}
	up, hits := countingUpstream(t)
	r := filtered(t, "127.0.0.1:0", hostOf(t, up.URL), []*hcmv3.HttpFilter{
		{Name: "envoy.filters.http.jwt_authn", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed(t, authn)}},
		{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed(t, anyRequestPrincipal)}},
	}, routeTo("c", 0))
	_, base := start(t, r, Options{})
	send := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", base+"/headers", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name, token string
		code        int
		body        string
	}{
		{"valid token", token("https://issuer"), 200, "upstream"},
		{"no token", "", 403, "RBAC: access denied"},
		{"unknown issuer", token("https://evil"), 401, "Jwt issuer is not configured"},
		{"bad signature", forge(token("https://issuer")), 401, "Jwt verification fails"},
	} {
		code, body := send(c.token)
		if code != c.code || (c.body != "" && body != c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.code, c.body)
		}
	}
	if hits.Load() != 1 {
		t.Errorf("upstream hits %d, want 1", hits.Load())
	}
}
