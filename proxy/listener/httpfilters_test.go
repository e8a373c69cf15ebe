package listener

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/filter/jwtauthn"
	"github.com/weft-mesh/weft/proxy/filter/ratelimit"
	"github.com/weft-mesh/weft/proxy/filter/rbac"
)

func hf(t *testing.T, name string, m proto.Message) *hcmv3.HttpFilter {
	t.Helper()
	f := &hcmv3.HttpFilter{Name: name}
	if m != nil {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		f.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}
	}
	return f
}

func rbacConfig(a rbacv3.RBAC_Action) *httprbacv3.RBAC {
	return &httprbacv3.RBAC{Rules: &rbacv3.RBAC{Action: a, Policies: map[string]*rbacv3.Policy{
		"p": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
		},
	}}}
}

func jwtConfig() *jwtv3.JwtAuthentication {
	return &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"origins-0": {
			Issuer: "https://issuer",
			JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
				Specifier: &corev3.DataSource_InlineString{InlineString: `{"keys":[]}`}}},
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
}

func rateConfig(bucket bool) *lrlv3.LocalRateLimit {
	m := &lrlv3.LocalRateLimit{StatPrefix: "http_local_rate_limiter"}
	if bucket {
		m.TokenBucket = &typev3.TokenBucket{MaxTokens: 5, TokensPerFill: wrapperspb.UInt32(5), FillInterval: durationpb.New(time.Second)}
	}
	return m
}

func parseHCM(t *testing.T, hfs ...*hcmv3.HttpFilter) (*Spec, error) {
	t.Helper()
	return Parse(testListener(t, &hcmv3.HttpConnectionManager{
		StatPrefix:     "x",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "inbound"}},
		HttpFilters:    hfs,
	}))
}

func TestHTTPFiltersContractOrder(t *testing.T) {
	s, err := parseHCM(t,
		hf(t, JWTFilter, jwtConfig()),
		hf(t, RBACFilter, rbacConfig(rbacv3.RBAC_LOG)),
		hf(t, RBACFilter, rbacConfig(rbacv3.RBAC_DENY)),
		hf(t, RBACFilter, rbacConfig(rbacv3.RBAC_ALLOW)),
		hf(t, RateLimitFilter, rateConfig(true)),
		hf(t, FaultFilter, &faultv3.HTTPFault{}),
		hf(t, CORSFilter, nil),
		hf(t, RouterFilter, nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.HTTPFilters) != 5 {
		t.Fatalf("listener chain has %d filters, want 5", len(s.HTTPFilters))
	}
	if _, ok := s.HTTPFilters[0].(*jwtauthn.Filter); !ok {
		t.Errorf("first filter %T, want jwt_authn", s.HTTPFilters[0])
	}
	for i, want := range []rbacv3.RBAC_Action{rbacv3.RBAC_LOG, rbacv3.RBAC_DENY, rbacv3.RBAC_ALLOW} {
		if r, ok := s.HTTPFilters[1+i].(*rbac.HTTP); !ok || r.Action() != want {
			t.Errorf("filter %d: %T, want rbac %v", 1+i, s.HTTPFilters[1+i], want)
		}
	}
	if _, ok := s.HTTPFilters[4].(*ratelimit.Limiter); !ok {
		t.Errorf("last filter %T, want local_ratelimit", s.HTTPFilters[4])
	}

	// Only configs that ask for something make filters: a bucket-less
	// local_ratelimit (routes have their own) and plain router make none.
	s, err = parseHCM(t, hf(t, RateLimitFilter, rateConfig(false)), hf(t, RouterFilter, nil))
	if err != nil || s.HTTPFilters != nil {
		t.Errorf("bucket-less rate limit: %v, chain %v", err, s)
	}
	s, err = parseHCM(t, hf(t, RouterFilter, nil))
	if err != nil || s.HTTPFilters != nil {
		t.Errorf("router only: %v %v", err, s)
	}
}

func TestHTTPFiltersErrors(t *testing.T) {
	badRBAC := rbacConfig(rbacv3.RBAC_ALLOW)
	badRBAC.Rules.Policies["p"].Permissions = nil
	for _, c := range []struct {
		name string
		hfs  []*hcmv3.HttpFilter
		want string
	}{
		{"rbac after rate limit", []*hcmv3.HttpFilter{hf(t, RateLimitFilter, rateConfig(true)), hf(t, RBACFilter, rbacConfig(rbacv3.RBAC_DENY)), hf(t, RouterFilter, nil)},
			`http_filters[1].name: envoy.filters.http.rbac out of order`},
		{"allow before deny", []*hcmv3.HttpFilter{hf(t, RBACFilter, rbacConfig(rbacv3.RBAC_ALLOW)), hf(t, RBACFilter, rbacConfig(rbacv3.RBAC_DENY)), hf(t, RouterFilter, nil)},
			`http_filters[1]: envoy.filters.http.rbac with action DENY out of order`},
		{"two jwt", []*hcmv3.HttpFilter{hf(t, JWTFilter, jwtConfig()), hf(t, JWTFilter, jwtConfig()), hf(t, RouterFilter, nil)},
			`http_filters[1].name: duplicate filter "envoy.filters.http.jwt_authn"`},
		{"bad rbac", []*hcmv3.HttpFilter{hf(t, RBACFilter, badRBAC), hf(t, RouterFilter, nil)},
			`http_filters[0].typed_config.rules.policies["p"].permissions: at least one required`},
		{"rbac without config", []*hcmv3.HttpFilter{hf(t, RBACFilter, nil), hf(t, RouterFilter, nil)},
			`http_filters[0].typed_config: required`},
		{"wrong type", []*hcmv3.HttpFilter{hf(t, RBACFilter, rateConfig(true)), hf(t, RouterFilter, nil)},
			`http_filters[0].typed_config: `},
		{"fault configured at the HCM", []*hcmv3.HttpFilter{hf(t, FaultFilter, &faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(1)}), hf(t, RouterFilter, nil)},
			`http_filters[0].typed_config.max_active_faults: unsupported field (configure envoy.filters.http.fault per route)`},
		{"router not last", []*hcmv3.HttpFilter{hf(t, RouterFilter, nil), hf(t, RouterFilter, nil)},
			`http_filters[0]: envoy.filters.http.router must be the last filter`},
		{"no router", []*hcmv3.HttpFilter{hf(t, RBACFilter, rbacConfig(rbacv3.RBAC_DENY))},
			`http_filters: envoy.filters.http.router missing`},
		{"unknown", []*hcmv3.HttpFilter{hf(t, "envoy.filters.http.ext_authz", nil), hf(t, RouterFilter, nil)},
			`http_filters[0].name: unsupported filter "envoy.filters.http.ext_authz"`},
	} {
		_, err := parseHCM(t, c.hfs...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}
