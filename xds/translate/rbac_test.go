package translate

import (
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httprbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
)

func authz(namespace, name string, spec *security.AuthorizationPolicy) *config.Object {
	return objNS(config.KindAuthorizationPolicy, namespace, name, spec)
}

// httpRBAC returns the rbac filter configs of a listener's HCM, by action.
func httpRBAC(t *testing.T, r *Resources, listenerName string) map[rbacv3.RBAC_Action]*rbacv3.RBAC {
	t.Helper()
	out := map[rbacv3.RBAC_Action]*rbacv3.RBAC{}
	for _, f := range manager(t, r, listenerName).GetHttpFilters() {
		if f.GetName() != "envoy.filters.http.rbac" {
			continue
		}
		cfg := &httprbac.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[cfg.GetRules().GetAction()]; dup {
			t.Errorf("two rbac filters with action %v", cfg.GetRules().GetAction())
		}
		out[cfg.GetRules().GetAction()] = cfg.GetRules()
	}
	return out
}

func httpFilterNames(t *testing.T, r *Resources, listenerName string) string {
	t.Helper()
	var names []string
	for _, f := range manager(t, r, listenerName).GetHttpFilters() {
		names = append(names, strings.TrimPrefix(f.GetName(), "envoy.filters.http."))
	}
	return strings.Join(names, ",")
}

// Permission and principal builders for expected values.
func pAnd(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}
func pOr(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}
func pNot(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}
func pAny() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }
func pHeader(name string, sm *matcher.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &route.HeaderMatcher{Name: name, HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: sm}}}}
}
func pPath(sm *matcher.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcher.PathMatcher{Rule: &matcher.PathMatcher_Path{Path: sm}}}}
}
func idAnd(ps ...*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}
func idOr(ps ...*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}
func idNot(p *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
}
func idAny() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}
func idName(sm *matcher.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: sm}}}
}
func idIP(prefix string, bits uint32) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &core.CidrRange{AddressPrefix: prefix, PrefixLen: wrapperspb.UInt32(bits)}}}
}
func idAuthn(value *matcher.ValueMatcher, path ...string) *rbacv3.Principal {
	var segs []*matcher.MetadataMatcher_PathSegment
	for _, p := range path {
		segs = append(segs, &matcher.MetadataMatcher_PathSegment{Segment: &matcher.MetadataMatcher_PathSegment_Key{Key: p}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcher.MetadataMatcher{Filter: "istio_authn", Path: segs, Value: value}}}
}
func vString(sm *matcher.StringMatcher) *matcher.ValueMatcher {
	return &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_StringMatch{StringMatch: sm}}
}
func vOneOf(sm *matcher.StringMatcher) *matcher.ValueMatcher {
	return &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_ListMatch{ListMatch: &matcher.ListMatcher{
		MatchPattern: &matcher.ListMatcher_OneOf{OneOf: vString(sm)}}}}
}
func smExact(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
}
func smPrefix(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: s}}
}
func smSuffix(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Suffix{Suffix: s}}
}
func smRegex(s string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: s}}}
}

func rule(from []*security.Rule_From, to []*security.Rule_To, when ...*security.Condition) *security.Rule {
	return &security.Rule{From: from, To: to, When: when}
}
func from(s *security.Source) []*security.Rule_From { return []*security.Rule_From{{Source: s}} }
func to(o *security.Operation) []*security.Rule_To  { return []*security.Rule_To{{Operation: o}} }

const (
	allow = security.AuthorizationPolicy_ALLOW
	deny  = security.AuthorizationPolicy_DENY
	audit = security.AuthorizationPolicy_AUDIT
)

// TestAuthorizationPolicyIstioExamples translates the policies of Istio's
// authorization documentation for the sidecar of workload web.
func TestAuthorizationPolicyIstioExamples(t *testing.T) {
	policy := func(name string) string { return RBACPolicyName(ns, name, 0) }
	for _, tc := range []struct {
		name   string
		spec   *security.AuthorizationPolicy
		action rbacv3.RBAC_Action
		want   map[string]*rbacv3.Policy
	}{
		{"allow GET from service account sleep", &security.AuthorizationPolicy{Selector: selector("app", "web"), Action: allow,
			Rules: []*security.Rule{rule(from(&security.Source{Principals: []string{"cluster.local/ns/default/sa/sleep"}}),
				to(&security.Operation{Methods: []string{"GET"}}))}},
			rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{policy("p"): {
				Permissions: []*rbacv3.Permission{pAnd(pOr(pHeader(":method", smExact("GET"))))},
				Principals:  []*rbacv3.Principal{idAnd(idOr(idName(smExact("spiffe://cluster.local/ns/default/sa/sleep"))))},
			}}},
		{"deny anything but GET and HEAD", &security.AuthorizationPolicy{Action: deny,
			Rules: []*security.Rule{rule(nil, to(&security.Operation{NotMethods: []string{"GET", "HEAD"}}))}},
			rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{policy("p"): {
				Permissions: []*rbacv3.Permission{pAnd(pNot(pOr(pHeader(":method", smExact("GET")), pHeader(":method", smExact("HEAD")))))},
				Principals:  []*rbacv3.Principal{idAny()},
			}}},
		{"allow GET when header version is v1 or v2", &security.AuthorizationPolicy{
			Rules: []*security.Rule{rule(nil, to(&security.Operation{Methods: []string{"GET"}}),
				&security.Condition{Key: "request.headers[version]", Values: []string{"v1", "v2"}})}},
			rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{policy("p"): {
				Permissions: []*rbacv3.Permission{pAnd(pOr(pHeader(":method", smExact("GET"))), pOr(pHeader("version", smExact("v1")), pHeader("version", smExact("v2"))))},
				Principals:  []*rbacv3.Principal{idAny()},
			}}},
		{"deny by ipBlocks", &security.AuthorizationPolicy{Action: deny,
			Rules: []*security.Rule{rule(from(&security.Source{IpBlocks: []string{"1.2.3.4", "5.6.7.0/24", "2001:db8::/32"}}), nil)}},
			rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{policy("p"): {
				Permissions: []*rbacv3.Permission{pAny()},
				Principals:  []*rbacv3.Principal{idAnd(idOr(idIP("1.2.3.4", 32), idIP("5.6.7.0", 24), idIP("2001:db8::", 32)))},
			}}},
		{"allow nothing", &security.AuthorizationPolicy{}, rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{}},
		{"deny all", &security.AuthorizationPolicy{Action: deny, Rules: []*security.Rule{{}}},
			rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{policy("p"): {Permissions: []*rbacv3.Permission{pAny()}, Principals: []*rbacv3.Principal{idAny()}}}},
		{"allow from namespaces, principals and claims", &security.AuthorizationPolicy{
			Rules: []*security.Rule{rule([]*security.Rule_From{
				{Source: &security.Source{Principals: []string{"cluster.local/ns/default/sa/sleep"}}},
				{Source: &security.Source{Namespaces: []string{"test"}}},
			}, to(&security.Operation{Methods: []string{"GET"}, Paths: []string{"/info*"}}),
				&security.Condition{Key: "request.auth.claims[iss]", Values: []string{"https://accounts.google.com"}})}},
			rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{policy("p"): {
				Permissions: []*rbacv3.Permission{pAnd(pOr(pHeader(":method", smExact("GET"))), pOr(pPath(smPrefix("/info"))))},
				Principals: []*rbacv3.Principal{
					idAnd(idOr(idName(smExact("spiffe://cluster.local/ns/default/sa/sleep"))), idOr(idAuthn(vOneOf(smExact("https://accounts.google.com")), "request.auth.claims", "iss"))),
					idAnd(idOr(idName(smRegex(`.*/ns/test/.*`))), idOr(idAuthn(vOneOf(smExact("https://accounts.google.com")), "request.auth.claims", "iss"))),
				},
			}}},
		{"CUSTOM without an external authorizer denies what it covers", &security.AuthorizationPolicy{Action: security.AuthorizationPolicy_CUSTOM,
			Rules: []*security.Rule{rule(nil, to(&security.Operation{Paths: []string{"/admin/*"}}))}},
			rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{policy("p"): {Permissions: []*rbacv3.Permission{pAnd(pOr(pPath(smPrefix("/admin/"))))}, Principals: []*rbacv3.Principal{idAny()}}}},
		{"audit", &security.AuthorizationPolicy{Action: audit, Rules: []*security.Rule{rule(nil, to(&security.Operation{Paths: []string{"/data"}}))}},
			rbacv3.RBAC_LOG, map[string]*rbacv3.Policy{policy("p"): {Permissions: []*rbacv3.Permission{pAnd(pOr(pPath(smExact("/data"))))}, Principals: []*rbacv3.Principal{idAny()}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := generate(t, coolapp(webService(), authz(ns, "p", tc.spec)), webMeta())
			got := httpRBAC(t, r, InboundListener)
			if len(got) != 1 || got[tc.action] == nil {
				t.Fatalf("rbac filters %v, want one with action %v", got, tc.action)
			}
			assertProto(t, "rbac", got[tc.action], &rbacv3.RBAC{Action: tc.action, Policies: tc.want})
		})
	}
}

func TestRBACValueForms(t *testing.T) {
	spec := &security.AuthorizationPolicy{Rules: []*security.Rule{rule(
		from(&security.Source{
			Principals:      []string{"*", "cluster.local/ns/a/*", "*/sa/b"},
			NotNamespaces:   []string{"prod*"},
			ServiceAccounts: []string{"other/sleep", "sleep"},
			TrustDomains:    []string{"td.example"},
			RemoteIpBlocks:  []string{"::1"},
		}),
		to(&security.Operation{Hosts: []string{"*.example.com", "API.example.com"}, Ports: []string{"8080"},
			NotPaths: []string{"*", "*.png", "/a/{*}/b/{**}"}}),
		&security.Condition{Key: "request.auth.audiences", NotValues: []string{"bad"}},
		&security.Condition{Key: "request.auth.claims[groups][admin]", Values: []string{"yes"}},
		&security.Condition{Key: "request.auth.presenter", Values: []string{"app"}},
		&security.Condition{Key: "request.auth.principal", Values: []string{"iss/sub"}},
		&security.Condition{Key: "source.ip", Values: []string{"10.0.0.0/8"}},
		&security.Condition{Key: "destination.port", Values: []string{"9080"}},
		&security.Condition{Key: "destination.ip", Values: []string{"127.0.0.1"}},
		&security.Condition{Key: "connection.sni", Values: []string{"outbound_.*"}},
	)}}
	r := generate(t, coolapp(webService(), authz(ns, "forms", spec)), webMeta())
	host := func(sm *matcher.StringMatcher) *rbacv3.Permission {
		sm.IgnoreCase = true
		return pHeader(":authority", sm)
	}
	when := []*rbacv3.Principal{
		idNot(idOr(idAuthn(vOneOf(smExact("bad")), "request.auth.audiences"))),
		idOr(idAuthn(vOneOf(smExact("yes")), "request.auth.claims", "groups", "admin")),
		idOr(idAuthn(vOneOf(smExact("app")), "request.auth.presenter")),
		idOr(idAuthn(vString(smExact("iss/sub")), "request.auth.principal")),
		idOr(idIP("10.0.0.0", 8)),
	}
	want := &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{pAnd(
			pOr(host(smSuffix(".example.com")), host(smExact("API.example.com"))),
			// The workload's port 8080 arrives on the sidecar's inbound port.
			pOr(&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 15006}}),
			pNot(pOr(pPath(smRegex(".+")), pPath(smSuffix(".png")), pPath(smRegex(`/a/`+pathGlobRegex+`/b/`+pathTextGlobRegex)))),
			pOr(&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 9080}}),
			pOr(&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: &core.CidrRange{AddressPrefix: "127.0.0.1", PrefixLen: wrapperspb.UInt32(32)}}}),
			pOr(&rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: smPrefix("outbound_.")}}),
		)},
		Principals: []*rbacv3.Principal{idAnd(append([]*rbacv3.Principal{
			idOr(idName(smRegex(".+")), idName(smPrefix("spiffe://cluster.local/ns/a/")), idName(smSuffix("/sa/b"))),
			idNot(idOr(idName(smRegex(`.*/ns/prod[^/]*/.*`)))),
			idOr(idName(smRegex(`spiffe://[^/]+/ns/other/sa/sleep`)), idName(smRegex(`spiffe://[^/]+/ns/coolapp/sa/sleep`))),
			idOr(idName(smPrefix("spiffe://td.example/"))),
			idOr(&rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: &core.CidrRange{AddressPrefix: "::1", PrefixLen: wrapperspb.UInt32(128)}}}),
		}, when...)...)},
	}
	assertProto(t, "policy", httpRBAC(t, r, InboundListener)[rbacv3.RBAC_ALLOW].GetPolicies()[RBACPolicyName(ns, "forms", 0)], want)
}

func TestHTTPFilterOrder(t *testing.T) {
	ra := objNS(config.KindRequestAuthentication, ns, "jwt", &security.RequestAuthentication{
		JwtRules: []*security.JWTRule{{Issuer: "issuer-1", Jwks: testJWKS}}})
	objs := coolapp(webService(), ra, rateLimit(ns, "rl", nil, 10, time.Second, 0),
		authz(ns, "a-allow", &security.AuthorizationPolicy{Rules: []*security.Rule{{}}}),
		authz(ns, "b-deny", &security.AuthorizationPolicy{Action: deny, Rules: []*security.Rule{rule(nil, to(&security.Operation{Paths: []string{"/admin"}}))}}),
		authz(ns, "c-audit", &security.AuthorizationPolicy{Action: audit}),
	)
	r := generate(t, objs, webMeta())
	const all = "jwt_authn,rbac,rbac,rbac,local_ratelimit,fault,cors,router"
	if got := httpFilterNames(t, r, InboundListener); got != all {
		t.Errorf("inbound filters %s, want %s", got, all)
	}
	var actions []rbacv3.RBAC_Action
	for _, f := range manager(t, r, InboundListener).GetHttpFilters() {
		if f.GetName() == "envoy.filters.http.rbac" {
			cfg := &httprbac.RBAC{}
			if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
				t.Fatal(err)
			}
			actions = append(actions, cfg.GetRules().GetAction())
		}
	}
	if len(actions) != 3 || actions[0] != rbacv3.RBAC_LOG || actions[1] != rbacv3.RBAC_DENY || actions[2] != rbacv3.RBAC_ALLOW {
		t.Errorf("rbac actions %v, want LOG DENY ALLOW", actions)
	}
	// The client side enforces nothing.
	if got := httpFilterNames(t, r, OutboundListener); got != "fault,cors,router" {
		t.Errorf("outbound filters %s", got)
	}
	// Another workload of the namespace is selected by the namespace-wide
	// policies only; nothing selects a workload elsewhere.
	other := webMeta()
	other.Namespace = "elsewhere"
	if got := httpFilterNames(t, generate(t, objs, other), InboundListener); got != "fault,cors,router" {
		t.Errorf("workload in another namespace: %s", got)
	}
}

// ingressMeta is the ingress gateway as weft up runs it, in istio-system.
func ingressMeta() *node.Meta {
	p := routerMeta()
	p.Namespace = model.RootNamespace
	p.ServiceAccount = "istio-ingressgateway-service-account"
	return p
}

// TestGatewayRequiresJWT is Istio's ingress example: a RequestAuthentication
// with jwksUri and a DENY for requests without a request principal.
func TestGatewayRequiresJWT(t *testing.T) {
	ra := objNS(config.KindRequestAuthentication, model.RootNamespace, "jwt-example", &security.RequestAuthentication{
		Selector: selector("istio", "ingressgateway"),
		JwtRules: []*security.JWTRule{{Issuer: "testing@secure.istio.io", JwksUri: "https://example.com/jwks.json"}},
	})
	ap := authz(model.RootNamespace, "frontend-ingress", &security.AuthorizationPolicy{
		Selector: selector("istio", "ingressgateway"), Action: deny,
		Rules: []*security.Rule{rule(from(&security.Source{NotRequestPrincipals: []string{"*"}}), nil)},
	})
	objs := coolapp(ra, ap)
	s := model.BuildWith(1, objs, model.Options{JWKS: func(uri string) (string, bool) { return testJWKS, uri == "https://example.com/jwks.json" }})
	r := GenerateWith(s, ingressMeta(), Options{})
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := httpFilterNames(t, r, "0.0.0.0_80"); got != "jwt_authn,rbac,fault,cors,router" {
		t.Errorf("gateway filters %s", got)
	}
	assertProto(t, "deny", httpRBAC(t, r, "0.0.0.0_80")[rbacv3.RBAC_DENY], &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		RBACPolicyName(model.RootNamespace, "frontend-ingress", 0): {
			Permissions: []*rbacv3.Permission{pAny()},
			Principals:  []*rbacv3.Principal{idAnd(idNot(idOr(idAuthn(vString(smRegex(".+")), "request.auth.principal"))))},
		}}})
	// The same objects do not select a sidecar.
	if got := httpFilterNames(t, generate(t, objs, webMeta()), InboundListener); got != "fault,cors,router" {
		t.Errorf("sidecar filters %s", got)
	}
}

func networkRBAC(t *testing.T, r *Resources, listenerName string) (names []string, rules []*rbacv3.RBAC) {
	t.Helper()
	l := r.Listeners[listenerName]
	for _, fc := range l.GetFilterChains() {
		names = names[:0]
		rules = rules[:0]
		for _, f := range fc.GetFilters() {
			names = append(names, f.GetName())
			if f.GetName() == "envoy.filters.network.rbac" {
				cfg := &netrbac.RBAC{}
				if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
					t.Fatal(err)
				}
				if cfg.GetStatPrefix() != "tcp." {
					t.Errorf("stat_prefix %q", cfg.GetStatPrefix())
				}
				rules = append(rules, cfg.GetRules())
			}
		}
	}
	return names, rules
}

func TestNetworkRBAC(t *testing.T) {
	objs := coolapp(webService(),
		// ALLOW with an HTTP-only field: the rule goes, the filter stays.
		authz(ns, "allow-get", &security.AuthorizationPolicy{Rules: []*security.Rule{
			rule(nil, to(&security.Operation{Methods: []string{"GET"}})),
			rule(from(&security.Source{Namespaces: []string{"trusted"}}), to(&security.Operation{Ports: []string{"8080"}})),
		}}),
		// DENY with HTTP-only fields: they go, the rest stays.
		authz(ns, "deny-post", &security.AuthorizationPolicy{Action: deny, Rules: []*security.Rule{
			rule(from(&security.Source{IpBlocks: []string{"10.0.0.0/8"}, RequestPrincipals: []string{"*"}}),
				to(&security.Operation{Methods: []string{"POST"}}), &security.Condition{Key: "request.headers[x]", Values: []string{"1"}}),
		}}),
		authz(ns, "audit", &security.AuthorizationPolicy{Action: audit, Rules: []*security.Rule{{}}}),
	)
	p := webMeta()
	p.InboundProtocol = "TCP"
	names, rules := networkRBAC(t, generate(t, objs, p), InboundListener)
	if strings.Join(names, ",") != "envoy.filters.network.rbac,envoy.filters.network.rbac,envoy.filters.network.tcp_proxy" {
		t.Fatalf("filters %v", names)
	}
	assertProto(t, "deny", rules[0], &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		RBACPolicyName(ns, "deny-post", 0): {Permissions: []*rbacv3.Permission{pAny()}, Principals: []*rbacv3.Principal{idAnd(idOr(idIP("10.0.0.0", 8)))}},
	}})
	assertProto(t, "allow", rules[1], &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		RBACPolicyName(ns, "allow-get", 1): {
			Permissions: []*rbacv3.Permission{pAnd(pOr(&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: 15006}}))},
			Principals:  []*rbacv3.Principal{idAnd(idOr(idName(smRegex(".*/ns/trusted/.*"))))},
		},
	}})
	// A gateway's TCP listener gets the same treatment.
	gw := authz(model.RootNamespace, "gw-deny", &security.AuthorizationPolicy{Selector: selector("istio", "ingressgateway"), Action: deny, Rules: []*security.Rule{{}}})
	r := generate(t, coolapp(shop(), tcpGateway(9000), tcpVS("shop-tcp", &networking.TCPRoute{Route: []*networking.RouteDestination{tcpDest("shop", "", 9090, 0)}}), gw), ingressMeta())
	names, rules = networkRBAC(t, r, "0.0.0.0_9000")
	if strings.Join(names, ",") != "envoy.filters.network.rbac,envoy.filters.network.tcp_proxy" || rules[0].GetAction() != rbacv3.RBAC_DENY {
		t.Errorf("gateway TCP filters %v %v", names, rules)
	}
	if got := httpFilterNames(t, r, "0.0.0.0_80"); got != "rbac,fault,cors,router" {
		t.Errorf("gateway HTTP filters %s", got)
	}
}

func TestAuthorizationPolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		rule *security.Rule
		want string
	}{
		{rule(from(&security.Source{IpBlocks: []string{"300.1.1.1"}}), nil), "rules[0].from[0].source.ipBlocks[0]"},
		{rule(nil, to(&security.Operation{Ports: []string{"http"}})), "rules[0].to[0].operation.ports[0]"},
		{rule(nil, nil, &security.Condition{Key: "request.size", Values: []string{"1"}}), "rules[0].when[0]: key: \"request.size\""},
		{rule(nil, nil, &security.Condition{Key: "request.headers[]", Values: []string{"1"}}), "request.headers[NAME]"},
		{rule(nil, nil, &security.Condition{Key: "source.ip"}), "needs values or notValues"},
		{rule(nil, to(&security.Operation{Paths: []string{"/a/{**}/{*}"}})), "paths[0]: path \"/a/{**}/{*}\": {**} must be the last operator"},
		{rule(nil, to(&security.Operation{NotPaths: []string{"/foo/{*}.txt"}})), "notPaths[0]: path \"/foo/{*}.txt\": a template operator must be a whole segment"},
		{rule(nil, to(&security.Operation{Paths: []string{"/*/baz/{*}"}})), "'*' is not allowed outside {*} or {**}"},
		{rule(from(&security.Source{ServiceAccounts: []string{"a/b/c"}}), nil), "serviceAccounts[0]"},
	} {
		o := authz(ns, "bad", &security.AuthorizationPolicy{Rules: []*security.Rule{tc.rule}})
		err := Generate(model.Build(1, coolapp(webService(), o)), webMeta()).Validate()
		if err == nil || !strings.Contains(err.Error(), "AuthorizationPolicy coolapp/bad: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: Validate = %v, want it to name %q", tc.rule, err, tc.want)
		}
	}
}
