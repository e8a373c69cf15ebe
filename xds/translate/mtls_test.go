package translate

import (
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
)

func objNS(kind config.Kind, namespace, name string, spec proto.Message) *config.Object {
	return &config.Object{Kind: kind, Meta: config.Meta{Name: name, Namespace: namespace}, Spec: spec}
}

func selector(kv ...string) *typev1beta1.WorkloadSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &typev1beta1.WorkloadSelector{MatchLabels: m}
}

func mtlsMode(m security.PeerAuthentication_MutualTLS_Mode) *security.PeerAuthentication_MutualTLS {
	return &security.PeerAuthentication_MutualTLS{Mode: m}
}

const (
	strict     = security.PeerAuthentication_MutualTLS_STRICT
	permissive = security.PeerAuthentication_MutualTLS_PERMISSIVE
	disable    = security.PeerAuthentication_MutualTLS_DISABLE
)

// webService is service "web" (port 8080) whose one instance is the
// sidecar of webMeta, at its inbound address 127.0.0.1:15006.
func webService() *config.Object {
	return obj(config.KindServiceEntry, "web", &networking.ServiceEntry{
		Hosts:      []string{"web.coolapp.svc.cluster.local"},
		Ports:      []*networking.ServicePort{{Number: 8080, Name: "http", Protocol: "HTTP"}},
		Resolution: networking.ServiceEntry_STATIC,
		Endpoints: []*networking.WorkloadEntry{{Address: "127.0.0.1", Ports: map[string]uint32{"http": 15006},
			Labels: map[string]string{"app": "web", config.LabelTLSMode: "istio"}, ServiceAccount: "web"}},
	})
}

func webMeta() *node.Meta {
	p := sidecarMeta()
	p.Labels = map[string]string{"app": "web"}
	p.ServiceAccount = "web"
	return p
}

func TestInboundMTLSModes(t *testing.T) {
	pa := func(ns, name string, spec *security.PeerAuthentication) *config.Object {
		return objNS(config.KindPeerAuthentication, ns, name, spec)
	}
	for _, tc := range []struct {
		name     string
		policies []*config.Object
		want     model.MTLSMode
	}{
		{"no policy: STRICT by default", nil, model.MTLSStrict},
		{"mesh-wide PERMISSIVE", []*config.Object{
			pa(model.RootNamespace, "default", &security.PeerAuthentication{Mtls: mtlsMode(permissive)})}, model.MTLSPermissive},
		{"mesh-wide STRICT, namespace PERMISSIVE", []*config.Object{
			pa(model.RootNamespace, "default", &security.PeerAuthentication{Mtls: mtlsMode(strict)}),
			pa(ns, "default", &security.PeerAuthentication{Mtls: mtlsMode(permissive)})}, model.MTLSPermissive},
		{"workload STRICT with portLevelMtls 8080 DISABLE", []*config.Object{
			pa(ns, "web", &security.PeerAuthentication{Selector: selector("app", "web"), Mtls: mtlsMode(strict),
				PortLevelMtls: map[uint32]*security.PeerAuthentication_MutualTLS{8080: mtlsMode(disable)}})}, model.MTLSDisable},
		{"portLevelMtls for another port; UNSET workload inherits the namespace", []*config.Object{
			pa(ns, "default", &security.PeerAuthentication{Mtls: mtlsMode(permissive)}),
			pa(ns, "web", &security.PeerAuthentication{Selector: selector("app", "web"),
				PortLevelMtls: map[uint32]*security.PeerAuthentication_MutualTLS{9999: mtlsMode(disable)}})}, model.MTLSPermissive},
		{"selector of another workload", []*config.Object{
			pa(ns, "other", &security.PeerAuthentication{Selector: selector("app", "other"), Mtls: mtlsMode(disable)})}, model.MTLSStrict},
		{"mesh-wide DISABLE", []*config.Object{
			pa(model.RootNamespace, "default", &security.PeerAuthentication{Mtls: mtlsMode(disable)})}, model.MTLSDisable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, proto := range []string{"HTTP", "TCP"} {
				p := webMeta()
				p.InboundProtocol = proto
				r := generate(t, coolapp(append(tc.policies, webService())...), p)
				checkInboundChains(t, r.Listeners[InboundListener], tc.want)
			}
		})
	}
}

// checkInboundChains checks virtualInbound against the contract's table.
func checkInboundChains(t *testing.T, l *listener.Listener, mode model.MTLSMode) {
	t.Helper()
	type chain struct {
		name, transport string
		tls             bool
	}
	var want []chain
	switch mode {
	case model.MTLSStrict:
		want = []chain{{InboundTLSChain, "tls", true}}
	case model.MTLSPermissive:
		want = []chain{{InboundTLSChain, "tls", true}, {InboundPlaintextChain, "raw_buffer", false}}
	case model.MTLSDisable:
		want = []chain{{InboundPlaintextChain, "", false}}
	}
	if len(l.GetFilterChains()) != len(want) {
		t.Fatalf("%v: %d chains, want %d: %v", mode, len(l.GetFilterChains()), len(want), l.GetFilterChains())
	}
	first := l.GetFilterChains()[0].GetFilters()
	for i, w := range want {
		fc := l.GetFilterChains()[i]
		if fc.GetName() != w.name || fc.GetFilterChainMatch().GetTransportProtocol() != w.transport || (fc.GetTransportSocket() != nil) != w.tls {
			t.Errorf("%v: chain %d = %s match %v socket %v, want %+v", mode, i, fc.GetName(), fc.GetFilterChainMatch(), fc.GetTransportSocket(), w)
		}
		if w.transport == "" && fc.GetFilterChainMatch() != nil {
			t.Errorf("%v: chain %d has a filter_chain_match", mode, i)
		}
		if len(fc.GetFilters()) != len(first) || !proto.Equal(fc.GetFilters()[0], first[0]) {
			t.Errorf("%v: chains hold different filters", mode)
		}
	}
	inspector := len(l.GetListenerFilters()) == 1 && l.GetListenerFilters()[0].GetName() == TLSInspectorFilter
	if inspector != (mode != model.MTLSDisable) {
		t.Errorf("%v: listener filters %v", mode, l.GetListenerFilters())
	}
}

func ads() *core.ConfigSource {
	return &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}, ResourceApiVersion: core.ApiVersion_V3}
}

func TestInboundTLSContext(t *testing.T) {
	r := generate(t, coolapp(webService()), webMeta())
	ts := r.Listeners[InboundListener].GetFilterChains()[0].GetTransportSocket()
	if ts.GetName() != "envoy.transport_sockets.tls" {
		t.Fatalf("transport socket %s", ts.GetName())
	}
	got := &tlsv3.DownstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(got); err != nil {
		t.Fatal(err)
	}
	assertProto(t, "DownstreamTlsContext", got, &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default", SdsConfig: ads()}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA", SdsConfig: ads()}},
			AlpnProtocols: []string{"h2", "http/1.1"},
		},
	})
}

// TestInboundPortFromSelector: a sidecar whose inbound address no endpoint
// names yet still finds its port through the service selecting it.
func TestInboundPortFromSelector(t *testing.T) {
	se := obj(config.KindServiceEntry, "web", &networking.ServiceEntry{
		Hosts:      []string{"web.coolapp.svc.cluster.local"},
		Ports:      []*networking.ServicePort{{Number: 8080, Name: "http", Protocol: "HTTP", TargetPort: 8081}},
		Resolution: networking.ServiceEntry_STATIC, WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "web"}},
	})
	pa := obj(config.KindPeerAuthentication, "web", &security.PeerAuthentication{Selector: selector("app", "web"),
		PortLevelMtls: map[uint32]*security.PeerAuthentication_MutualTLS{8081: mtlsMode(disable)}})
	r := generate(t, coolapp(se, pa), webMeta())
	checkInboundChains(t, r.Listeners[InboundListener], model.MTLSDisable)
}

func TestGatewayListenersHaveNoTLS(t *testing.T) {
	r := generate(t, coolapp(), routerMeta())
	l := r.Listeners["0.0.0.0_80"]
	if len(l.GetFilterChains()) != 1 || l.GetFilterChains()[0].GetTransportSocket() != nil || len(l.GetListenerFilters()) != 0 {
		t.Errorf("gateway listener %v", l)
	}
}

func spiffeSAN(id string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: id}}}
}

func upstreamTLS(t *testing.T, ts *core.TransportSocket) *tlsv3.UpstreamTlsContext {
	t.Helper()
	if ts.GetName() != "envoy.transport_sockets.tls" {
		t.Fatalf("transport socket %v", ts)
	}
	u := &tlsv3.UpstreamTlsContext{}
	if err := ts.GetTypedConfig().UnmarshalTo(u); err != nil {
		t.Fatal(err)
	}
	return u
}

func meshTLS(sni string, ids ...string) *tlsv3.UpstreamTlsContext {
	var sans []*tlsv3.SubjectAltNameMatcher
	for _, id := range ids {
		sans = append(sans, spiffeSAN(id))
	}
	return &tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default", SdsConfig: ads()}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA", SdsConfig: ads()},
				},
			},
			AlpnProtocols: []string{"http/1.1"},
		},
	}
}

// ratings has four instances: two sidecars (by label, by annotation), one
// without a sidecar, and a sidecar whose PeerAuthentication disables mTLS.
func ratings() []*config.Object {
	se := obj(config.KindServiceEntry, "ratings", &networking.ServiceEntry{
		Hosts:      []string{"ratings.coolapp.svc.cluster.local"},
		Ports:      []*networking.ServicePort{{Number: 9080, Name: "http", Protocol: "HTTP"}},
		Resolution: networking.ServiceEntry_STATIC, WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "ratings"}},
	})
	wle := func(name, addr, version, sa string, labels map[string]string, annotations map[string]string) *config.Object {
		l := map[string]string{"app": "ratings", "version": version}
		for k, v := range labels {
			l[k] = v
		}
		o := obj(config.KindWorkloadEntry, name, &networking.WorkloadEntry{Address: addr, Labels: l, ServiceAccount: sa})
		o.Meta.Annotations = annotations
		return o
	}
	istio := map[string]string{config.LabelTLSMode: "istio"}
	return []*config.Object{se,
		wle("r1", "127.0.0.11", "v1", "ratings", istio, nil),
		wle("r2", "127.0.0.12", "v1", "", nil, map[string]string{config.AnnotationProxy: "sidecar~127.0.0.1~r2.coolapp~coolapp.svc.cluster.local"}),
		wle("r3", "127.0.0.13", "v2", "legacy", nil, nil),
		wle("r4", "127.0.0.14", "v2", "ratings", map[string]string{config.LabelTLSMode: "istio", "plain": "yes"}, nil),
		obj(config.KindPeerAuthentication, "plain", &security.PeerAuthentication{Selector: selector("plain", "yes"), Mtls: mtlsMode(disable)}),
		obj(config.KindDestinationRule, "ratings", &networking.DestinationRule{Host: "ratings", Subsets: []*networking.Subset{
			{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}}),
	}
}

func TestAutoMTLS(t *testing.T) {
	const host = "ratings.coolapp.svc.cluster.local"
	for _, p := range []*node.Meta{sidecarMeta(), routerMeta()} {
		r := generate(t, coolapp(ratings()...), p)
		c := r.Clusters["outbound|9080||"+host]
		if c.GetTransportSocket() != nil || len(c.GetTransportSocketMatches()) != 2 {
			t.Fatalf("%s: cluster %v", p.Type, c)
		}
		m := c.GetTransportSocketMatches()
		if m[0].GetName() != "tlsMode-istio" || !proto.Equal(m[0].GetMatch(), &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}}) {
			t.Errorf("%s: first match %v", p.Type, m[0])
		}
		assertProto(t, "auto mTLS socket", upstreamTLS(t, m[0].GetTransportSocket()), meshTLS("outbound_.9080_._."+host,
			"spiffe://cluster.local/ns/coolapp/sa/default", "spiffe://cluster.local/ns/coolapp/sa/legacy", "spiffe://cluster.local/ns/coolapp/sa/ratings"))
		if m[1].GetName() != "tlsMode-disabled" || len(m[1].GetMatch().GetFields()) != 0 || m[1].GetTransportSocket().GetName() != "envoy.transport_sockets.raw_buffer" {
			t.Errorf("%s: second match %v", p.Type, m[1])
		}
		// Only the sidecars that take mTLS carry the match metadata.
		tlsEndpoints := map[string]bool{}
		for _, le := range r.Endpoints["outbound|9080||"+host].GetEndpoints()[0].GetLbEndpoints() {
			md := le.GetMetadata().GetFilterMetadata()["envoy.transport_socket_match"]
			if md != nil {
				if md.GetFields()["tlsMode"].GetStringValue() != "istio" {
					t.Errorf("metadata %v", md)
				}
				tlsEndpoints[le.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = true
			}
		}
		if len(tlsEndpoints) != 2 || !tlsEndpoints["127.0.0.11"] || !tlsEndpoints["127.0.0.12"] {
			t.Errorf("%s: endpoints with tlsMode %v", p.Type, tlsEndpoints)
		}
		// A subset cluster names its subset in the SNI and trusts only its endpoints.
		v1 := r.Clusters["outbound|9080|v1|"+host].GetTransportSocketMatches()[0].GetTransportSocket()
		assertProto(t, "subset socket", upstreamTLS(t, v1), meshTLS("outbound_.9080_.v1_."+host,
			"spiffe://cluster.local/ns/coolapp/sa/default", "spiffe://cluster.local/ns/coolapp/sa/ratings"))
	}
	// The trust domain is an option.
	r := GenerateWith(model.Build(1, coolapp(ratings()...)), sidecarMeta(), Options{TrustDomain: "example.org"})
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	u := upstreamTLS(t, r.Clusters["outbound|9080|v1|"+host].GetTransportSocketMatches()[0].GetTransportSocket())
	if got := u.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact(); got != "spiffe://example.org/ns/coolapp/sa/default" {
		t.Errorf("SAN with trust domain example.org: %s", got)
	}
}

func clientTLS(mode networking.ClientTLSSettings_TLSmode) *networking.ClientTLSSettings {
	return &networking.ClientTLSSettings{Mode: mode}
}

func TestDestinationRuleTLS(t *testing.T) {
	const host = "ratings.coolapp.svc.cluster.local"
	dr := func(tp *networking.TrafficPolicy, subsets ...*networking.Subset) *config.Object {
		return obj(config.KindDestinationRule, "ratings", &networking.DestinationRule{Host: "ratings", TrafficPolicy: tp, Subsets: subsets})
	}
	objs := func(d *config.Object) []*config.Object {
		return coolapp(append(ratings()[:5], d)...)
	}
	simple := &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_SIMPLE, Sni: "api.example.com",
		CaCertificates: "/etc/certs/ca.pem", SubjectAltNames: []string{"api.example.com", "spiffe://other/ns/x/sa/y", "10.0.0.1"}}
	for _, tc := range []struct {
		name    string
		dr      *config.Object
		cluster string
		check   func(t *testing.T, c *cluster.Cluster)
	}{
		{"ISTIO_MUTUAL", dr(&networking.TrafficPolicy{Tls: clientTLS(networking.ClientTLSSettings_ISTIO_MUTUAL)}), "outbound|9080||" + host,
			func(t *testing.T, c *cluster.Cluster) {
				if len(c.GetTransportSocketMatches()) != 0 {
					t.Error("ISTIO_MUTUAL kept transport_socket_matches")
				}
				assertProto(t, "ISTIO_MUTUAL", upstreamTLS(t, c.GetTransportSocket()), meshTLS("outbound_.9080_._."+host,
					"spiffe://cluster.local/ns/coolapp/sa/default", "spiffe://cluster.local/ns/coolapp/sa/legacy", "spiffe://cluster.local/ns/coolapp/sa/ratings"))
			}},
		{"DISABLE", dr(&networking.TrafficPolicy{Tls: clientTLS(networking.ClientTLSSettings_DISABLE)}), "outbound|9080||" + host,
			func(t *testing.T, c *cluster.Cluster) {
				if c.GetTransportSocket() != nil || len(c.GetTransportSocketMatches()) != 0 {
					t.Errorf("DISABLE: %v %v", c.GetTransportSocket(), c.GetTransportSocketMatches())
				}
			}},
		{"SIMPLE", dr(&networking.TrafficPolicy{Tls: simple}), "outbound|9080||" + host,
			func(t *testing.T, c *cluster.Cluster) {
				assertProto(t, "SIMPLE", upstreamTLS(t, c.GetTransportSocket()), &tlsv3.UpstreamTlsContext{
					Sni: "api.example.com",
					CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
						TrustedCa: &core.DataSource{Specifier: &core.DataSource_Filename{Filename: "/etc/certs/ca.pem"}},
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{
							{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: "api.example.com"}}},
							spiffeSAN("spiffe://other/ns/x/sa/y"),
							{SanType: tlsv3.SubjectAltNameMatcher_IP_ADDRESS, Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: "10.0.0.1"}}},
						},
					}}},
				})
			}},
		{"SIMPLE defaults: host as SNI, system CAs", dr(&networking.TrafficPolicy{Tls: clientTLS(networking.ClientTLSSettings_SIMPLE)}), "outbound|9080||" + host,
			func(t *testing.T, c *cluster.Cluster) {
				u := upstreamTLS(t, c.GetTransportSocket())
				if u.GetSni() != host || u.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() != DefaultCACertificates {
					t.Errorf("SIMPLE defaults %v", u)
				}
			}},
		{"SIMPLE insecureSkipVerify", dr(&networking.TrafficPolicy{Tls: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_SIMPLE, InsecureSkipVerify: wrapperspb.Bool(true)}}), "outbound|9080||" + host,
			func(t *testing.T, c *cluster.Cluster) {
				if u := upstreamTLS(t, c.GetTransportSocket()); u.GetCommonTlsContext().GetValidationContextType() != nil {
					t.Errorf("insecureSkipVerify kept a validation context: %v", u)
				}
			}},
		{"MUTUAL", dr(&networking.TrafficPolicy{Tls: &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_MUTUAL,
			ClientCertificate: "/c.pem", PrivateKey: "/k.pem"}}), "outbound|9080||" + host,
			func(t *testing.T, c *cluster.Cluster) {
				u := upstreamTLS(t, c.GetTransportSocket())
				assertProto(t, "MUTUAL certificates", u.GetCommonTlsContext().GetTlsCertificates()[0], &tlsv3.TlsCertificate{
					CertificateChain: &core.DataSource{Specifier: &core.DataSource_Filename{Filename: "/c.pem"}},
					PrivateKey:       &core.DataSource{Specifier: &core.DataSource_Filename{Filename: "/k.pem"}},
				})
				if u.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() != DefaultCACertificates {
					t.Errorf("MUTUAL validation %v", u)
				}
			}},
		{"portLevelSettings replace the rule's tls", dr(&networking.TrafficPolicy{Tls: clientTLS(networking.ClientTLSSettings_DISABLE),
			PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{{Port: &networking.PortSelector{Number: 9080}, Tls: clientTLS(networking.ClientTLSSettings_ISTIO_MUTUAL)}}}),
			"outbound|9080||" + host,
			func(t *testing.T, c *cluster.Cluster) {
				if c.GetTransportSocket() == nil {
					t.Error("port-level ISTIO_MUTUAL ignored")
				}
			}},
		{"port-level entry without tls falls back to auto mTLS, not to the rule", dr(&networking.TrafficPolicy{Tls: clientTLS(networking.ClientTLSSettings_DISABLE),
			PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{{Port: &networking.PortSelector{Number: 9080}, LoadBalancer: simpleLB(networking.LoadBalancerSettings_RANDOM)}}}),
			"outbound|9080||" + host,
			func(t *testing.T, c *cluster.Cluster) {
				if len(c.GetTransportSocketMatches()) != 2 {
					t.Errorf("matches %v", c.GetTransportSocketMatches())
				}
			}},
		{"subset tls overrides the rule's", dr(&networking.TrafficPolicy{Tls: clientTLS(networking.ClientTLSSettings_ISTIO_MUTUAL)},
			&networking.Subset{Name: "v2", Labels: map[string]string{"version": "v2"}, TrafficPolicy: &networking.TrafficPolicy{Tls: clientTLS(networking.ClientTLSSettings_DISABLE)}}),
			"outbound|9080|v2|" + host,
			func(t *testing.T, c *cluster.Cluster) {
				if c.GetTransportSocket() != nil || len(c.GetTransportSocketMatches()) != 0 {
					t.Error("subset DISABLE ignored")
				}
			}},
		{"subset without tls inherits the rule's", dr(&networking.TrafficPolicy{Tls: clientTLS(networking.ClientTLSSettings_ISTIO_MUTUAL)},
			&networking.Subset{Name: "v2", Labels: map[string]string{"version": "v2"}, TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: simpleLB(networking.LoadBalancerSettings_RANDOM)}}),
			"outbound|9080|v2|" + host,
			func(t *testing.T, c *cluster.Cluster) {
				assertProto(t, "inherited ISTIO_MUTUAL", upstreamTLS(t, c.GetTransportSocket()), meshTLS("outbound_.9080_.v2_."+host,
					"spiffe://cluster.local/ns/coolapp/sa/legacy", "spiffe://cluster.local/ns/coolapp/sa/ratings"))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := generate(t, objs(tc.dr), sidecarMeta())
			c := r.Clusters[tc.cluster]
			if c == nil {
				t.Fatalf("no cluster %s", tc.cluster)
			}
			tc.check(t, c)
		})
	}
}

func TestDestinationRuleTLSErrors(t *testing.T) {
	for _, tc := range []struct {
		tls  *networking.ClientTLSSettings
		want string
	}{
		{&networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_MUTUAL, ClientCertificate: "/c.pem"}, "MUTUAL needs clientCertificate and privateKey"},
		{&networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_SIMPLE, CredentialName: "secret"}, "credentialName"},
	} {
		d := obj(config.KindDestinationRule, "ratings", &networking.DestinationRule{Host: "ratings", TrafficPolicy: &networking.TrafficPolicy{Tls: tc.tls}})
		err := Generate(model.Build(1, coolapp(append(ratings()[:5], d)...)), sidecarMeta()).Validate()
		if err == nil || !strings.Contains(err.Error(), "DestinationRule coolapp/ratings") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: Validate = %v", tc.tls, err)
		}
	}
}
