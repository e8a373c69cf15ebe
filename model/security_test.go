package model

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/weft-mesh/weft/config"
	maistrav1 "github.com/weft-mesh/weft/config/apis/maistra/v1"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
)

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func secObj(kind config.Kind, ns, name string, age int, spec proto.Message) *config.Object {
	return &config.Object{Kind: kind, Spec: spec, Meta: config.Meta{Name: name, Namespace: ns, CreationTimestamp: epoch.Add(time.Duration(age) * time.Minute)}}
}

func sel(kv ...string) *typev1beta1.WorkloadSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &typev1beta1.WorkloadSelector{MatchLabels: m}
}

type mode = security.PeerAuthentication_MutualTLS_Mode

func pa(ns, name string, age int, selector *typev1beta1.WorkloadSelector, m mode, ports map[uint32]mode) *config.Object {
	spec := &security.PeerAuthentication{Selector: selector}
	if m != security.PeerAuthentication_MutualTLS_UNSET {
		spec.Mtls = &security.PeerAuthentication_MutualTLS{Mode: m}
	}
	for p, pm := range ports {
		if spec.PortLevelMtls == nil {
			spec.PortLevelMtls = map[uint32]*security.PeerAuthentication_MutualTLS{}
		}
		spec.PortLevelMtls[p] = &security.PeerAuthentication_MutualTLS{Mode: pm}
	}
	return secObj(config.KindPeerAuthentication, ns, name, age, spec)
}

const (
	unset      = security.PeerAuthentication_MutualTLS_UNSET
	disable    = security.PeerAuthentication_MutualTLS_DISABLE
	permissive = security.PeerAuthentication_MutualTLS_PERMISSIVE
	strict     = security.PeerAuthentication_MutualTLS_STRICT
)

func TestMTLSModeString(t *testing.T) {
	for m, want := range map[MTLSMode]string{MTLSUnset: "UNSET", MTLSDisable: "DISABLE", MTLSPermissive: "PERMISSIVE", MTLSStrict: "STRICT", 9: "MTLSMode(9)"} {
		if got := m.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(m), got, want)
		}
	}
}

func TestInboundMTLS(t *testing.T) {
	app := map[string]string{"app": "db", "version": "v1"}
	tests := []struct {
		name string
		objs []*config.Object
		port uint32
		want MTLSMode
	}{
		{"no policy: STRICT", nil, 80, MTLSStrict},
		{"mesh-wide", []*config.Object{pa(RootNamespace, "default", 0, nil, permissive, nil)}, 80, MTLSPermissive},
		{"mesh-wide UNSET", []*config.Object{pa(RootNamespace, "default", 0, nil, unset, nil)}, 80, MTLSStrict},
		{"namespace beats mesh", []*config.Object{
			pa(RootNamespace, "default", 0, nil, permissive, nil),
			pa("shop", "ns", 0, nil, disable, nil),
		}, 80, MTLSDisable},
		{"namespace UNSET inherits mesh", []*config.Object{
			pa(RootNamespace, "default", 0, nil, disable, nil),
			pa("shop", "ns", 0, &typev1beta1.WorkloadSelector{}, unset, nil), // empty selector = namespace-wide
		}, 80, MTLSDisable},
		{"other namespace ignored", []*config.Object{pa("other", "ns", 0, nil, disable, nil)}, 80, MTLSStrict},
		{"root selector policy applies only in the root namespace", []*config.Object{
			pa(RootNamespace, "db", 0, sel("app", "db"), disable, nil),
		}, 80, MTLSStrict},
		{"workload beats namespace", []*config.Object{
			pa("shop", "ns", 0, nil, disable, nil),
			pa("shop", "db", 0, sel("app", "db"), permissive, nil),
		}, 80, MTLSPermissive},
		{"workload selector not matching", []*config.Object{
			pa("shop", "ns", 0, nil, permissive, nil),
			pa("shop", "web", 0, sel("app", "web"), disable, nil),
		}, 80, MTLSPermissive},
		{"port level", []*config.Object{
			pa("shop", "db", 0, sel("app", "db"), strict, map[uint32]mode{80: disable}),
		}, 80, MTLSDisable},
		{"port level other port", []*config.Object{
			pa("shop", "db", 0, sel("app", "db"), permissive, map[uint32]mode{80: disable}),
		}, 81, MTLSPermissive},
		{"port level UNSET inherits the workload mode", []*config.Object{
			pa("shop", "db", 0, sel("app", "db"), permissive, map[uint32]mode{80: unset}),
		}, 80, MTLSPermissive},
		{"workload UNSET inherits the namespace", []*config.Object{
			pa("shop", "ns", 0, nil, disable, nil),
			pa("shop", "db", 0, sel("app", "db"), unset, map[uint32]mode{81: strict}),
		}, 80, MTLSDisable},
		{"oldest workload policy wins", []*config.Object{
			pa("shop", "b-new", 5, sel("app", "db"), disable, nil),
			pa("shop", "z-old", 1, sel("version", "v1"), permissive, nil),
		}, 80, MTLSPermissive},
		{"same age: name decides", []*config.Object{
			pa("shop", "b", 1, sel("app", "db"), disable, nil),
			pa("shop", "a", 1, sel("version", "v1"), permissive, nil),
		}, 80, MTLSPermissive},
		{"oldest UNSET does not hand over to a newer workload policy", []*config.Object{
			pa("shop", "old", 1, sel("app", "db"), unset, nil),
			pa("shop", "new", 2, sel("version", "v1"), disable, nil),
		}, 80, MTLSStrict},
		{"oldest namespace policy wins", []*config.Object{
			pa("shop", "a-new", 3, nil, disable, nil),
			pa("shop", "z-old", 2, nil, permissive, nil),
		}, 80, MTLSPermissive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Build(1, tt.objs)
			if got := s.InboundMTLS("shop", app, tt.port); got != tt.want {
				t.Errorf("InboundMTLS = %s, want %s", got, tt.want)
			}
		})
	}
}

func names(objs []*config.Object) string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Meta.Namespace+"/"+o.Meta.Name)
	}
	return strings.Join(out, " ")
}

func TestPolicySelection(t *testing.T) {
	ap := func(ns, name string, s *typev1beta1.WorkloadSelector) *config.Object {
		return secObj(config.KindAuthorizationPolicy, ns, name, 0, &security.AuthorizationPolicy{Selector: s})
	}
	ra := func(ns, name string, s *typev1beta1.WorkloadSelector) *config.Object {
		return secObj(config.KindRequestAuthentication, ns, name, 0, &security.RequestAuthentication{Selector: s})
	}
	rl := func(ns, name string, s *typev1beta1.WorkloadSelector) *config.Object {
		spec := &weftv1alpha1.RateLimit{Limit: &weftv1alpha1.Limit{Requests: 1, Per: durationpb.New(time.Second)}}
		if s != nil {
			spec.Selector = &weftv1alpha1.WorkloadSelector{MatchLabels: s.MatchLabels}
		}
		return secObj(config.KindRateLimit, ns, name, 0, spec)
	}
	s := Build(1, []*config.Object{
		ap("shop", "z-all", nil),
		ap("shop", "db", sel("app", "db")),
		ap("shop", "web", sel("app", "web")),
		ap("shop", "empty", &typev1beta1.WorkloadSelector{}),
		ap("other", "all", nil),
		ap(RootNamespace, "mesh", nil),
		ap(RootNamespace, "mesh-db", sel("app", "db")),
		ap(RootNamespace, "mesh-web", sel("app", "web")),
		ra("shop", "jwt-db", sel("app", "db")),
		ra("alpha", "jwt-all", nil),
		ra(RootNamespace, "jwt-gw", sel("istio", "ingressgateway")),
		rl("shop", "limit", sel("app", "db", "version", "v2")),
		rl("shop", "limit-all", nil),
		rl(RootNamespace, "gw", sel("istio", "ingressgateway")),
	})
	db := map[string]string{"app": "db", "version": "v1"}
	if got, want := names(s.AuthorizationPolicies("shop", db)), "istio-system/mesh istio-system/mesh-db shop/db shop/empty shop/z-all"; got != want {
		t.Errorf("AuthorizationPolicies(shop, db) = %s\nwant %s", got, want)
	}
	if got, want := names(s.AuthorizationPolicies("alpha", db)), "istio-system/mesh istio-system/mesh-db"; got != want {
		t.Errorf("AuthorizationPolicies(alpha, db) = %s, want %s", got, want)
	}
	gw := map[string]string{"istio": "ingressgateway"}
	if got, want := names(s.AuthorizationPolicies(RootNamespace, gw)), "istio-system/mesh"; got != want {
		t.Errorf("AuthorizationPolicies(root, gw) = %s, want %s", got, want)
	}
	if got, want := names(s.RequestAuthentications("shop", db)), "shop/jwt-db"; got != want {
		t.Errorf("RequestAuthentications(shop, db) = %s, want %s", got, want)
	}
	if got, want := names(s.RequestAuthentications("alpha", nil)), "alpha/jwt-all"; got != want {
		t.Errorf("RequestAuthentications(alpha) = %s, want %s", got, want)
	}
	if got, want := names(s.RequestAuthentications(RootNamespace, gw)), "istio-system/jwt-gw"; got != want {
		t.Errorf("RequestAuthentications(root, gw) = %s, want %s", got, want)
	}
	if got, want := names(s.RateLimits("shop", db)), "shop/limit-all"; got != want {
		t.Errorf("RateLimits(shop, db v1) = %s, want %s", got, want)
	}
	if got, want := names(s.RateLimits("shop", map[string]string{"app": "db", "version": "v2"})), "shop/limit shop/limit-all"; got != want {
		t.Errorf("RateLimits(shop, db v2) = %s, want %s", got, want)
	}
	if got := s.AuthorizationPolicies("nowhere", nil); len(got) != 1 {
		t.Errorf("AuthorizationPolicies(nowhere) = %s, want the mesh-wide one", names(got))
	}
}

func TestIsMember(t *testing.T) {
	roll := func(ns, name string, members ...string) *config.Object {
		return secObj(config.KindServiceMeshMemberRoll, ns, name, 0, &maistrav1.ServiceMeshMemberRoll{Members: members})
	}
	if ok, reason := Build(1, nil).IsMember("anything"); !ok || reason != "" {
		t.Errorf("no roll: %v %q", ok, reason)
	}
	if _, restricted := Build(1, nil).Members(); restricted {
		t.Error("Members: restricted without a roll")
	}
	// A roll outside the root namespace has no effect, as in Maistra.
	if ok, _ := Build(1, []*config.Object{roll("shop", "default", "shop")}).IsMember("other"); !ok {
		t.Error("a roll outside the root namespace restricted membership")
	}
	s := Build(1, []*config.Object{roll(RootNamespace, "default", "shop"), roll(RootNamespace, "extra", "bookinfo")})
	for ns, want := range map[string]bool{"shop": true, "bookinfo": true, RootNamespace: true, "outsider": false} {
		ok, reason := s.IsMember(ns)
		if ok != want {
			t.Errorf("IsMember(%s) = %v, want %v", ns, ok, want)
		}
		if !ok && (!strings.Contains(reason, `"outsider"`) || !strings.Contains(reason, "istio-system/default, istio-system/extra")) {
			t.Errorf("reason = %q", reason)
		}
	}
	if m, restricted := s.Members(); !restricted || strings.Join(m, ",") != "bookinfo,shop" {
		t.Errorf("Members = %v %v", m, restricted)
	}
	one := Build(1, []*config.Object{roll(RootNamespace, "default", "shop")})
	if _, reason := one.IsMember("x"); reason != `namespace "x" is not a member of the mesh: ServiceMeshMemberRoll istio-system/default does not list it` {
		t.Errorf("reason = %q", reason)
	}
	if ok, _ := Build(1, []*config.Object{roll(RootNamespace, "default", "*")}).IsMember("x"); !ok {
		t.Error(`"*" did not admit every namespace`)
	}
}

// TestJWKSOption: the snapshot reads the documents its
// RequestAuthentications name once, when built, and answers from that.
func TestJWKSOption(t *testing.T) {
	ra := secObj(config.KindRequestAuthentication, "shop", "jwt", 0, &security.RequestAuthentication{
		JwtRules: []*security.JWTRule{{Issuer: "a", JwksUri: "https://a/jwks"}, {Issuer: "b", JwksUri: "https://b/jwks"}},
	})
	if _, ok := Build(1, []*config.Object{ra}).JWKS("https://a/jwks"); ok {
		t.Error("JWKS known without Options.JWKS")
	}
	doc := `{"keys":[]}`
	fetch := func(uri string) (string, bool) { return doc, uri == "https://a/jwks" }
	s := BuildWith(1, []*config.Object{ra}, Options{JWKS: fetch})
	doc = `{"keys":[{}]}` // fetched again later: this snapshot keeps what it read
	if got, ok := s.JWKS("https://a/jwks"); !ok || got != `{"keys":[]}` {
		t.Errorf("JWKS = %q %v", got, ok)
	}
	if _, ok := s.JWKS("https://b/jwks"); ok {
		t.Error("unfetched uri reported known")
	}
	next := BuildWith(2, []*config.Object{ra}, Options{JWKS: fetch, Previous: s})
	if next.Epochs().Security == s.Epochs().Security {
		t.Error("a changed JWKS document kept the security epoch")
	}
	if again := BuildWith(3, []*config.Object{ra}, Options{JWKS: fetch, Previous: next}); again.Epochs() != next.Epochs() {
		t.Error("an unchanged snapshot changed epochs")
	}
}

func TestEndpointSidecar(t *testing.T) {
	we := func(name string, labels map[string]string, meta config.Meta) *config.Object {
		meta.Name, meta.Namespace = name, "shop"
		return &config.Object{Kind: config.KindWorkloadEntry, Meta: meta, Spec: &networking.WorkloadEntry{Address: "127.0.0.1", Labels: labels}}
	}
	s := Build(1, []*config.Object{
		obj(config.KindServiceEntry, "shop", "db", &networking.ServiceEntry{
			Hosts:            []string{"db.shop.svc.cluster.local"},
			Ports:            []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "db"}},
		}),
		we("a-label", map[string]string{"app": "db", config.LabelTLSMode: "istio"}, config.Meta{}),
		we("b-annotation", map[string]string{"app": "db"}, config.Meta{Annotations: map[string]string{config.AnnotationProxy: "sidecar~1"}}),
		we("c-meta-label", map[string]string{"app": "db"}, config.Meta{Labels: map[string]string{config.LabelTLSMode: "istio"}}),
		we("d-plain", map[string]string{"app": "db"}, config.Meta{}),
		we("e-disabled", map[string]string{"app": "db", config.LabelTLSMode: "disabled"}, config.Meta{}),
		obj(config.KindServiceEntry, "shop", "ext", &networking.ServiceEntry{
			Hosts:     []string{"ext.example.com"},
			Endpoints: []*networking.WorkloadEntry{{Address: "10.0.0.1", Labels: map[string]string{config.LabelTLSMode: "istio"}}, {Address: "10.0.0.2"}},
		}),
	})
	got := map[string]bool{}
	for _, ep := range s.Service("db.shop.svc.cluster.local").Endpoints {
		got[ep.Workload] = ep.Sidecar
	}
	want := map[string]bool{"a-label": true, "b-annotation": true, "c-meta-label": true, "d-plain": false, "e-disabled": false}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: Sidecar = %v, want %v", k, got[k], v)
		}
	}
	ext := s.Service("ext.example.com").Endpoints
	if !ext[0].Sidecar || ext[1].Sidecar {
		t.Errorf("inline endpoints: %v %v", ext[0].Sidecar, ext[1].Sidecar)
	}
}
