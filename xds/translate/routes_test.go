package translate

import (
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

const catalogHost = "catalog.coolapp.svc.cluster.local"

var catalogCluster = ClusterName(8080, "", catalogHost)

// catalogRoutes generates a sidecar's routes for a mesh VirtualService on
// catalog with the given http routes (plus extra objects).
func catalogRoutes(t *testing.T, extra []*config.Object, http ...*networking.HTTPRoute) []*route.Route {
	t.Helper()
	objs := coolapp(append(extra, vs("catalog", nil, []string{"catalog"}, http...))...)
	r := generate(t, objs, sidecarMeta())
	return vhost(t, r.Routes["outbound"], catalogHost+":8080").GetRoutes()
}

// catalogRoute is catalogRoutes for a single http route.
func catalogRoute(t *testing.T, hr *networking.HTTPRoute, extra ...*config.Object) *route.Route {
	t.Helper()
	routes := catalogRoutes(t, extra, hr)
	if len(routes) != 1 {
		t.Fatalf("want 1 route, got %d: %v", len(routes), routes)
	}
	return routes[0]
}

func toCatalog() []*networking.HTTPRouteDestination {
	return []*networking.HTTPRouteDestination{dest("catalog", "", 0, 0)}
}

func assertProto(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("%s:\n got: %s\nwant: %s", what, prototext.Format(got), prototext.Format(want))
	}
}

func perM(n uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_MILLION}
}

func pct(v float64) *networking.Percent { return &networking.Percent{Value: v} }

func fixedDelay(d time.Duration, p *typev3.FractionalPercent) *faultcommon.FaultDelay {
	return &faultcommon.FaultDelay{FaultDelaySecifier: &faultcommon.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)}, Percentage: p}
}

func TestFault(t *testing.T) {
	delay := func(p *networking.Percent, legacy int32) *networking.HTTPFaultInjection {
		return &networking.HTTPFaultInjection{Delay: &networking.HTTPFaultInjection_Delay{
			HttpDelayType: &networking.HTTPFaultInjection_Delay_FixedDelay{FixedDelay: durationpb.New(2 * time.Second)},
			Percentage:    p, Percent: legacy,
		}}
	}
	abort := func(p *networking.Percent, status int32) *networking.HTTPFaultInjection {
		return &networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
			ErrorType: &networking.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: status}, Percentage: p,
		}}
	}
	for _, tc := range []struct {
		name string
		in   *networking.HTTPFaultInjection
		want *faultv3.HTTPFault // nil: no per-filter config at all
	}{
		{"delay 70% is 700000 per million", delay(pct(70), 0), &faultv3.HTTPFault{Delay: fixedDelay(2*time.Second, perM(700000))}},
		{"fractional percentage", delay(pct(0.1), 0), &faultv3.HTTPFault{Delay: fixedDelay(2*time.Second, perM(1000))}},
		{"float error rounds", delay(pct(14.3), 0), &faultv3.HTTPFault{Delay: fixedDelay(2*time.Second, perM(143000))}},
		{"legacy percent", delay(nil, 25), &faultv3.HTTPFault{Delay: fixedDelay(2*time.Second, perM(250000))}},
		{"percentage wins over percent", delay(pct(50), 25), &faultv3.HTTPFault{Delay: fixedDelay(2*time.Second, perM(500000))}},
		{"delay without percentage is 0% (Istio)", delay(nil, 0), &faultv3.HTTPFault{Delay: fixedDelay(2*time.Second, perM(0))}},
		{"abort", abort(pct(100), 503), &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
			ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: perM(1000000)}}},
		{"abort 0%", abort(pct(0), 500), &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
			ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500}, Percentage: perM(0)}}},
		{"abort without percentage", abort(nil, 500), &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
			ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500}, Percentage: perM(1000000)}}},
		{"grpc abort", &networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
			ErrorType: &networking.HTTPFaultInjection_Abort_GrpcStatus{GrpcStatus: "UNAVAILABLE"}, Percentage: pct(50)}},
			&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}, Percentage: perM(500000)}}},
		{"both", &networking.HTTPFaultInjection{Delay: delay(pct(10), 0).Delay, Abort: abort(pct(20), 500).Abort},
			&faultv3.HTTPFault{Delay: fixedDelay(2*time.Second, perM(100000)), Abort: &faultv3.FaultAbort{
				ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500}, Percentage: perM(200000)}}},
		{"exponential delay is dropped", &networking.HTTPFaultInjection{Delay: &networking.HTTPFaultInjection_Delay{
			HttpDelayType: &networking.HTTPFaultInjection_Delay_ExponentialDelay{ExponentialDelay: durationpb.New(time.Second)}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := catalogRoute(t, &networking.HTTPRoute{Fault: tc.in, Route: toCatalog()})
			cfg, ok := rt.GetTypedPerFilterConfig()[faultFilterName]
			if tc.want == nil {
				if ok {
					t.Fatalf("unexpected fault config %v", cfg)
				}
				return
			}
			got := &faultv3.HTTPFault{}
			if err := cfg.UnmarshalTo(got); err != nil {
				t.Fatal(err)
			}
			assertProto(t, "fault", got, tc.want)
		})
	}
}

func TestRetries(t *testing.T) {
	prev := []*route.RetryPolicy_RetryHostPredicate{{
		Name:       "envoy.retry_host_predicates.previous_hosts",
		ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushosts.PreviousHostsPredicate{})},
	}}
	istioDefault := &route.RetryPolicy{
		RetryOn:                       "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries:                    wrapperspb.UInt32(2),
		RetriableStatusCodes:          []uint32{503},
		HostSelectionRetryMaxAttempts: 5,
		RetryHostPredicate:            prev,
	}
	for _, tc := range []struct {
		name string
		in   *networking.HTTPRetry
		want *route.RetryPolicy
	}{
		{"absent: Istio's default", nil, istioDefault},
		{"attempts 0: none", &networking.HTTPRetry{Attempts: 0, RetryOn: "5xx"}, nil},
		{"attempts only keeps default conditions", &networking.HTTPRetry{Attempts: 4}, &route.RetryPolicy{
			RetryOn: istioDefault.RetryOn, NumRetries: wrapperspb.UInt32(4), RetriableStatusCodes: []uint32{503},
			HostSelectionRetryMaxAttempts: 5, RetryHostPredicate: prev}},
		{"retryOn passes through, codes split out", &networking.HTTPRetry{
			Attempts: 3, PerTryTimeout: durationpb.New(2 * time.Second), RetryOn: "5xx, gateway-error,429,reset,unavailable",
			RetryRemoteLocalities: wrapperspb.Bool(true)}, &route.RetryPolicy{
			RetryOn: "5xx,gateway-error,reset,unavailable,retriable-status-codes", NumRetries: wrapperspb.UInt32(3),
			RetriableStatusCodes: []uint32{429}, PerTryTimeout: durationpb.New(2 * time.Second),
			HostSelectionRetryMaxAttempts: 5, RetryHostPredicate: prev}},
		{"retriable-status-codes not repeated", &networking.HTTPRetry{Attempts: 1, RetryOn: "retriable-status-codes,502,504"},
			&route.RetryPolicy{RetryOn: "retriable-status-codes", NumRetries: wrapperspb.UInt32(1), RetriableStatusCodes: []uint32{502, 504},
				HostSelectionRetryMaxAttempts: 5, RetryHostPredicate: prev}},
		{"no codes: none kept", &networking.HTTPRetry{Attempts: 2, RetryOn: "connect-failure,deadline-exceeded"},
			&route.RetryPolicy{RetryOn: "connect-failure,deadline-exceeded", NumRetries: wrapperspb.UInt32(2),
				HostSelectionRetryMaxAttempts: 5, RetryHostPredicate: prev}},
		{"retryIgnorePreviousHosts false", &networking.HTTPRetry{Attempts: 2, RetryIgnorePreviousHosts: wrapperspb.Bool(false)},
			&route.RetryPolicy{RetryOn: istioDefault.RetryOn, NumRetries: wrapperspb.UInt32(2), RetriableStatusCodes: []uint32{503},
				HostSelectionRetryMaxAttempts: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := catalogRoute(t, &networking.HTTPRoute{Retries: tc.in, Route: toCatalog()})
			assertProto(t, "retry_policy", rt.GetRoute().GetRetryPolicy(), tc.want)
		})
	}
	t.Run("default route without VirtualService", func(t *testing.T) {
		r := generate(t, coolapp(), sidecarMeta())
		rt := vhost(t, r.Routes["outbound"], catalogHost+":8080").GetRoutes()[0]
		assertProto(t, "retry_policy", rt.GetRoute().GetRetryPolicy(), istioDefault)
	})
}

func TestTimeout(t *testing.T) {
	if got := catalogRoute(t, &networking.HTTPRoute{Route: toCatalog()}).GetRoute().GetTimeout(); got == nil || got.AsDuration() != 0 {
		t.Errorf("absent timeout: %v, want 0s", got)
	}
	if got := catalogRoute(t, &networking.HTTPRoute{Timeout: durationpb.New(1500 * time.Millisecond), Route: toCatalog()}).GetRoute().GetTimeout(); got.AsDuration() != 1500*time.Millisecond {
		t.Errorf("timeout %v", got)
	}
}

func TestMirror(t *testing.T) {
	mirrorTo := func(c string, n uint32) *route.RouteAction_RequestMirrorPolicy {
		return &route.RouteAction_RequestMirrorPolicy{Cluster: c, RuntimeFraction: &core.RuntimeFractionalPercent{DefaultValue: perM(n)}}
	}
	v2 := ClusterName(8080, "v2", catalogHost)
	gw := ClusterName(8080, "", "gateway.coolapp.svc.cluster.local")
	for _, tc := range []struct {
		name string
		hr   *networking.HTTPRoute
		want []*route.RouteAction_RequestMirrorPolicy
	}{
		{"default 100%", &networking.HTTPRoute{Mirror: &networking.Destination{Host: "catalog", Subset: "v2"}}, []*route.RouteAction_RequestMirrorPolicy{mirrorTo(v2, 1000000)}},
		{"mirrorPercentage", &networking.HTTPRoute{Mirror: &networking.Destination{Host: "catalog", Subset: "v2"}, MirrorPercentage: pct(12.5)},
			[]*route.RouteAction_RequestMirrorPolicy{mirrorTo(v2, 125000)}},
		{"explicit 0 mirrors nothing", &networking.HTTPRoute{Mirror: &networking.Destination{Host: "catalog", Subset: "v2"}, MirrorPercentage: pct(0)}, nil},
		{"legacy mirror_percent", &networking.HTTPRoute{Mirror: &networking.Destination{Host: "gateway"}, MirrorPercent: wrapperspb.UInt32(5)},
			[]*route.RouteAction_RequestMirrorPolicy{mirrorTo(gw, 50000)}},
		{"mirrors list", &networking.HTTPRoute{Mirrors: []*networking.HTTPMirrorPolicy{
			{Destination: &networking.Destination{Host: "catalog", Subset: "v2"}},
			{Destination: &networking.Destination{Host: "gateway", Port: &networking.PortSelector{Number: 8080}}, Percentage: pct(30)},
			{Destination: &networking.Destination{Host: "gateway"}, Percentage: pct(0)},
		}}, []*route.RouteAction_RequestMirrorPolicy{mirrorTo(v2, 1000000), mirrorTo(gw, 300000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.hr.Route = toCatalog()
			got := catalogRoute(t, tc.hr).GetRoute().GetRequestMirrorPolicies()
			if len(got) != len(tc.want) {
				t.Fatalf("mirror policies %v, want %v", got, tc.want)
			}
			for i := range got {
				assertProto(t, "mirror", got[i], tc.want[i])
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	rt := catalogRoute(t, &networking.HTTPRoute{
		Match:   []*networking.HTTPMatchRequest{{Uri: exact("/old")}},
		Rewrite: &networking.HTTPRewrite{Uri: "/new", Authority: "svc.example.com"},
		Route:   toCatalog(),
	})
	a := rt.GetRoute()
	if rt.GetMatch().GetPath() != "/old" || a.GetPrefixRewrite() != "/new" || a.GetHostRewriteLiteral() != "svc.example.com" {
		t.Errorf("rewrite: %v", rt)
	}
	a = catalogRoute(t, &networking.HTTPRoute{
		Rewrite: &networking.HTTPRewrite{UriRegexRewrite: &networking.RegexRewrite{Match: "^/v1/(.*)$", Rewrite: `/v2/\1`}},
		Route:   toCatalog(),
	}).GetRoute()
	assertProto(t, "regex_rewrite", a.GetRegexRewrite(), &matcher.RegexMatchAndSubstitute{Pattern: regex("^/v1/(.*)$"), Substitution: `/v2/\1`})
	if a.GetPrefixRewrite() != "" || a.GetHostRewriteSpecifier() != nil {
		t.Errorf("unexpected rewrites: %v", a)
	}
}

func TestRedirect(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *networking.HTTPRedirect
		want *route.RedirectAction // nil: the route is dropped
	}{
		{"defaults to 301", &networking.HTTPRedirect{Uri: "/v2/catalog", Authority: "new.example.com"}, &route.RedirectAction{
			PathRewriteSpecifier: &route.RedirectAction_PathRedirect{PathRedirect: "/v2/catalog"}, HostRedirect: "new.example.com",
			ResponseCode: route.RedirectAction_MOVED_PERMANENTLY}},
		{"scheme port code", &networking.HTTPRedirect{Scheme: "https", RedirectPort: &networking.HTTPRedirect_Port{Port: 8443}, RedirectCode: 308},
			&route.RedirectAction{SchemeRewriteSpecifier: &route.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}, PortRedirect: 8443,
				ResponseCode: route.RedirectAction_PERMANENT_REDIRECT}},
		{"derive port from request", &networking.HTTPRedirect{Uri: "/x", RedirectCode: 302,
			RedirectPort: &networking.HTTPRedirect_DerivePort{DerivePort: networking.HTTPRedirect_FROM_REQUEST_PORT}},
			&route.RedirectAction{PathRewriteSpecifier: &route.RedirectAction_PathRedirect{PathRedirect: "/x"}, PortRedirect: 8080,
				ResponseCode: route.RedirectAction_FOUND}},
		{"code Envoy cannot send", &networking.HTTPRedirect{Uri: "/x", RedirectCode: 300}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			routes := catalogRoutes(t, nil, &networking.HTTPRoute{Redirect: tc.in})
			if tc.want == nil {
				if len(routes) != 0 {
					t.Fatalf("routes %v, want none", routes)
				}
				return
			}
			if len(routes) != 1 {
				t.Fatalf("routes %v: redirect route without destinations must be kept", routes)
			}
			assertProto(t, "redirect", routes[0].GetRedirect(), tc.want)
		})
	}
}

func TestGatewayRedirectDerivesListenPort(t *testing.T) {
	r := generate(t, coolapp(vs("redir", []string{"ingress-gateway"}, []string{"old.example.com"}, &networking.HTTPRoute{
		Redirect: &networking.HTTPRedirect{Authority: "new.example.com",
			RedirectPort: &networking.HTTPRedirect_DerivePort{DerivePort: networking.HTTPRedirect_FROM_REQUEST_PORT}},
	})), routerMeta())
	rd := vhost(t, r.Routes["http.80"], "old.example.com:80").GetRoutes()[0].GetRedirect()
	if rd.GetPortRedirect() != 18080 || rd.GetHostRedirect() != "new.example.com" {
		t.Errorf("redirect %v", rd)
	}
}

func TestDirectResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *networking.HTTPDirectResponse
		want *route.DirectResponseAction
	}{
		{"string body", &networking.HTTPDirectResponse{Status: 418, Body: &networking.HTTPBody{Specifier: &networking.HTTPBody_String_{String_: "teapot"}}},
			&route.DirectResponseAction{Status: 418, Body: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: "teapot"}}}},
		{"utf-8 bytes as string", &networking.HTTPDirectResponse{Status: 200, Body: &networking.HTTPBody{Specifier: &networking.HTTPBody_Bytes{Bytes: []byte(`{"ok":true}`)}}},
			&route.DirectResponseAction{Status: 200, Body: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: `{"ok":true}`}}}},
		{"binary bytes", &networking.HTTPDirectResponse{Status: 200, Body: &networking.HTTPBody{Specifier: &networking.HTTPBody_Bytes{Bytes: []byte{0xff, 0x00}}}},
			&route.DirectResponseAction{Status: 200, Body: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: []byte{0xff, 0x00}}}}},
		{"no body", &networking.HTTPDirectResponse{Status: 503}, &route.DirectResponseAction{Status: 503}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := catalogRoute(t, &networking.HTTPRoute{DirectResponse: tc.in})
			assertProto(t, "direct_response", rt.GetDirectResponse(), tc.want)
		})
	}
}

func hv(k, v string, appendAction core.HeaderValueOption_HeaderAppendAction) *core.HeaderValueOption {
	return &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: v}, AppendAction: appendAction}
}

const (
	overwrite = core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	appendH   = core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
)

func TestHeaders(t *testing.T) {
	routeHeaders := &networking.Headers{
		Request: &networking.Headers_HeaderOperations{
			Set: map[string]string{"x-b": "1", "x-a": "2", ":authority": "upstream.example.com"}, Add: map[string]string{"x-c": "3"},
			Remove: []string{"x-drop", ":path"}},
		Response: &networking.Headers_HeaderOperations{Set: map[string]string{"x-resp": "r"}, Remove: []string{"server"}},
	}
	destHeaders := &networking.Headers{Request: &networking.Headers_HeaderOperations{Set: map[string]string{"x-a": "dest"}}}

	t.Run("single destination", func(t *testing.T) {
		d := dest("catalog", "", 0, 0)
		d.Headers = destHeaders
		rt := catalogRoute(t, &networking.HTTPRoute{Headers: routeHeaders, Route: []*networking.HTTPRouteDestination{d}})
		want := &route.Route{
			RequestHeadersToAdd: []*core.HeaderValueOption{hv("x-a", "2", overwrite), hv("x-b", "1", overwrite), hv("x-c", "3", appendH),
				hv("x-a", "dest", overwrite)},
			RequestHeadersToRemove:  []string{"x-drop"},
			ResponseHeadersToAdd:    []*core.HeaderValueOption{hv("x-resp", "r", overwrite)},
			ResponseHeadersToRemove: []string{"server"},
		}
		got := &route.Route{RequestHeadersToAdd: rt.RequestHeadersToAdd, RequestHeadersToRemove: rt.RequestHeadersToRemove,
			ResponseHeadersToAdd: rt.ResponseHeadersToAdd, ResponseHeadersToRemove: rt.ResponseHeadersToRemove}
		assertProto(t, "headers", got, want)
		if rt.GetRoute().GetHostRewriteLiteral() != "upstream.example.com" {
			t.Errorf(":authority set should become host_rewrite_literal: %v", rt.GetRoute())
		}
	})
	t.Run("weighted destinations", func(t *testing.T) {
		d1, d2 := dest("catalog", "", 0, 60), dest("gateway", "", 0, 40)
		d1.Headers = destHeaders
		d2.Headers = &networking.Headers{Response: &networking.Headers_HeaderOperations{Add: map[string]string{"x-from": "gw"}}}
		rt := catalogRoute(t, &networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{d1, d2}})
		wc := rt.GetRoute().GetWeightedClusters().GetClusters()
		assertProto(t, "cluster 0", wc[0], &route.WeightedCluster_ClusterWeight{Name: catalogCluster, Weight: wrapperspb.UInt32(60),
			RequestHeadersToAdd: []*core.HeaderValueOption{hv("x-a", "dest", overwrite)}})
		assertProto(t, "cluster 1", wc[1], &route.WeightedCluster_ClusterWeight{Name: ClusterName(8080, "", "gateway.coolapp.svc.cluster.local"),
			Weight: wrapperspb.UInt32(40), ResponseHeadersToAdd: []*core.HeaderValueOption{hv("x-from", "gw", appendH)}})
		if len(rt.RequestHeadersToAdd) != 0 {
			t.Errorf("per-destination headers leaked to the route: %v", rt.RequestHeadersToAdd)
		}
	})
	t.Run("direct response keeps response headers", func(t *testing.T) {
		rt := catalogRoute(t, &networking.HTTPRoute{Headers: routeHeaders, DirectResponse: &networking.HTTPDirectResponse{Status: 204}})
		if len(rt.ResponseHeadersToAdd) != 1 || rt.GetDirectResponse().GetStatus() != 204 {
			t.Errorf("route %v", rt)
		}
	})
}

func TestCors(t *testing.T) {
	rt := catalogRoute(t, &networking.HTTPRoute{Route: toCatalog(), CorsPolicy: &networking.CorsPolicy{
		AllowOrigins:     []*networking.StringMatch{exact("https://a.example.com"), prefix("https://b."), regexM(`https://.*\.c\.com`)},
		AllowMethods:     []string{"GET", "POST"},
		AllowHeaders:     []string{"x-a", "x-b"},
		ExposeHeaders:    []string{"x-exposed"},
		MaxAge:           durationpb.New(24 * time.Hour),
		AllowCredentials: wrapperspb.Bool(false),
	}})
	got := &corsv3.CorsPolicy{}
	if err := rt.GetTypedPerFilterConfig()[corsFilterName].UnmarshalTo(got); err != nil {
		t.Fatal(err)
	}
	assertProto(t, "cors", got, &corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcher.StringMatcher{
			{MatchPattern: &matcher.StringMatcher_Exact{Exact: "https://a.example.com"}},
			{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "https://b."}},
			{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: regex(`https://.*\.c\.com`)}},
		},
		AllowMethods: "GET,POST", AllowHeaders: "x-a,x-b", ExposeHeaders: "x-exposed", MaxAge: "86400",
		AllowCredentials: wrapperspb.Bool(false),
	})
	if _, ok := rt.GetTypedPerFilterConfig()[faultFilterName]; ok {
		t.Error("fault config on a route without fault")
	}
}
