package translate

import (
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrl "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
	"github.com/weft-mesh/weft/model"
)

// rateLimit is a RateLimit for every workload of the namespace (nil
// selector), or those labelled app: web.
func rateLimit(namespace, name string, routes []string, requests uint32, per time.Duration, burst uint32, sel ...string) *config.Object {
	spec := &weftv1alpha1.RateLimit{Routes: routes, Limit: &weftv1alpha1.Limit{Requests: requests, Burst: burst}}
	if per != 0 {
		spec.Limit.Per = durationpb.New(per)
	}
	if len(sel) > 0 {
		m := map[string]string{}
		for i := 0; i+1 < len(sel); i += 2 {
			m[sel[i]] = sel[i+1]
		}
		spec.Selector = &weftv1alpha1.WorkloadSelector{MatchLabels: m}
	}
	return objNS(config.KindRateLimit, namespace, name, spec)
}

func bucket(burst, requests uint32, per time.Duration) *localrl.LocalRateLimit {
	all := func(key string) *core.RuntimeFractionalPercent {
		return &core.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}, RuntimeKey: key}
	}
	return &localrl.LocalRateLimit{
		StatPrefix:              "http_local_rate_limiter",
		TokenBucket:             &typev3.TokenBucket{MaxTokens: burst, TokensPerFill: wrapperspb.UInt32(requests), FillInterval: durationpb.New(per)},
		FilterEnabled:           all("local_rate_limit_enabled"),
		FilterEnforced:          all("local_rate_limit_enforced"),
		EnableXRatelimitHeaders: ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
	}
}

func hcmRateLimit(t *testing.T, r *Resources, listenerName string) *localrl.LocalRateLimit {
	t.Helper()
	for _, f := range manager(t, r, listenerName).GetHttpFilters() {
		if f.GetName() == "envoy.filters.http.local_ratelimit" {
			cfg := &localrl.LocalRateLimit{}
			if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
				t.Fatal(err)
			}
			return cfg
		}
	}
	return nil
}

func TestRateLimitWholeWorkload(t *testing.T) {
	objs := coolapp(webService(),
		rateLimit(ns, "a-web", nil, 100, time.Second, 0, "app", "web"),
		rateLimit(ns, "b-web", nil, 1, time.Second, 0, "app", "web"), // the first wins: buckets do not stack
		rateLimit(ns, "other", nil, 1, time.Second, 0, "app", "other"),
	)
	r := generate(t, objs, webMeta())
	assertProto(t, "local_ratelimit", hcmRateLimit(t, r, InboundListener), bucket(100, 100, time.Second))
	// burst sets the bucket size.
	r = generate(t, coolapp(webService(), rateLimit(ns, "burst", nil, 10, time.Minute, 50)), webMeta())
	assertProto(t, "burst", hcmRateLimit(t, r, InboundListener), bucket(50, 10, time.Minute))
	// The sidecar's inbound route is "default": a limit naming it applies per route.
	r = generate(t, coolapp(webService(), rateLimit(ns, "default-route", []string{"default"}, 5, time.Second, 0)), webMeta())
	assertProto(t, "placeholder", hcmRateLimit(t, r, InboundListener), &localrl.LocalRateLimit{StatPrefix: "http_local_rate_limiter"})
	rt := manager(t, r, InboundListener).GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]
	got := &localrl.LocalRateLimit{}
	if err := rt.GetTypedPerFilterConfig()["envoy.filters.http.local_ratelimit"].UnmarshalTo(got); err != nil {
		t.Fatal(err)
	}
	assertProto(t, "inbound route bucket", got, bucket(5, 5, time.Second))
}

func TestRateLimitPerRouteOnGateway(t *testing.T) {
	objs := coolapp(
		vs("limited", []string{"ingress-gateway"}, []string{"catalog.example.com"},
			&networking.HTTPRoute{Name: "catalog-api", Match: []*networking.HTTPMatchRequest{{Uri: prefix("/api")}, {Uri: prefix("/v2/api")}}, Route: toCatalog()},
			&networking.HTTPRoute{Name: "catalog-rest", Route: toCatalog()}),
		rateLimit(model.RootNamespace, "api", []string{"catalog-api", "no-such-route"}, 20, time.Second, 40, "istio", "ingressgateway"),
	)
	r := generate(t, objs, ingressMeta())
	assertProto(t, "HCM placeholder", hcmRateLimit(t, r, "0.0.0.0_80"), &localrl.LocalRateLimit{StatPrefix: "http_local_rate_limiter"})
	if got := httpFilterNames(t, r, "0.0.0.0_80"); got != "local_ratelimit,fault,cors,router" {
		t.Errorf("filters %s", got)
	}
	limited := 0
	for _, vh := range r.Routes["http.80"].GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			cfg, ok := rt.GetTypedPerFilterConfig()["envoy.filters.http.local_ratelimit"]
			if ok != (rt.GetName() == "catalog-api") {
				t.Errorf("route %q: rate limit config present=%v", rt.GetName(), ok)
			}
			if !ok {
				continue
			}
			limited++
			got := &localrl.LocalRateLimit{}
			if err := cfg.UnmarshalTo(got); err != nil {
				t.Fatal(err)
			}
			assertProto(t, "route bucket", got, bucket(40, 20, time.Second))
		}
	}
	if limited != 2 { // one Envoy route per match entry
		t.Errorf("%d routes limited, want 2", limited)
	}
	// A sidecar is not selected by the gateway's limit.
	if cfg := hcmRateLimit(t, generate(t, objs, webMeta()), InboundListener); cfg != nil {
		t.Errorf("sidecar got %v", cfg)
	}
}

func TestRateLimitErrors(t *testing.T) {
	for _, tc := range []struct {
		rl   *config.Object
		want string
	}{
		{rateLimit(ns, "bad", nil, 0, time.Second, 0), "limit.requests: must be > 0"},
		{rateLimit(ns, "bad", nil, 1, 0, 0), "limit.per: required"},
		{rateLimit(ns, "bad", nil, 1, time.Microsecond, 0), "limit.per: 1µs is less than 1ms"},
		{objNS(config.KindRateLimit, ns, "bad", &weftv1alpha1.RateLimit{}), "limit: required"},
	} {
		err := Generate(model.Build(1, coolapp(webService(), tc.rl)), webMeta()).Validate()
		if err == nil || !strings.Contains(err.Error(), "RateLimit coolapp/bad: "+tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
}
