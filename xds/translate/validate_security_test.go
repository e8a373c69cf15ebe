package translate

import (
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	httprbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/model"
)

// editInboundHCM replaces the inbound HCM of every chain with edit's result.
func editInboundHCM(t *testing.T, r *Resources, edit func(m *hcm.HttpConnectionManager)) {
	t.Helper()
	for _, fc := range r.Listeners[InboundListener].GetFilterChains() {
		f := fc.GetFilters()[len(fc.GetFilters())-1]
		m := &hcm.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		f.ConfigType = &listener.Filter_TypedConfig{TypedConfig: mustAny(m)}
	}
}

func TestValidateSecurityOutput(t *testing.T) {
	const cl = "outbound|9080||ratings.coolapp.svc.cluster.local"
	base := func(t *testing.T) *Resources {
		objs := coolapp(append(ratings(), webService(),
			requestAuthn(ns, "jwt", &security.JWTRule{Issuer: "i", Jwks: testJWKS}),
			authz(ns, "deny", &security.AuthorizationPolicy{Action: deny, Rules: []*security.Rule{rule(from(&security.Source{Namespaces: []string{"x"}}), nil)}}),
		)...)
		r := Generate(model.Build(1, objs), webMeta())
		if err := r.Validate(); err != nil {
			t.Fatalf("valid resources: %v", err)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, r *Resources)
		want string
	}{
		{"transport_protocol match without tls_inspector", func(t *testing.T, r *Resources) {
			r.Listeners[InboundListener].ListenerFilters = nil
		}, "has no envoy.filters.listener.tls_inspector"},
		{"two chains with the same match", func(t *testing.T, r *Resources) {
			l := r.Listeners[InboundListener]
			fc := proto.Clone(l.GetFilterChains()[0]).(*listener.FilterChain)
			fc.Name = "copy"
			l.FilterChains = append(l.FilterChains, fc)
		}, "same filter_chain_match as chain 0"},
		{"upstream context on a listener", func(t *testing.T, r *Resources) {
			r.Listeners[InboundListener].GetFilterChains()[0].TransportSocket = istioMutualSocket("x", nil)
		}, "want envoy.transport_sockets.tls with a DownstreamTlsContext"},
		{"terminal filter not last", func(t *testing.T, r *Resources) {
			fc := r.Listeners[InboundListener].GetFilterChains()[0]
			fc.Filters = append(fc.Filters, networkFilter(netRBACFilterName, mustAny(&rbacv3.RBAC{})))
		}, "only the last filter may, and it must, be terminal"},
		{"router not last", func(t *testing.T, r *Resources) {
			editInboundHCM(t, r, func(m *hcm.HttpConnectionManager) {
				m.HttpFilters[0], m.HttpFilters[len(m.HttpFilters)-1] = m.HttpFilters[len(m.HttpFilters)-1], m.HttpFilters[0]
			})
		}, "envoy.filters.http.router must be the last HTTP filter"},
		{"jwt requirement naming no provider", func(t *testing.T, r *Resources) {
			editInboundHCM(t, r, func(m *hcm.HttpConnectionManager) {
				ja := &jwtv3.JwtAuthentication{}
				if err := m.HttpFilters[0].GetTypedConfig().UnmarshalTo(ja); err != nil {
					t.Fatal(err)
				}
				delete(ja.Providers, "origins-0")
				ja.Providers["other"] = &jwtv3.JwtProvider{Issuer: "i"}
				m.HttpFilters[0] = httpFilter(jwtFilterName, mustAny(ja))
			})
		}, `requirement names provider "origins-0", which does not exist`},
		{"rbac regex that does not compile", func(t *testing.T, r *Resources) {
			editInboundHCM(t, r, func(m *hcm.HttpConnectionManager) {
				cfg := &httprbac.RBAC{}
				if err := m.HttpFilters[1].GetTypedConfig().UnmarshalTo(cfg); err != nil {
					t.Fatal(err)
				}
				for _, p := range cfg.GetRules().GetPolicies() {
					p.Principals = []*rbacv3.Principal{idName(smRegex("(unclosed"))}
				}
				m.HttpFilters[1] = httpFilter(rbacFilterName, mustAny(cfg))
			})
		}, `regex "(unclosed"`},
		{"both transport_socket and matches", func(t *testing.T, r *Resources) {
			r.Clusters[cl].TransportSocket = istioMutualSocket("x", nil)
		}, "both transport_socket and transport_socket_matches"},
		{"downstream context on a cluster", func(t *testing.T, r *Resources) {
			r.Clusters[cl].TransportSocketMatches[0].TransportSocket = tlsSocket(&tlsv3.DownstreamTlsContext{})
		}, "needs an UpstreamTlsContext"},
		{"duplicate match name", func(t *testing.T, r *Resources) {
			r.Clusters[cl].TransportSocketMatches[1].Name = "tlsMode-istio"
		}, `duplicate name "tlsMode-istio"`},
		{"secret not over ADS", func(t *testing.T, r *Resources) {
			ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{
				{Name: "default", SdsConfig: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Path{Path: "/x"}}}}}}
			r.Clusters[cl].TransportSocketMatches[0].TransportSocket = tlsSocket(ctx)
		}, `sds secret "default": config source is not ADS`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base(t)
			tc.edit(t, r)
			if err := r.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDumpSecurity(t *testing.T) {
	objs := coolapp(append(ratings(), webService(),
		requestAuthn(ns, "jwt", &security.JWTRule{Issuer: "i", Jwks: testJWKS}),
		authz(ns, "deny", &security.AuthorizationPolicy{Action: deny, Rules: []*security.Rule{{}}}),
		rateLimit(ns, "rl", nil, 1, time.Second, 0),
	)...)
	r := generate(t, objs, webMeta())
	var all []proto.Message
	for _, typ := range []string{ClusterType, EndpointType, ListenerType, RouteType} {
		all = append(all, r.ByType(typ)...)
	}
	b, err := Dump(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"`,
		`"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"`,
		`"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"`,
		`"@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"`,
		`"@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"`,
		`"@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"`,
		`"envoy.transport_socket_match"`, `"transport_protocol": "tls"`, `"sni": "outbound_.9080_._.ratings.coolapp.svc.cluster.local"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("dump lacks %s", want)
		}
	}
}
