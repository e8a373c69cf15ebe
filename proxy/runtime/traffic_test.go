package runtime

import (
	"fmt"
	"io"
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
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/internal/testnet"
)

// world is a proxy with listener "l" whose single route is built by the
// test, and clusters of named upstream addresses.
type world struct {
	base string
	res  results
}

func newWorld(t *testing.T, rt *routev3.Route, clusters map[string][]string, policy clusterv3.Cluster_LbPolicy, vh func(*routev3.VirtualHost)) *world {
	t.Helper()
	r := &Resources{
		Listeners: map[string]*listenerv3.Listener{"l": hcmListener(t, "l", "127.0.0.1:0", &hcmv3.HttpConnectionManager{
			StatPrefix: "l",
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "rc",
				ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}},
			HttpFilters: []*hcmv3.HttpFilter{
				{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &faultv3.HTTPFault{})}},
				{Name: "envoy.filters.http.cors", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &corsv3.Cors{})}},
				{Name: "envoy.filters.http.router"},
			},
		})},
		Routes:    map[string]*routev3.RouteConfiguration{"rc": routeConfig("rc", rt)},
		Clusters:  map[string]*clusterv3.Cluster{},
		Endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
	}
	if vh != nil {
		vh(r.Routes["rc"].VirtualHosts[0])
	}
	for name, addrs := range clusters {
		r.Clusters[name] = edsCluster(name, policy)
		r.Endpoints[name] = cla(t, name, addrs...)
	}
	w := &world{res: make(results, 1000)}
	_, w.base = start(t, r, Options{OnRequest: w.res.hook})
	return w
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func action(cluster string, edit func(a *routev3.RouteAction)) *routev3.Route {
	rt := routeTo(cluster, 0)
	if edit != nil {
		edit(rt.GetRoute())
	}
	return rt
}

func retryOn(on string, n uint32) *routev3.RetryPolicy {
	return &routev3.RetryPolicy{RetryOn: on, NumRetries: wrapperspb.UInt32(n),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}}
}

// upstream counts requests and answers with handler.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newUpstream(t *testing.T, h func(n int64, w http.ResponseWriter, r *http.Request)) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(u.hits.Add(1), w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) addr(t *testing.T) string { return hostOf(t, u.URL) }

func pct100() *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}
}

func TestFaultThroughProxy(t *testing.T) {
	up := newUpstream(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	t.Run("delay", func(t *testing.T) {
		rt := routeTo("c", 0)
		rt.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": mustAny(t, &faultv3.HTTPFault{
			Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(150 * time.Millisecond)}, Percentage: pct100()}})}
		w := newWorld(t, rt, map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
		begin := time.Now()
		resp, body := get(t, nil, w.base+"/", nil)
		if took := time.Since(begin); took < 150*time.Millisecond {
			t.Errorf("request took %v, want at least the 150ms delay", took)
		}
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
		if got := w.res.next(t); got.Flags != "DI" || got.Upstream == "" {
			t.Errorf("result %+v, want DI", got)
		}
	})
	t.Run("abort", func(t *testing.T) {
		before := up.hits.Load()
		rt := routeTo("c", 0)
		rt.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": mustAny(t, &faultv3.HTTPFault{
			Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 418}, Percentage: &typev3.FractionalPercent{Numerator: 1000000, Denominator: typev3.FractionalPercent_MILLION}}})}
		w := newWorld(t, rt, map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
		resp, body := get(t, nil, w.base+"/", nil)
		if resp.StatusCode != 418 || body != "fault filter abort" {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
		if got := w.res.next(t); got.Flags != "FI" || got.Code != 418 {
			t.Errorf("result %+v", got)
		}
		if up.hits.Load() != before {
			t.Error("aborted request reached the upstream")
		}
	})
}

func TestCORSThroughProxy(t *testing.T) {
	up := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Method) })
	rt := routeTo("c", 0)
	rt.TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(t, &corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://web.example"}}},
		AllowMethods:           "GET,PUT", AllowHeaders: "x-a", ExposeHeaders: "x-b", MaxAge: "60",
	})}
	w := newWorld(t, rt, map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	req, _ := http.NewRequest("OPTIONS", w.base+"/x", nil)
	req.Header.Set("Origin", "https://web.example")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://web.example" ||
		resp.Header.Get("Access-Control-Allow-Methods") != "GET,PUT" || resp.Header.Get("Access-Control-Max-Age") != "60" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if up.hits.Load() != 0 {
		t.Error("preflight reached the upstream")
	}
	resp, body := get(t, nil, w.base+"/x", map[string]string{"Origin": "https://web.example"})
	if body != "GET" || resp.Header.Get("Access-Control-Allow-Origin") != "https://web.example" || resp.Header.Get("Access-Control-Expose-Headers") != "x-b" {
		t.Errorf("simple: %q %v", body, resp.Header)
	}
	resp, _ = get(t, nil, w.base+"/x", map[string]string{"Origin": "https://other"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("allow-origin for a non-matching origin")
	}
}

func TestRetryHidesFlakyUpstream(t *testing.T) {
	up := newUpstream(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n%2 == 1 {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "ok")
	})
	w := newWorld(t, action("c", func(a *routev3.RouteAction) { a.RetryPolicy = retryOn("5xx", 1) }),
		map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	c := &http.Client{}
	defer c.CloseIdleConnections()
	for i := range 50 {
		if resp, body := get(t, c, w.base+"/", nil); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if up.hits.Load() != 100 {
		t.Errorf("upstream saw %d attempts, want 100", up.hits.Load())
	}
}

func TestRetryReplaysBody(t *testing.T) {
	up := newUpstream(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		w.Write(b)
	})
	w := newWorld(t, action("c", func(a *routev3.RouteAction) { a.RetryPolicy = retryOn("5xx", 1) }),
		map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	payload := strings.Repeat("p", 10<<10)
	resp, err := http.Post(w.base+"/", "text/plain", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != payload {
		t.Errorf("got %d with %d bytes", resp.StatusCode, len(b))
	}
	// Bodies over 64 KiB are not retried.
	big := strings.Repeat("q", 100<<10)
	up.hits.Store(0)
	resp, err = http.Post(w.base+"/", "text/plain", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || up.hits.Load() != 1 {
		t.Errorf("big body: %d after %d attempts, want 503 after 1", resp.StatusCode, up.hits.Load())
	}
}

func TestRetryPreviousHosts(t *testing.T) {
	bad := newUpstream(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	good := newUpstream(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "good") })
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		a.RetryPolicy = retryOn("5xx", 1)
		a.RetryPolicy.HostSelectionRetryMaxAttempts = 30
		a.RetryPolicy.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(t, &previoushostsv3.PreviousHostsPredicate{})},
		}}
	}), map[string][]string{"c": {bad.addr(t), good.addr(t)}}, clusterv3.Cluster_RANDOM, nil)
	c := &http.Client{}
	defer c.CloseIdleConnections()
	for i := range 60 {
		if resp, body := get(t, c, w.base+"/", nil); resp.StatusCode != 200 || body != "good" {
			t.Fatalf("request %d: %d %q (bad hit %d times)", i, resp.StatusCode, body, bad.hits.Load())
		}
	}
	if bad.hits.Load() == 0 {
		t.Error("the failing host was never picked first; the test proves nothing")
	}
}

func TestRetryExhausted(t *testing.T) {
	up := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/conflict" {
			w.WriteHeader(409)
			return
		}
		if r.URL.Path == "/missing" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(502)
	})
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		a.RetryPolicy = retryOn("gateway-error,retriable-4xx", 2)
	}), map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	for _, tt := range []struct {
		path  string
		code  int
		hits  int64
		flags string
	}{
		{"/", 502, 3, "URX"},
		{"/conflict", 409, 3, "URX"},
		{"/missing", 404, 1, ""},
	} {
		up.hits.Store(0)
		resp, _ := get(t, nil, w.base+tt.path, nil)
		got := w.res.next(t)
		if resp.StatusCode != tt.code || up.hits.Load() != tt.hits || got.Flags != tt.flags {
			t.Errorf("%s: %d after %d attempts, flags %q; want %d after %d, %q", tt.path, resp.StatusCode, up.hits.Load(), got.Flags, tt.code, tt.hits, tt.flags)
		}
	}
}

func TestRetryConnectFailureAndStatusCodes(t *testing.T) {
	dead := testnet.Refusing(t)
	up := newUpstream(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n%2 == 1 {
			w.WriteHeader(429)
			return
		}
		io.WriteString(w, "ok")
	})
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		a.RetryPolicy = retryOn("connect-failure,retriable-status-codes", 3)
		a.RetryPolicy.RetriableStatusCodes = []uint32{429}
	}), map[string][]string{"c": {dead, up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	for i := range 20 {
		if resp, _ := get(t, nil, w.base+"/", nil); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	// All endpoints dead: UF and URX.
	w2 := newWorld(t, action("c", func(a *routev3.RouteAction) { a.RetryPolicy = retryOn("connect-failure", 1) }),
		map[string][]string{"c": {dead}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	resp, _ := get(t, nil, w2.base+"/", nil)
	if got := w2.res.next(t); resp.StatusCode != 503 || got.Flags != "UF,URX" {
		t.Errorf("got %d %q, want 503 UF,URX", resp.StatusCode, got.Flags)
	}
}

func TestPerTryTimeout(t *testing.T) {
	up := newUpstream(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 || r.URL.Path == "/always-slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
			return
		}
		io.WriteString(w, "fast")
	})
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		a.RetryPolicy = retryOn("5xx", 1)
		a.RetryPolicy.PerTryTimeout = durationpb.New(100 * time.Millisecond)
		a.Timeout = durationpb.New(2 * time.Second)
	}), map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	resp, body := get(t, nil, w.base+"/", nil)
	if resp.StatusCode != 200 || body != "fast" || up.hits.Load() != 2 {
		t.Errorf("got %d %q after %d attempts", resp.StatusCode, body, up.hits.Load())
	}
	w.res.next(t)
	resp, body = get(t, nil, w.base+"/always-slow", nil)
	if got := w.res.next(t); resp.StatusCode != 504 || body != "upstream request timeout" || got.Flags != "UT,URX" {
		t.Errorf("got %d %q flags %q, want 504 UT,URX", resp.StatusCode, body, got.Flags)
	}
}

func TestOverallTimeoutBoundsRetries(t *testing.T) {
	up := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		a.RetryPolicy = retryOn("5xx", 10)
		a.RetryPolicy.PerTryTimeout = durationpb.New(100 * time.Millisecond)
		a.Timeout = durationpb.New(250 * time.Millisecond)
	}), map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	resp, _ := get(t, nil, w.base+"/", nil)
	got := w.res.next(t)
	if resp.StatusCode != 504 || got.Flags != "UT" || up.hits.Load() > 4 {
		t.Errorf("got %d %q after %d attempts", resp.StatusCode, got.Flags, up.hits.Load())
	}
}

func TestResetIsUC(t *testing.T) {
	up := newUpstream(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	})
	w := newWorld(t, routeTo("c", 0), map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	resp, body := get(t, nil, w.base+"/", nil)
	if got := w.res.next(t); resp.StatusCode != 503 || got.Flags != "UC" || !strings.Contains(body, "connection termination") {
		t.Errorf("got %d %q flags %q", resp.StatusCode, body, got.Flags)
	}
}

func TestMirror(t *testing.T) {
	type seen struct{ host, path, body string }
	mirrored := make(chan seen, 4)
	release := make(chan struct{})
	shadow := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mirrored <- seen{r.Host, r.URL.Path, string(b)}
		<-release
	})
	defer close(release)
	main := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) { io.WriteString(w, "main") })
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "shadow"}}
	}), map[string][]string{"c": {main.addr(t)}, "shadow": {shadow.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	req, _ := http.NewRequest("POST", w.base+"/orders", strings.NewReader("payload"))
	req.Host = "orders.default:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "main" {
		t.Errorf("main response %q", b)
	}
	// The main response arrived while the shadow is still blocked.
	select {
	case s := <-mirrored:
		if s.host != "orders.default-shadow:8080" || s.path != "/orders" || s.body != "payload" {
			t.Errorf("shadow saw %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no mirrored request")
	}
	if got := w.res.next(t); got.Upstream != main.addr(t) {
		t.Errorf("result %+v", got)
	}
}

func TestMirrorFraction(t *testing.T) {
	shadow := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) {})
	witness := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) {})
	main := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) {})
	// Each request is mirrored to witness at 100%, after the 0% policy
	// to shadow has had its chance.
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{
			{Cluster: "shadow", RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 0}}},
			{Cluster: "witness", RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: pct100()}},
		}
	}), map[string][]string{"c": {main.addr(t)}, "shadow": {shadow.addr(t)}, "witness": {witness.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
	const n = 20
	for range n {
		get(t, nil, w.base+"/", nil)
	}
	// Every mirror these requests started has finished: the witness saw
	// all of its copies and no shadow request holds a slot. Only then is
	// an empty shadow a result rather than a race.
	deadline := time.Now().Add(10 * time.Second)
	for witness.hits.Load() < n || len(mirrorSlots) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("mirrors still running: witness saw %d of %d, %d in flight", witness.hits.Load(), n, len(mirrorSlots))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if shadow.hits.Load() != 0 {
		t.Errorf("0%% mirror sent %d requests", shadow.hits.Load())
	}
}

func TestRewrites(t *testing.T) {
	up := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Host, r.URL.RequestURI())
	})
	for _, tt := range []struct {
		name  string
		match *routev3.RouteMatch
		edit  func(a *routev3.RouteAction)
		path  string
		want  string
	}{
		{"prefix", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api/"}},
			func(a *routev3.RouteAction) { a.PrefixRewrite = "/v2/" }, "/api/items?x=1", "/v2/items?x=1"},
		{"path", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/old"}},
			func(a *routev3.RouteAction) { a.PrefixRewrite = "/new" }, "/old?q", "/new?q"},
		{"regex", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			func(a *routev3.RouteAction) {
				a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: `^/users/([0-9]+)/profile$`}, Substitution: `/profiles/\1`}
			}, "/users/42/profile?a=b", "/profiles/42?a=b"},
		{"host", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			func(a *routev3.RouteAction) {
				a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "backend.internal"}
			}, "/h", "HOST=backend.internal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt := action("c", tt.edit)
			rt.Match = tt.match
			w := newWorld(t, rt, map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)
			_, body := get(t, nil, w.base+tt.path, nil)
			host, uri, _ := strings.Cut(body, " ")
			if h, ok := strings.CutPrefix(tt.want, "HOST="); ok {
				if host != h {
					t.Errorf("upstream host %q, want %q", host, h)
				}
			} else if uri != tt.want {
				t.Errorf("upstream saw %q, want %q", uri, tt.want)
			}
		})
	}
}

func TestRedirectAndDirectResponse(t *testing.T) {
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range []struct {
		name     string
		redirect *routev3.RedirectAction
		path     string
		code     int
		location string
	}{
		{"host and path keep query", &routev3.RedirectAction{HostRedirect: "new.example",
			PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/landing"}}, "/old?a=1", 301, "http://new.example/landing?a=1"},
		{"path with query replaces it", &routev3.RedirectAction{
			PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/p?x=2"}, ResponseCode: routev3.RedirectAction_FOUND}, "/old?a=1", 302, "http://HOST/p?x=2"},
		{"strip query, scheme and port", &routev3.RedirectAction{StripQuery: true, PortRedirect: 8443,
			SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"},
			ResponseCode:           routev3.RedirectAction_PERMANENT_REDIRECT}, "/old?a=1", 308, "https://127.0.0.1:8443/old"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rt := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Redirect{Redirect: tt.redirect}}
			w := newWorld(t, rt, nil, clusterv3.Cluster_ROUND_ROBIN, nil)
			resp, _ := get(t, noFollow, w.base+tt.path, nil)
			want := strings.ReplaceAll(tt.location, "HOST", hostOf(t, w.base))
			if resp.StatusCode != tt.code || resp.Header.Get("Location") != want {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tt.code, want)
			}
		})
	}
	rt := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418,
			Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}},
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-direct", Value: "1"}}}}
	w := newWorld(t, rt, nil, clusterv3.Cluster_ROUND_ROBIN, nil)
	resp, body := get(t, nil, w.base+"/", nil)
	if resp.StatusCode != 418 || body != "teapot" || resp.Header.Get("X-Direct") != "1" {
		t.Errorf("direct response %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestHeaderManipulation(t *testing.T) {
	up := newUpstream(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Secret", "s")
		w.Header().Set("X-Up", "u")
		for _, k := range []string{"X-Set", "X-Add", "X-Absent", "X-Gone", "X-Vh", "X-Wc"} {
			fmt.Fprintf(w, "%s=%s;", k, strings.Join(r.Header.Values(k), ","))
		}
	})
	hv := func(k, v string, a corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: a}
	}
	rt := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
			WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{{
				Name: "c", Weight: wrapperspb.UInt32(1),
				RequestHeadersToAdd:  []*corev3.HeaderValueOption{hv("x-wc", "w", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)},
				ResponseHeadersToAdd: []*corev3.HeaderValueOption{hv("x-resp-wc", "w", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)},
			}}}}}},
		RequestHeadersToAdd: []*corev3.HeaderValueOption{
			hv("x-set", "new", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
			hv("x-add", "second", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD),
			hv("x-absent", "kept?", corev3.HeaderValueOption_ADD_IF_ABSENT),
		},
		RequestHeadersToRemove:  []string{"x-gone"},
		ResponseHeadersToAdd:    []*corev3.HeaderValueOption{hv("x-resp", "r", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)},
		ResponseHeadersToRemove: []string{"x-secret"},
	}
	w := newWorld(t, rt, map[string][]string{"c": {up.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, func(vh *routev3.VirtualHost) {
		vh.RequestHeadersToAdd = []*corev3.HeaderValueOption{hv("x-vh", "v", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)}
		vh.ResponseHeadersToAdd = []*corev3.HeaderValueOption{hv("x-resp", "vh", corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)}
	})
	resp, body := get(t, nil, w.base+"/", map[string]string{"X-Set": "old", "X-Add": "first", "X-Absent": "client", "X-Gone": "bye"})
	want := "X-Set=new;X-Add=first,second;X-Absent=client;X-Gone=;X-Vh=v;X-Wc=w;"
	if body != want {
		t.Errorf("upstream saw %q\nwant          %q", body, want)
	}
	if resp.Header.Get("X-Secret") != "" || resp.Header.Get("X-Up") != "u" || resp.Header.Get("X-Resp-Wc") != "w" ||
		strings.Join(resp.Header.Values("X-Resp"), ",") != "r,vh" {
		t.Errorf("response headers %v", resp.Header)
	}
}

// stickyUpstreams returns 3 upstreams that answer with their index.
func stickyUpstreams(t *testing.T) []string {
	var addrs []string
	for i := range 3 {
		u := newUpstream(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, i) })
		addrs = append(addrs, u.addr(t))
	}
	return addrs
}

func TestCookieHashSticks(t *testing.T) {
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		a.HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
			Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "session", Ttl: durationpb.New(time.Hour), Path: "/"}}}}
	}), map[string][]string{"c": stickyUpstreams(t)}, clusterv3.Cluster_RING_HASH, nil)
	resp, first := get(t, nil, w.base+"/", nil)
	sc := resp.Header.Get("Set-Cookie")
	if !strings.HasPrefix(sc, "session=") || !strings.HasSuffix(sc, "; Max-Age=3600; Path=/; HttpOnly") {
		t.Fatalf("Set-Cookie %q", sc)
	}
	cookie, _, _ := strings.Cut(sc, ";")
	for i := range 50 {
		resp, body := get(t, nil, w.base+"/", map[string]string{"Cookie": "other=1; " + cookie})
		if body != first {
			t.Fatalf("request %d went to %s, first to %s", i, body, first)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Fatal("Set-Cookie although the cookie was sent")
		}
	}
}

func TestHeaderHashSticks(t *testing.T) {
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		a.HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
	}), map[string][]string{"c": stickyUpstreams(t)}, clusterv3.Cluster_RING_HASH, nil)
	seenHosts := map[string]bool{}
	for u := range 20 {
		user := fmt.Sprintf("user-%d", u)
		_, first := get(t, nil, w.base+"/", map[string]string{"X-User": user})
		seenHosts[first] = true
		for range 10 {
			if _, body := get(t, nil, w.base+"/", map[string]string{"X-User": user}); body != first {
				t.Fatalf("%s moved from %s to %s", user, first, body)
			}
		}
	}
	if len(seenHosts) < 2 {
		t.Errorf("20 users all hashed to %v", seenHosts)
	}
}

func TestCircuitBreakerOverflow(t *testing.T) {
	g := newGate(t, "a")
	r := simple(t, "127.0.0.1:0", 0, hostOf(t, g.URL))
	r.Clusters["c"].CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRequests: wrapperspb.UInt32(1)}}}
	res := make(results, 10)
	_, base := start(t, r, Options{OnRequest: res.hook})
	slow := slowGet(base + "/slow")
	<-g.arrived
	resp, body := get(t, nil, base+"/", nil)
	if got := res.next(t); resp.StatusCode != 503 || got.Flags != "UO" || !strings.HasSuffix(body, "reset reason: overflow") || resp.Header.Get("X-Envoy-Overloaded") != "true" {
		t.Errorf("got %d %q flags %q", resp.StatusCode, body, got.Flags)
	}
	g.open()
	<-slow
}

// TestRetryUpstreamGoneAway: an endpoint that goes away (a terminating
// pod: its app's or sidecar's drain closes every kept-alive connection,
// then nothing listens) while the proxy still lists it. Its pooled
// connections are dead; a request sent to it fails as a connect failure
// (nothing reached it), which Istio's default retry policy sends to
// another endpoint: every request succeeds, none ends as a reset (UC).
func TestRetryUpstreamGoneAway(t *testing.T) {
	const perHost = 4
	arrived, release := make(chan struct{}, 2*perHost), make(chan struct{})
	handler := func(name string) func(int64, http.ResponseWriter, *http.Request) {
		return func(_ int64, w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/fill" {
				arrived <- struct{}{}
				<-release
			}
			io.WriteString(w, name)
		}
	}
	going, staying := newUpstream(t, handler("going")), newUpstream(t, handler("staying"))
	w := newWorld(t, action("c", func(a *routev3.RouteAction) {
		// Istio's default policy (xds/translate.retryPolicy).
		a.RetryPolicy = retryOn("connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", 2)
		a.RetryPolicy.RetriableStatusCodes = []uint32{503}
		a.RetryPolicy.HostSelectionRetryMaxAttempts = 5
		a.RetryPolicy.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(t, &previoushostsv3.PreviousHostsPredicate{})},
		}}
	}), map[string][]string{"c": {going.addr(t), staying.addr(t)}}, clusterv3.Cluster_ROUND_ROBIN, nil)

	// Concurrent requests leave the proxy perHost kept-alive connections
	// to each endpoint.
	c := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2 * perHost}}
	defer c.CloseIdleConnections()
	errs := make(chan error, 2*perHost)
	for range 2 * perHost {
		go func() {
			resp, err := c.Get(w.base + "/fill")
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	for range 2 * perHost {
		<-arrived
	}
	close(release)
	for range 2 * perHost {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for range 2 * perHost {
		w.res.next(t)
	}
	if going.hits.Load() != perHost {
		t.Fatalf("%d of the requests reached the endpoint that goes away, want %d", going.hits.Load(), perHost)
	}

	going.Close() // the listener, then every connection
	for i := range 4 * perHost {
		resp, body := get(t, c, w.base+"/", nil)
		got := w.res.next(t)
		if resp.StatusCode != 200 || body != "staying" {
			t.Fatalf("request %d after the endpoint went away: %d %q, flags %q", i, resp.StatusCode, body, got.Flags)
		}
	}
}
