package rbac

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/filter"
)

// Builders for the messages xds/translate emits.

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func prefix(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: s}}
}

func regex(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: s}}}
}

func anyPerm() *rbacv3.Permission { return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}} }
func anyID() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func principal(sm *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: sm}}}
}

func header(name string, sm *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func headerPerm(name string, sm *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: header(name, sm)}}
}

func pathPerm(sm *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: sm}}}}
}

func portPerm(p uint32) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: p}}
}

func andPerms(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func notPerm(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func cidr(a string, n uint32) *corev3.CidrRange {
	return &corev3.CidrRange{AddressPrefix: a, PrefixLen: wrapperspb.UInt32(n)}
}

func metaID(path []string, v *matcherv3.ValueMatcher) *rbacv3.Principal {
	var segs []*matcherv3.MetadataMatcher_PathSegment
	for _, p := range path {
		segs = append(segs, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: p}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: "istio_authn", Path: segs, Value: v,
	}}}
}

func strValue(sm *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: sm}}
}

func listValue(sm *matcherv3.StringMatcher) *matcherv3.ValueMatcher {
	return &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: strValue(sm)}}}}
}

func rules(action rbacv3.RBAC_Action, policies map[string]*rbacv3.Policy) *rbacv3.RBAC {
	return &rbacv3.RBAC{Action: action, Policies: policies}
}

func httpFilter(t *testing.T, r *rbacv3.RBAC, o filter.HCMOptions) *HTTP {
	t.Helper()
	h, err := ParseMessage(&httprbacv3.RBAC{Rules: r}, o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// request builds a request from peer (a SPIFFE ID, "" for plaintext) at
// remote to the listener at local.
func request(method, target, peer, remote, local string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = remote
	if local != "" {
		a := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(local))
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, a))
	}
	if peer != "" {
		u, _ := url.Parse(peer)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{u}}}}
	}
	return r
}

// run passes r through chain, returning the status (0 when let through).
func run(chain filter.Chain, r *http.Request) (int, *httptest.ResponseRecorder, *filter.Exchange) {
	w := httptest.NewRecorder()
	x := filter.NewExchange(w, r)
	if x.Run(chain) {
		return 0, w, x
	}
	return w.Code, w, x
}

const sleepID = "spiffe://cluster.local/ns/default/sa/sleep"

func TestAllowAndDeny(t *testing.T) {
	// Istio: ALLOW sleep to GET /api/*; DENY anything to /api/admin*.
	allow := httpFilter(t, rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"ns[default]-policy[allow-sleep]-rule[0]": {
			Permissions: []*rbacv3.Permission{andPerms(headerPerm(":method", exact("GET")), pathPerm(prefix("/api/")))},
			Principals:  []*rbacv3.Principal{principal(exact(sleepID))},
		},
	}), filter.HCMOptions{})
	deny := httpFilter(t, rules(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{
		"ns[default]-policy[no-admin]-rule[0]": {Permissions: []*rbacv3.Permission{pathPerm(prefix("/api/admin"))}, Principals: []*rbacv3.Principal{anyID()}},
	}), filter.HCMOptions{})
	chain := filter.Chain{deny, allow}
	for _, c := range []struct {
		name, method, path, peer string
		want                     int
	}{
		{"allowed", "GET", "/api/items", sleepID, 0},
		{"wrong method", "POST", "/api/items", sleepID, 403},
		{"wrong identity", "GET", "/api/items", "spiffe://cluster.local/ns/default/sa/other", 403},
		{"plaintext", "GET", "/api/items", "", 403},
		{"deny beats allow", "GET", "/api/admin/users", sleepID, 403},
		{"normalized path denied", "GET", "/api/items/../admin/users", sleepID, 403},
		{"doubled slash denied", "GET", "/api//admin", sleepID, 403},
		{"encoded path denied", "GET", "/api/%61dmin", sleepID, 403},
	} {
		code, w, x := run(chain, request(c.method, c.path, c.peer, "10.0.0.1:4000", "127.0.0.1:15006"))
		if code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, code, c.want)
			continue
		}
		if code == 403 {
			if w.Body.String() != DeniedBody || x.Flags&filter.RBACDenied == 0 {
				t.Errorf("%s: body %q flags %v", c.name, w.Body, x.Flags)
			}
		}
	}
	code, _, x := run(chain, request("GET", "/api/admin", sleepID, "10.0.0.1:4000", ""))
	if code != 403 || x.Metadata[PolicyNamespace][PolicyKey] != "ns[default]-policy[no-admin]-rule[0]" {
		t.Errorf("deny policy metadata %v", x.Metadata)
	}
}

func TestAllowNothing(t *testing.T) {
	// An ALLOW policy without rules: the filter exists with no policy, so
	// nothing is allowed.
	allow := httpFilter(t, rules(rbacv3.RBAC_ALLOW, nil), filter.HCMOptions{})
	if code, _, _ := run(filter.Chain{allow}, request("GET", "/", sleepID, "10.0.0.1:1", "")); code != 403 {
		t.Errorf("allow-nothing let a request through (%d)", code)
	}
	deny := httpFilter(t, rules(rbacv3.RBAC_DENY, nil), filter.HCMOptions{})
	if code, _, _ := run(filter.Chain{deny}, request("GET", "/", "", "10.0.0.1:1", "")); code != 0 {
		t.Errorf("an empty DENY denied (%d)", code)
	}
	if h, err := ParseMessage(&httprbacv3.RBAC{}, filter.HCMOptions{}); h != nil || err != nil {
		t.Errorf("RBAC without rules = %v, %v; want nil, nil", h, err)
	}
}

func TestPrincipalsAndConditions(t *testing.T) {
	pol := func(ids ...*rbacv3.Principal) *HTTP {
		return httpFilter(t, rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
			"p": {Permissions: []*rbacv3.Permission{anyPerm()}, Principals: ids},
		}), filter.HCMOptions{})
	}
	ns := pol(principal(regex(`.*/ns/default/.*`)))
	if code, _, _ := run(filter.Chain{ns}, request("GET", "/", sleepID, "1.1.1.1:1", "")); code != 0 {
		t.Error("namespace match denied")
	}
	if code, _, _ := run(filter.Chain{ns}, request("GET", "/", "spiffe://cluster.local/ns/prod/sa/x", "1.1.1.1:1", "")); code != 403 {
		t.Error("other namespace allowed")
	}
	anyAuth := pol(&rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{}}})
	if code, _, _ := run(filter.Chain{anyAuth}, request("GET", "/", "", "1.1.1.1:1", "")); code != 403 {
		t.Error("authenticated{} matched a plaintext request")
	}

	ip := pol(&rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr("10.0.0.0", 8)}})
	if code, _, _ := run(filter.Chain{ip}, request("GET", "/", "", "10.9.9.9:1", "")); code != 0 {
		t.Error("ipBlocks match denied")
	}
	if code, _, _ := run(filter.Chain{ip}, request("GET", "/", "", "[::ffff:10.9.9.9]:1", "")); code != 0 {
		t.Error("IPv4-mapped peer not matched by an IPv4 block")
	}
	if code, _, _ := run(filter.Chain{ip}, request("GET", "/", "", "192.168.1.1:1", "")); code != 403 {
		t.Error("ipBlocks mismatch allowed")
	}

	remote := &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr("203.0.113.7", 32)}}
	r := request("GET", "/", "", "10.0.0.1:1", "")
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	if code, _, _ := run(filter.Chain{pol(remote)}, r); code != 0 {
		t.Error("remoteIpBlocks from x-forwarded-for denied")
	}
	gateway := httpFilter(t, rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{anyPerm()}, Principals: []*rbacv3.Principal{remote}},
	}), filter.HCMOptions{UseRemoteAddress: true})
	if code, _, _ := run(filter.Chain{gateway}, r); code != 403 {
		t.Error("use_remote_address: a client's x-forwarded-for was trusted")
	}

	// requestPrincipals and claims read istio_authn metadata.
	reqP := pol(metaID([]string{"request.auth.principal"}, strValue(exact("https://issuer/alice"))))
	claim := pol(metaID([]string{"request.auth.claims", "groups"}, listValue(exact("admin"))))
	r = request("GET", "/", "", "1.1.1.1:1", "")
	if code, _, _ := run(filter.Chain{reqP}, r); code != 403 {
		t.Error("requestPrincipals matched without a token")
	}
	w := httptest.NewRecorder()
	x := filter.NewExchange(w, r)
	x.SetMetadata("istio_authn", "request.auth.principal", "https://issuer/alice")
	x.SetMetadata("istio_authn", "request.auth.claims", map[string]any{"groups": []any{"dev", "admin"}, "sub": "alice"})
	if !x.Run(filter.Chain{reqP}) {
		t.Error("requestPrincipals denied")
	}
	x = filter.NewExchange(w, r)
	x.SetMetadata("istio_authn", "request.auth.claims", map[string]any{"groups": "admin"})
	if !x.Run(filter.Chain{claim}) {
		t.Error("list_match did not match a single-valued claim")
	}
	x = filter.NewExchange(w, r)
	x.SetMetadata("istio_authn", "request.auth.claims", map[string]any{"groups": []any{"dev"}})
	if x.Run(filter.Chain{claim}) {
		t.Error("list_match matched a list without the value")
	}

	not := pol(&rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: principal(exact(sleepID))}})
	if code, _, _ := run(filter.Chain{not}, request("GET", "/", sleepID, "1.1.1.1:1", "")); code != 403 {
		t.Error("notPrincipals allowed the principal")
	}
}

func TestPermissions(t *testing.T) {
	pol := func(ps ...*rbacv3.Permission) *HTTP {
		return httpFilter(t, rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
			"p": {Permissions: ps, Principals: []*rbacv3.Principal{anyID()}},
		}), filter.HCMOptions{})
	}
	port := pol(portPerm(9080))
	if code, _, _ := run(filter.Chain{port}, request("GET", "/", "", "1.1.1.1:1", "127.0.0.1:9080")); code != 0 {
		t.Error("destination port match denied")
	}
	if code, _, _ := run(filter.Chain{port}, request("GET", "/", "", "1.1.1.1:1", "127.0.0.1:9090")); code != 403 {
		t.Error("other port allowed")
	}
	host := pol(headerPerm(":authority", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "bookinfo.com"}, IgnoreCase: true}))
	r := request("GET", "http://BookInfo.com/", "", "1.1.1.1:1", "")
	if code, _, _ := run(filter.Chain{host}, r); code != 0 {
		t.Error("hosts match (ignoring case) denied")
	}
	notPath := pol(notPerm(pathPerm(exact("/private"))))
	if code, _, _ := run(filter.Chain{notPath}, request("GET", "/private?x=1", "", "1.1.1.1:1", "")); code != 403 {
		t.Error("notPaths allowed the path (the query must not count)")
	}
	dst := pol(&rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidr("127.0.0.0", 8)}})
	if code, _, _ := run(filter.Chain{dst}, request("GET", "/", "", "1.1.1.1:1", "127.0.0.1:80")); code != 0 {
		t.Error("destination.ip match denied")
	}
	multi := pol(headerPerm("x-group", exact("a,b")))
	r = request("GET", "/", "", "1.1.1.1:1", "")
	r.Header.Add("X-Group", "a")
	r.Header.Add("X-Group", "b")
	if code, _, _ := run(filter.Chain{multi}, r); code != 0 {
		t.Error("a repeated header is not matched joined with commas")
	}
}

func TestLog(t *testing.T) {
	log := httpFilter(t, rules(rbacv3.RBAC_LOG, map[string]*rbacv3.Policy{
		"audit": {Permissions: []*rbacv3.Permission{pathPerm(prefix("/audit"))}, Principals: []*rbacv3.Principal{anyID()}},
	}), filter.HCMOptions{})
	code, _, x := run(filter.Chain{log}, request("GET", "/audit/x", "", "1.1.1.1:1", ""))
	if code != 0 || x.Metadata[LogNamespace][LogHintKey] != true {
		t.Errorf("LOG: code %d metadata %v", code, x.Metadata)
	}
	code, _, x = run(filter.Chain{log}, request("GET", "/other", "", "1.1.1.1:1", ""))
	if code != 0 || x.Metadata != nil {
		t.Errorf("LOG on a non-matching request: code %d metadata %v", code, x.Metadata)
	}
}

func TestGRPCDenied(t *testing.T) {
	deny := httpFilter(t, rules(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{
		"all": {Permissions: []*rbacv3.Permission{anyPerm()}, Principals: []*rbacv3.Principal{anyID()}},
	}), filter.HCMOptions{})
	r := request("POST", "/pkg.Svc/Call", "", "1.1.1.1:1", "")
	r.Header.Set("Content-Type", "application/grpc")
	_, w, x := run(filter.Chain{deny}, r)
	if w.Code != 200 || w.Header().Get("Grpc-Status") != "7" || x.Flags&filter.RBACDenied == 0 {
		t.Errorf("gRPC deny: %d %v flags %v", w.Code, w.Header(), x.Flags)
	}
}

func TestNetwork(t *testing.T) {
	allow := func(m *rbacv3.RBAC) *Network {
		n, err := ParseNetworkMessage(&netrbacv3.RBAC{StatPrefix: "tcp.", Rules: m})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := allow(rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{portPerm(5432)}, Principals: []*rbacv3.Principal{principal(exact(sleepID))}},
	}))
	cert := &x509.Certificate{URIs: []*url.URL{{Scheme: "spiffe", Host: "cluster.local", Path: "/ns/default/sa/sleep"}}}
	ok := &filter.ConnInfo{Cert: cert, Principal: sleepID, Local: netip.MustParseAddrPort("127.0.0.1:5432")}
	if !n.Allow(ok) {
		t.Error("allowed connection refused")
	}
	if n.Allow(&filter.ConnInfo{Local: netip.MustParseAddrPort("127.0.0.1:5432")}) {
		t.Error("plaintext connection allowed")
	}
	_, err := ParseNetworkMessage(&netrbacv3.RBAC{StatPrefix: "tcp.", Rules: rules(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{headerPerm(":method", exact("GET"))}, Principals: []*rbacv3.Principal{anyID()}},
	})})
	if err == nil || !strings.Contains(err.Error(), `rules.policies["p"].permissions[0].header: an HTTP attribute`) {
		t.Errorf("HTTP rule in a network filter: %v", err)
	}
	if _, err := ParseNetworkMessage(&netrbacv3.RBAC{Rules: rules(rbacv3.RBAC_DENY, nil)}); err == nil || !strings.Contains(err.Error(), "stat_prefix") {
		t.Errorf("missing stat_prefix: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	deep := anyPerm()
	for range maxDepth + 2 {
		deep = notPerm(deep)
	}
	for _, c := range []struct {
		m    *httprbacv3.RBAC
		want string
	}{
		{&httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {Principals: []*rbacv3.Principal{anyID()}}})},
			`rules.policies["p"].permissions: at least one required`},
		{&httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {Permissions: []*rbacv3.Permission{anyPerm()}}})},
			`rules.policies["p"].principals: at least one required`},
		{&httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{Name: "x"}}}},
			Principals:  []*rbacv3.Principal{anyID()}}})},
			`rules.policies["p"].permissions[0].uri_template: unsupported field`},
		{&httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {
			Permissions: []*rbacv3.Permission{anyPerm()},
			Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr("10.0.0.0", 33)}}}}})},
			`rules.policies["p"].principals[0].direct_remote_ip.prefix_len: 33 exceeds 32 bits`},
		{&httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {
			Permissions: []*rbacv3.Permission{pathPerm(regex("(["))},
			Principals:  []*rbacv3.Principal{anyID()}}})},
			`rules.policies["p"].permissions[0].url_path.path.safe_regex.regex:`},
		{&httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {
			Permissions: []*rbacv3.Permission{andPerms()},
			Principals:  []*rbacv3.Principal{anyID()}}})},
			`rules.policies["p"].permissions[0].and_rules.rules: at least one required`},
		{&httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {
			Permissions: []*rbacv3.Permission{deep}, Principals: []*rbacv3.Principal{anyID()}}})},
			`nested deeper than 64`},
		{&httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_ALLOW, nil), ShadowRules: rules(rbacv3.RBAC_ALLOW, nil)}, `shadow_rules: unsupported field`},
	} {
		_, err := ParseMessage(c.m, filter.HCMOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to contain %q", err, c.want)
		}
	}
	if _, err := Parse(&anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC", Value: []byte{0xff}}, filter.HCMOptions{}); err == nil || !strings.HasPrefix(err.Error(), "typed_config:") {
		t.Errorf("garbage config: %v", err)
	}
}

func BenchmarkAllowPrincipal(b *testing.B) {
	h, err := ParseMessage(&httprbacv3.RBAC{Rules: rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{
		"p": {Permissions: []*rbacv3.Permission{andPerms(headerPerm(":method", exact("GET")), pathPerm(prefix("/api/")))},
			Principals: []*rbacv3.Principal{principal(exact(sleepID))}},
	})}, filter.HCMOptions{})
	if err != nil {
		b.Fatal(err)
	}
	r := request("GET", "/api/items", sleepID, "10.0.0.1:1", "127.0.0.1:80")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		x := filter.NewExchange(w, r)
		if !h.Request(x) {
			b.Fatal("denied")
		}
	}
}
