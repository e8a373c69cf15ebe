package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	security "istio.io/api/security/v1beta1"

	maistrav1 "github.com/weft-mesh/weft/config/apis/maistra/v1"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
)

// decodeKind decodes one object of kind, written with the kind's preferred
// apiVersion and the given spec (YAML indented by two spaces).
func decodeKind(t *testing.T, kind Kind, spec string) ([]*Object, ErrorList) {
	t.Helper()
	info, ok := LookupKind(string(kind))
	if !ok {
		t.Fatalf("unknown kind %s", kind)
	}
	in := "apiVersion: " + info.PreferredAPIVersion() + "\nkind: " + string(kind) + "\nmetadata: {name: x, namespace: ns}\nspec:\n" + spec
	objs, err := Decode("s.yaml", strings.NewReader(in))
	if err == nil {
		return objs, nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Decode: %v", err)
	}
	return objs, list
}

// expectErrorAt checks that errs has an error at field whose message
// contains msg, placed in decodeKind's object (kind, ns/x, document 1 of
// s.yaml).
func expectErrorAt(t *testing.T, errs ErrorList, kind Kind, field, msg string) {
	t.Helper()
	for _, e := range errs {
		if e.Field == field && strings.Contains(e.Msg, msg) {
			if e.Kind != kind || e.Namespace != "ns" || e.Name != "x" || e.Doc != 1 || e.Source != "s.yaml" {
				t.Errorf("context = %+v", e)
			}
			return
		}
	}
	t.Errorf("no error at %q containing %q; got:\n%v", field, msg, errs)
}

func TestSecurityKindsLookup(t *testing.T) {
	for name, want := range map[string]Kind{
		"pa": KindPeerAuthentication, "peerauthentications": KindPeerAuthentication,
		"ap": KindAuthorizationPolicy, "authorizationpolicy": KindAuthorizationPolicy, "AuthorizationPolicies": KindAuthorizationPolicy,
		"ra": KindRequestAuthentication, "requestauthentications": KindRequestAuthentication,
		"smmr": KindServiceMeshMemberRoll, "servicemeshmemberroll": KindServiceMeshMemberRoll,
		"rl": KindRateLimit, "ratelimits": KindRateLimit, "RateLimit": KindRateLimit,
	} {
		if info, ok := LookupKind(name); !ok || info.Kind != want {
			t.Errorf("LookupKind(%q) = %v, %v; want %s", name, info.Kind, ok, want)
		}
	}
}

func TestSecurityDecodeAPIVersions(t *testing.T) {
	for _, tt := range []struct {
		apiVersion, kind string
		ok               bool
	}{
		{"security.istio.io/v1", "PeerAuthentication", true},
		{"security.istio.io/v1beta1", "AuthorizationPolicy", true},
		{"security.istio.io/v1alpha3", "RequestAuthentication", false},
		{"networking.istio.io/v1", "PeerAuthentication", false},
		{"maistra.io/v1", "ServiceMeshMemberRoll", true},
		{"maistra.io/v2", "ServiceMeshMemberRoll", false},
		{"weft.io/v1alpha1", "RateLimit", true},
		{"weft.io/v1", "RateLimit", false},
	} {
		spec := "{}"
		if tt.kind == "RateLimit" {
			spec = "{limit: {requests: 1, per: 1s}}"
		}
		in := "apiVersion: " + tt.apiVersion + "\nkind: " + tt.kind + "\nmetadata: {name: x}\nspec: " + spec + "\n"
		_, err := Decode("v.yaml", strings.NewReader(in))
		if (err == nil) != tt.ok {
			t.Errorf("%s %s: err = %v, want ok=%v", tt.apiVersion, tt.kind, err, tt.ok)
		}
	}
}

// TestSecurityDecodeValues checks the decoded messages carry what the YAML
// says, with Istio's field spellings and Go-style durations.
func TestSecurityDecodeValues(t *testing.T) {
	objs, errs := decodeKind(t, KindRateLimit, "  selector: {matchLabels: {app: shop}}\n  limit: {requests: 20, per: 100ms, burst: 40}\n  routes: [api, static]\n")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rl := objs[0].Spec.(*weftv1alpha1.RateLimit)
	if rl.GetSelector().GetMatchLabels()["app"] != "shop" || rl.GetLimit().GetRequests() != 20 || rl.GetLimit().GetBurst() != 40 ||
		rl.GetLimit().GetPer().AsDuration() != 100*time.Millisecond || len(rl.GetRoutes()) != 2 {
		t.Errorf("RateLimit = %v", rl)
	}

	objs, errs = decodeKind(t, KindServiceMeshMemberRoll, "  members: [shop, bookinfo]\n")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if m := objs[0].Spec.(*maistrav1.ServiceMeshMemberRoll).GetMembers(); len(m) != 2 || m[1] != "bookinfo" {
		t.Errorf("members = %v", m)
	}

	objs, errs = decodeKind(t, KindPeerAuthentication, "  selector: {matchLabels: {app: db}}\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	pa := objs[0].Spec.(*security.PeerAuthentication)
	if pa.GetMtls().GetMode() != security.PeerAuthentication_MutualTLS_STRICT || pa.GetPortLevelMtls()[8080].GetMode() != security.PeerAuthentication_MutualTLS_DISABLE {
		t.Errorf("PeerAuthentication = %v", pa)
	}

	// Round trip through the encoder: camelCase names, apiVersion v1.
	out, err := Marshal(objs[0], FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "apiVersion: security.istio.io/v1\n") || !strings.Contains(string(out), "portLevelMtls:") || !strings.Contains(string(out), "matchLabels:") {
		t.Errorf("encoded:\n%s", out)
	}
	back, err := Decode("again", strings.NewReader(string(out)))
	if err != nil || len(back) != 1 || !Equal(back[0], objs[0]) {
		t.Errorf("round trip: %v\n%s", err, out)
	}
}

func TestSecurityAcceptsValid(t *testing.T) {
	tests := []struct {
		kind Kind
		spec string
	}{
		{KindPeerAuthentication, "  mtls: {mode: PERMISSIVE}\n"},
		{KindPeerAuthentication, "  selector: {matchLabels: {app: a, example.com/tier: back_end}}\n  mtls: {mode: UNSET}\n  portLevelMtls: {80: {mode: STRICT}, 9000: {}}\n"},
		{KindAuthorizationPolicy, "  {}\n"},
		{KindAuthorizationPolicy, `  selector: {matchLabels: {app: httpbin, version: v1}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/default/sa/sleep", "*/sa/admin", "cluster.local/*", "*"]}
    - source: {namespaces: [test, "dev-*", "*-prod"], notIpBlocks: [10.0.0.0/8, "2001:db8::1"]}
    - source: {requestPrincipals: ["issuer.example.com/*"], remoteIpBlocks: [1.2.3.4]}
    to:
    - operation: {methods: [GET, "*"], paths: ["/info*", "*.html", /exact, "*"], ports: ["8080"], hosts: ["*.example.com", "Shop.Example.com"]}
    - operation: {notPaths: [/admin], notPorts: ["9090"], notMethods: [DELETE]}
    - operation: {paths: ["/foo/{*}", "/foo/{*}/bar/{**}", "/files/{**}", "/dir/{**}/"], notPaths: ["/v1/{*}/admin"]}
  - from:
    - source: {serviceAccounts: [default/sleep, sleep, team-a/build.bot], ipBlocks: [10.0.0.0/8]}
    - source: {notServiceAccounts: [other/web]}
    when:
    - {key: "request.auth.claims[iss]", values: ["https://accounts.google.com"]}
    - {key: "request.auth.claims[groups][team]", notValues: [guests]}
    - {key: "request.headers[User-Agent]", values: ["curl/*"]}
    - {key: source.ip, values: [10.1.0.0/16]}
    - {key: remote.ip, notValues: ["::1"]}
    - {key: destination.port, values: ["80", "443"]}
    - {key: destination.ip, values: [127.0.0.1]}
    - {key: source.namespace, values: [default]}
    - {key: source.principal, values: [cluster.local/ns/default/sa/x]}
    - {key: request.auth.principal, values: ["iss/sub"]}
    - {key: request.auth.audiences, values: [web]}
    - {key: request.auth.presenter, values: [app]}
    - {key: connection.sni, values: ["*.local"]}
`},
		{KindAuthorizationPolicy, "  action: DENY\n  rules: [{}]\n"},
		{KindAuthorizationPolicy, "  action: AUDIT\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n"},
		{KindRequestAuthentication, `  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: testing@secure.istio.io
    jwksUri: https://raw.githubusercontent.com/istio/istio/release-1.20/security/tools/jwt/samples/jwks.json
    audiences: [web, api]
    forwardOriginalToken: true
    fromHeaders: [{name: x-jwt-assertion, prefix: "Bearer "}]
    fromParams: [my_token]
    outputClaimToHeaders: [{header: x-jwt-group, claim: group}]
  - issuer: cookie
    jwks: '{"keys":[]}'
    fromCookies: [session, __Host-token]
    outputPayloadToHeader: x-jwt-payload
  - issuer: other
    jwks: '{"keys":[{"kty":"RSA","e":"AQAB","n":"xyz"}]}'
  - issuer: local
    jwksUri: http://127.0.0.1:8000/jwks
`},
		{KindServiceMeshMemberRoll, "  members: [bookinfo, shop-2]\n"},
		{KindServiceMeshMemberRoll, "  members: ['*']\n"},
		{KindServiceMeshMemberRoll, "  {}\n"},
		{KindRateLimit, "  limit: {requests: 100, per: 1s}\n"},
		{KindRateLimit, "  selector: {matchLabels: {app: a}}\n  limit: {requests: 5, per: 1ms, burst: 5}\n  routes: [r1]\n"},
	}
	for _, tt := range tests {
		if _, errs := decodeKind(t, tt.kind, tt.spec); len(errs) > 0 {
			t.Errorf("%s: unexpected errors:\n%v\nspec:\n%s", tt.kind, errs, tt.spec)
		}
	}
}

func TestSecurityErrors(t *testing.T) {
	const rule = "  rules:\n  - "
	tests := []struct {
		name  string
		kind  Kind
		spec  string
		field string
		msg   string
	}{
		{"pa mode", KindPeerAuthentication, "  mtls: {mode: STRICTER}\n", "spec.mtls.mode", `unknown value "STRICTER"`},
		{"pa port level needs selector", KindPeerAuthentication, "  portLevelMtls: {80: {mode: DISABLE}}\n", "spec.portLevelMtls", "requires a selector"},
		{"pa port level zero", KindPeerAuthentication, "  selector: {matchLabels: {a: b}}\n  portLevelMtls: {0: {mode: DISABLE}}\n", "spec.portLevelMtls[0]", "between 1 and 65535"},
		{"pa port level big", KindPeerAuthentication, "  selector: {matchLabels: {a: b}}\n  portLevelMtls: {70000: {mode: DISABLE}}\n", "spec.portLevelMtls[70000]", "between 1 and 65535"},
		{"pa port level key", KindPeerAuthentication, "  selector: {matchLabels: {a: b}}\n  portLevelMtls: {http: {mode: DISABLE}}\n", "spec.portLevelMtls[http]", "must be an integer"},
		{"pa selector wildcard", KindPeerAuthentication, "  selector: {matchLabels: {app: '*'}}\n", "spec.selector.matchLabels[app]", "wildcards are not supported"},
		{"pa selector key", KindPeerAuthentication, "  selector: {matchLabels: {'-app': x}}\n", "spec.selector.matchLabels[-app]", "invalid label name"},
		{"pa selector value", KindPeerAuthentication, "  selector: {matchLabels: {app: 'a b'}}\n", "spec.selector.matchLabels[app]", "invalid label value"},

		{"ap custom", KindAuthorizationPolicy, "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n", "spec.action", "CUSTOM (external authorization) is not supported"},
		{"ap action", KindAuthorizationPolicy, "  action: PERMIT\n", "spec.action", `unknown value "PERMIT"`},
		{"ap provider", KindAuthorizationPolicy, "  action: DENY\n  provider: {name: ext}\n  rules: [{}]\n", "spec.provider", "only used with action CUSTOM"},
		{"ap target ref", KindAuthorizationPolicy, "  targetRef: {kind: Gateway, name: gw}\n", "spec.targetRef", "not supported"},
		{"ap targetRefs", KindAuthorizationPolicy, "  targetRefs: [{kind: Service, name: s}]\n", "spec.targetRefs", "not supported"},
		{"ap empty source", KindAuthorizationPolicy, rule + "from: [{source: {}}]\n", "spec.rules[0].from[0].source", "at least one field"},
		{"ap no source", KindAuthorizationPolicy, rule + "from: [{}]\n", "spec.rules[0].from[0].source", "required"},
		{"ap empty operation", KindAuthorizationPolicy, rule + "to: [{operation: {}}]\n", "spec.rules[0].to[0].operation", "at least one field"},
		{"ap no operation", KindAuthorizationPolicy, rule + "to: [{}]\n", "spec.rules[0].to[0].operation", "required"},
		{"ap principal middle", KindAuthorizationPolicy, rule + "from: [{source: {principals: [ok, 'cluster.local/*/sa/x']}}]\n", "spec.rules[0].from[0].source.principals[1]", "only as the first or the last character"},
		{"ap principal both ends", KindAuthorizationPolicy, rule + "from: [{source: {notPrincipals: ['*x*']}}]\n", "spec.rules[0].from[0].source.notPrincipals[0]", "only as the first or the last"},
		{"ap principal spiffe", KindAuthorizationPolicy, rule + "from: [{source: {principals: ['spiffe://cluster.local/ns/a/sa/b']}}]\n", "spec.rules[0].from[0].source.principals[0]", "leave out spiffe://"},
		{"ap principal empty", KindAuthorizationPolicy, rule + "from: [{source: {principals: ['']}}]\n", "spec.rules[0].from[0].source.principals[0]", "must not be empty"},
		{"ap namespace", KindAuthorizationPolicy, rule + "from: [{source: {namespaces: [Prod]}}]\n", "spec.rules[0].from[0].source.namespaces[0]", "invalid namespace"},
		{"ap ip", KindAuthorizationPolicy, rule + "from: [{source: {ipBlocks: [10.0.0.0/33]}}]\n", "spec.rules[0].from[0].source.ipBlocks[0]", "invalid IP address or CIDR"},
		{"ap remote ip", KindAuthorizationPolicy, rule + "from: [{source: {notRemoteIpBlocks: [host.example]}}]\n", "spec.rules[0].from[0].source.notRemoteIpBlocks[0]", "invalid IP address"},
		{"ap service account wildcard", KindAuthorizationPolicy, rule + "from: [{source: {serviceAccounts: [default/sleep, 'default/*']}}]\n", "spec.rules[0].from[0].source.serviceAccounts[1]", "wildcards are not allowed"},
		{"ap service account three parts", KindAuthorizationPolicy, rule + "from: [{source: {notServiceAccounts: [a/b/c]}}]\n", "spec.rules[0].from[0].source.notServiceAccounts[0]", `name "b/c" must be`},
		{"ap service account namespace", KindAuthorizationPolicy, rule + "from: [{source: {serviceAccounts: [Default/sleep]}}]\n", "spec.rules[0].from[0].source.serviceAccounts[0]", `namespace "Default"`},
		{"ap service account empty ns", KindAuthorizationPolicy, rule + "from: [{source: {serviceAccounts: [/sleep]}}]\n", "spec.rules[0].from[0].source.serviceAccounts[0]", `namespace ""`},
		{"ap service account name", KindAuthorizationPolicy, rule + "from: [{source: {serviceAccounts: ['default/']}}]\n", "spec.rules[0].from[0].source.serviceAccounts[0]", `name "" must be`},
		{"ap service account empty", KindAuthorizationPolicy, rule + "from: [{source: {serviceAccounts: ['']}}]\n", "spec.rules[0].from[0].source.serviceAccounts[0]", "must not be empty"},
		{"ap service accounts with principals", KindAuthorizationPolicy, rule + "from: [{source: {serviceAccounts: [a/b], principals: [x]}}]\n", "spec.rules[0].from[0].source.principals", "cannot be set together with serviceAccounts"},
		{"ap service accounts with namespaces", KindAuthorizationPolicy, rule + "from: [{source: {notServiceAccounts: [b], notNamespaces: [x]}}]\n", "spec.rules[0].from[0].source.notNamespaces", "cannot be set together with serviceAccounts"},
		{"ap service accounts too many", KindAuthorizationPolicy, rule + "from: [{source: {serviceAccounts: [s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15, s16, s17]}}]\n", "spec.rules[0].from[0].source.serviceAccounts", "at most 16"},
		{"ap trust domains", KindAuthorizationPolicy, rule + "from: [{source: {trustDomains: [td]}}]\n", "spec.rules[0].from[0].source", "trustDomains and notTrustDomains are not supported"},
		{"ap port", KindAuthorizationPolicy, rule + "to: [{operation: {ports: ['80', http]}}]\n", "spec.rules[0].to[0].operation.ports[1]", "invalid port"},
		{"ap not port", KindAuthorizationPolicy, rule + "to: [{operation: {notPorts: ['0']}}]\n", "spec.rules[0].to[0].operation.notPorts[0]", "between 1 and 65535"},
		{"ap path middle", KindAuthorizationPolicy, rule + "to: [{operation: {paths: ['/a/*/b']}}]\n", "spec.rules[0].to[0].operation.paths[0]", "wildcard is allowed only"},
		{"ap path template segment", KindAuthorizationPolicy, rule + "to: [{operation: {paths: ['/a/{*}/b', '/foo/{*}.txt']}}]\n", "spec.rules[0].to[0].operation.paths[1]", "must be whole path segments"},
		{"ap path template last", KindAuthorizationPolicy, rule + "to: [{operation: {notPaths: ['/{**}/foo/{*}']}}]\n", "spec.rules[0].to[0].operation.notPaths[0]", "{**} must be the last operator"},
		{"ap path template star", KindAuthorizationPolicy, rule + "to: [{operation: {paths: ['/*/baz/{*}']}}]\n", "spec.rules[0].to[0].operation.paths[0]", "'*' cannot be used with {*} or {**}"},
		{"ap path template double star", KindAuthorizationPolicy, rule + "to: [{operation: {paths: ['/**/baz/{*}']}}]\n", "spec.rules[0].to[0].operation.paths[0]", "'*' cannot be used"},
		{"ap path template prefix", KindAuthorizationPolicy, rule + "to: [{operation: {paths: ['/a/{*}*']}}]\n", "spec.rules[0].to[0].operation.paths[0]", "whole path segments"},
		{"ap path template braces", KindAuthorizationPolicy, rule + "to: [{operation: {paths: ['/a/{id}']}}]\n", "spec.rules[0].to[0].operation.paths[0]", "whole path segments"},
		{"ap path template relative", KindAuthorizationPolicy, rule + "to: [{operation: {paths: ['{*}/a']}}]\n", "spec.rules[0].to[0].operation.paths[0]", "must start with /"},
		{"ap host middle", KindAuthorizationPolicy, rule + "to: [{operation: {hosts: ['a.*.com']}}]\n", "spec.rules[0].to[0].operation.hosts[0]", "wildcard is allowed only"},
		{"ap method empty", KindAuthorizationPolicy, rule + "to: [{operation: {methods: ['']}}]\n", "spec.rules[0].to[0].operation.methods[0]", "must not be empty"},
		{"ap when no key", KindAuthorizationPolicy, rule + "when: [{values: [a]}]\n", "spec.rules[0].when[0].key", "required"},
		{"ap when no values", KindAuthorizationPolicy, rule + "when: [{key: source.ip}]\n", "spec.rules[0].when[0]", "at least one of values or notValues"},
		{"ap when unknown", KindAuthorizationPolicy, rule + "when: [{key: source.user, values: [a]}]\n", "spec.rules[0].when[0].key", `unknown key "source.user"`},
		{"ap when experimental", KindAuthorizationPolicy, rule + "when: [{key: 'experimental.envoy.filters.a[b]', values: [a]}]\n", "spec.rules[0].when[0].key", "experimental key"},
		{"ap when header", KindAuthorizationPolicy, rule + "when: [{key: 'request.headers[]', values: [a]}]\n", "spec.rules[0].when[0].key", "request.headers[NAME]"},
		{"ap when header name", KindAuthorizationPolicy, rule + "when: [{key: 'request.headers[a b]', values: [a]}]\n", "spec.rules[0].when[0].key", "request.headers[NAME]"},
		{"ap when header two", KindAuthorizationPolicy, rule + "when: [{key: 'request.headers[a][b]', values: [a]}]\n", "spec.rules[0].when[0].key", "one header name"},
		{"ap when claims", KindAuthorizationPolicy, rule + "when: [{key: 'request.auth.claims[a', values: [a]}]\n", "spec.rules[0].when[0].key", "request.auth.claims[NAME]"},
		{"ap when ip", KindAuthorizationPolicy, rule + "when: [{key: source.ip, values: [nope]}]\n", "spec.rules[0].when[0].values[0]", "invalid IP"},
		{"ap when port", KindAuthorizationPolicy, rule + "when: [{key: destination.port, notValues: ['99999']}]\n", "spec.rules[0].when[0].notValues[0]", "invalid port"},
		{"ap when wildcard", KindAuthorizationPolicy, rule + "when: [{key: request.auth.principal, values: ['a*b']}]\n", "spec.rules[0].when[0].values[0]", "wildcard"},

		{"ra no issuer", KindRequestAuthentication, "  jwtRules: [{jwksUri: 'https://a.example/jwks'}]\n", "spec.jwtRules[0].issuer", "required"},
		{"ra no keys", KindRequestAuthentication, "  jwtRules: [{issuer: a}]\n", "spec.jwtRules[0]", "one of jwksUri or jwks is required"},
		{"ra both", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwksUri: 'https://a.example/jwks', jwks: '{\"keys\":[]}'}]\n", "spec.jwtRules[0].jwks", "together with jwksUri"},
		{"ra uri scheme", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwksUri: 'ftp://a.example/jwks'}]\n", "spec.jwtRules[0].jwksUri", "http:// or https://"},
		{"ra uri host", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwksUri: 'https:///jwks'}]\n", "spec.jwtRules[0].jwksUri", "no host"},
		{"ra uri relative", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwksUri: '/jwks'}]\n", "spec.jwtRules[0].jwksUri", "http:// or https://"},
		{"ra uri port", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwksUri: 'http://a:99999/jwks'}]\n", "spec.jwtRules[0].jwksUri", "invalid URL"},
		{"ra jwks json", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{keys'}]\n", "spec.jwtRules[0].jwks", "not a JSON Web Key Set"},
		{"ra jwks no keys", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{}'}]\n", "spec.jwtRules[0].jwks", `no "keys" list`},
		{"ra jwks kty", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[{\"n\":\"x\"}]}'}]\n", "spec.jwtRules[0].jwks", `keys[0] has no "kty"`},
		{"ra audience", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', audiences: ['']}]\n", "spec.jwtRules[0].audiences[0]", "must not be empty"},
		{"ra header name", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', fromHeaders: [{name: 'x y'}]}]\n", "spec.jwtRules[0].fromHeaders[0].name", "invalid header name"},
		{"ra header missing", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', fromHeaders: [{prefix: 'Bearer '}]}]\n", "spec.jwtRules[0].fromHeaders[0].name", "required"},
		{"ra param", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', fromParams: ['']}]\n", "spec.jwtRules[0].fromParams[0]", "must not be empty"},
		{"ra claim header", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', outputClaimToHeaders: [{header: 'x:y', claim: c}]}]\n", "spec.jwtRules[0].outputClaimToHeaders[0].header", "invalid header name"},
		{"ra claim", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', outputClaimToHeaders: [{header: x-c}]}]\n", "spec.jwtRules[0].outputClaimToHeaders[0].claim", "required"},
		{"ra cookie name", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', fromCookies: [session, 'a=b']}]\n", "spec.jwtRules[0].fromCookies[1]", `invalid cookie name "a=b"`},
		{"ra cookie empty", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', fromCookies: ['']}]\n", "spec.jwtRules[0].fromCookies[0]", "must not be empty"},
		{"ra payload header", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', outputPayloadToHeader: 'x payload'}]\n", "spec.jwtRules[0].outputPayloadToHeader", "invalid header name"},
		{"ra space delimited", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwks: '{\"keys\":[]}', spaceDelimitedClaims: [roles]}]\n", "spec.jwtRules[0].spaceDelimitedClaims", "not supported"},
		{"ra timeout", KindRequestAuthentication, "  jwtRules: [{issuer: a, jwksUri: 'https://a.example/j', timeout: 3s}]\n", "spec.jwtRules[0].timeout", "not supported"},
		{"ra target ref", KindRequestAuthentication, "  targetRef: {kind: Gateway, name: gw}\n", "spec.targetRef", "not supported"},

		{"smmr member", KindServiceMeshMemberRoll, "  members: [ok, Bad_NS]\n", "spec.members[1]", "not a valid namespace"},
		{"smmr dup", KindServiceMeshMemberRoll, "  members: [a, b, a]\n", "spec.members[2]", "already listed (members[0])"},
		{"smmr unknown", KindServiceMeshMemberRoll, "  memberSelectors: [{matchLabels: {a: b}}]\n", "spec.memberSelectors", "unknown field"},
		{"smmr member type", KindServiceMeshMemberRoll, "  members: [1]\n", "spec.members[0]", "must be a string"},

		{"rl no limit", KindRateLimit, "  routes: [a]\n", "spec.limit", "required"},
		{"rl zero requests", KindRateLimit, "  limit: {requests: 0, per: 1s}\n", "spec.limit.requests", "greater than 0"},
		{"rl negative requests", KindRateLimit, "  limit: {requests: -1, per: 1s}\n", "spec.limit.requests", "must not be negative"},
		{"rl no per", KindRateLimit, "  limit: {requests: 1}\n", "spec.limit.per", "required"},
		{"rl per small", KindRateLimit, "  limit: {requests: 1, per: 100us}\n", "spec.limit.per", "at least 1ms"},
		{"rl per syntax", KindRateLimit, "  limit: {requests: 1, per: 1 second}\n", "spec.limit.per", "invalid duration"},
		{"rl burst", KindRateLimit, "  limit: {requests: 10, per: 1s, burst: 5}\n", "spec.limit.burst", "at least requests (10)"},
		{"rl route", KindRateLimit, "  limit: {requests: 1, per: 1s}\n  routes: ['']\n", "spec.routes[0]", "must not be empty"},
		{"rl route dup", KindRateLimit, "  limit: {requests: 1, per: 1s}\n  routes: [a, a]\n", "spec.routes[1]", "already listed"},
		{"rl selector", KindRateLimit, "  selector: {matchLabels: {app: 'x*'}}\n  limit: {requests: 1, per: 1s}\n", "spec.selector.matchLabels[app]", "wildcards"},
		{"rl selector name", KindRateLimit, "  selector: {match_labels: {app: x}, labels: {a: b}}\n  limit: {requests: 1, per: 1s}\n", "spec.selector.labels", "unknown field"},
		{"rl unknown", KindRateLimit, "  limit: {requests: 1, per: 1s, burts: 3}\n", "spec.limit.burts", `did you mean "burst"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, errs := decodeKind(t, tt.kind, tt.spec)
			if len(objs) > 0 {
				t.Errorf("an object with errors was returned: %v", objs[0].Spec)
			}
			expectErrorAt(t, errs, tt.kind, tt.field, tt.msg)
		})
	}
}

func TestValidateSpecTypeMismatch(t *testing.T) {
	o := &Object{Kind: KindRateLimit, Meta: Meta{Name: "x", Namespace: "ns"}, Spec: &maistrav1.ServiceMeshMemberRoll{}}
	errs := Validate(o)
	if len(errs) != 1 || errs[0].Field != "spec" || !strings.Contains(errs[0].Msg, "cannot hold") {
		t.Errorf("errs = %v", errs)
	}
}

func TestCheckJWKS(t *testing.T) {
	for doc, ok := range map[string]bool{
		`{"keys":[]}`: true,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}`: true,
		`{"keys":{}}`:          false,
		`[]`:                   false,
		`{"keys":[{"kty":1}]}`: false,
		``:                     false,
	} {
		if got := CheckJWKS([]byte(doc)) == ""; got != ok {
			t.Errorf("CheckJWKS(%q) ok = %v, want %v (%s)", doc, got, ok, CheckJWKS([]byte(doc)))
		}
	}
}

// kubectl's spellings of a resource type: short names, and plural or
// singular qualified by the group, with or without a version.
func TestLookupKindFullNames(t *testing.T) {
	for name, want := range map[string]Kind{
		"vs": KindVirtualService, "dr": KindDestinationRule, "gw": KindGateway, "se": KindServiceEntry, "we": KindWorkloadEntry,
		"virtualservice.networking.istio.io":           KindVirtualService,
		"virtualservices.networking.istio.io":          KindVirtualService,
		"VirtualService.networking.istio.io":           KindVirtualService,
		"destinationrules.v1beta1.networking.istio.io": KindDestinationRule,
		"serviceentry.networking.istio.io":             KindServiceEntry,
		"authorizationpolicies.security.istio.io":      KindAuthorizationPolicy,
		"peerauthentication.v1.security.istio.io":      KindPeerAuthentication,
		"ratelimits.weft.io":                           KindRateLimit,
		"servicemeshmemberrolls.maistra.io":            KindServiceMeshMemberRoll,
	} {
		if info, ok := LookupKind(name); !ok || info.Kind != want {
			t.Errorf("LookupKind(%q) = %v, %v; want %s", name, info.Kind, ok, want)
		}
	}
	for _, name := range []string{
		"virtualservice.security.istio.io", // wrong group
		"vs.networking.istio.io",           // kubectl takes no short name with a group
		"virtualservices.v2.networking.istio.io",
		"serviceentrie", // a plural with its last letter cut off is no singular
		"virtualservice.", "",
	} {
		if info, ok := LookupKind(name); ok {
			t.Errorf("LookupKind(%q) = %v, want none", name, info.Kind)
		}
	}
	if got := Kinds[1].FullName(); got != "virtualservice.networking.istio.io" {
		t.Errorf("FullName = %q", got)
	}
}

func TestValidateNamespace(t *testing.T) {
	for ns, ok := range map[string]bool{"coolapp": true, "a-1": true, "": false, "Cool": false, "-x": false, "a.b": false} {
		if err := ValidateNamespace(ns); (err == nil) != ok {
			t.Errorf("ValidateNamespace(%q) = %v", ns, err)
		}
	}
}
