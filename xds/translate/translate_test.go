package translate

import (
	"bytes"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
)

const ns = "coolapp"

func obj(kind config.Kind, name string, spec proto.Message) *config.Object {
	return &config.Object{Kind: kind, Meta: config.Meta{Name: name, Namespace: ns}, Spec: spec}
}

func svcEntry(name string, port uint32, eps ...*networking.WorkloadEntry) *config.Object {
	return obj(config.KindServiceEntry, name, &networking.ServiceEntry{
		Hosts:      []string{name + "." + ns + ".svc.cluster.local"},
		Ports:      []*networking.ServicePort{{Number: port, Name: "http", Protocol: "HTTP"}},
		Resolution: networking.ServiceEntry_STATIC,
		Endpoints:  eps,
	})
}

func we(addr, version, locality string, weight uint32) *networking.WorkloadEntry {
	return &networking.WorkloadEntry{Address: addr, Labels: map[string]string{"version": version}, Locality: locality, Weight: weight}
}

func vs(name string, gateways, hosts []string, http ...*networking.HTTPRoute) *config.Object {
	return obj(config.KindVirtualService, name, &networking.VirtualService{Hosts: hosts, Gateways: gateways, Http: http})
}

func dest(host, subset string, port, weight uint32) *networking.HTTPRouteDestination {
	d := &networking.HTTPRouteDestination{Destination: &networking.Destination{Host: host, Subset: subset}, Weight: int32(weight)}
	if port != 0 {
		d.Destination.Port = &networking.PortSelector{Number: port}
	}
	return d
}

func exact(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: s}}
}
func prefix(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: s}}
}
func regexM(s string) *networking.StringMatch {
	return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: s}}
}

func coolapp(extra ...*config.Object) []*config.Object {
	objs := []*config.Object{
		svcEntry("gateway", 8080, we("127.0.0.1", "v1", "", 0)),
		svcEntry("catalog", 8080,
			we("127.0.0.2", "v1", "us/east/a", 1), we("127.0.0.3", "v2", "us/east/a", 3), we("127.0.0.4", "v2", "eu/west", 2)),
		obj(config.KindGateway, "ingress-gateway", &networking.Gateway{
			Selector: map[string]string{"istio": "ingressgateway"},
			Servers:  []*networking.Server{{Port: &networking.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"*"}}},
		}),
		vs("ingress", []string{"ingress-gateway"}, []string{"*"}, &networking.HTTPRoute{
			Match: []*networking.HTTPMatchRequest{{Uri: exact("/")}},
			Route: []*networking.HTTPRouteDestination{dest("gateway", "", 8080, 0)},
		}),
	}
	return append(objs, extra...)
}

func sidecarMeta() *node.Meta {
	return &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "web-1", Namespace: ns, WorkloadName: "web",
		Outbound: "127.0.0.1:15001", Inbound: "127.0.0.1:15006", App: "127.0.0.1:9000"}
}

func routerMeta() *node.Meta {
	return &node.Meta{Type: node.Router, IP: "127.0.0.1", Name: "gw-1", Namespace: ns,
		Labels: map[string]string{"istio": "ingressgateway"}, GatewayPorts: map[uint32]string{80: "127.0.0.1:18080"}}
}

func generate(t *testing.T, objs []*config.Object, p *node.Meta) *Resources {
	t.Helper()
	r := Generate(model.Build(1, objs), p)
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return r
}

func vhost(t *testing.T, rc *route.RouteConfiguration, name string) *route.VirtualHost {
	t.Helper()
	for _, vh := range rc.GetVirtualHosts() {
		if vh.GetName() == name {
			return vh
		}
	}
	t.Fatalf("route config %s: no virtual host %q", rc.GetName(), name)
	return nil
}

func manager(t *testing.T, r *Resources, listenerName string) *hcm.HttpConnectionManager {
	t.Helper()
	l := r.Listeners[listenerName]
	if l == nil {
		t.Fatalf("no listener %q; have %v", listenerName, sortedKeys(r.Listeners))
	}
	m := &hcm.HttpConnectionManager{}
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGatewayCoolapp(t *testing.T) {
	r := generate(t, coolapp(), routerMeta())
	l := r.Listeners["0.0.0.0_80"]
	if l == nil {
		t.Fatalf("listeners: %v", sortedKeys(r.Listeners))
	}
	if sa := l.GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 18080 {
		t.Errorf("listener address %v", sa)
	}
	if got := manager(t, r, "0.0.0.0_80").GetRds().GetRouteConfigName(); got != "http.80" {
		t.Errorf("rds name %q", got)
	}
	rc := r.Routes["http.80"]
	if len(rc.GetVirtualHosts()) != 1 {
		t.Fatalf("vhosts: %v", rc.GetVirtualHosts())
	}
	vh := rc.VirtualHosts[0]
	if len(vh.Domains) != 1 || vh.Domains[0] != "*" {
		t.Errorf("domains %v", vh.Domains)
	}
	if len(vh.Routes) != 1 {
		t.Fatalf("routes %v", vh.Routes)
	}
	rt := vh.Routes[0]
	if rt.GetMatch().GetPath() != "/" {
		t.Errorf("match %v", rt.GetMatch())
	}
	if c := rt.GetRoute().GetCluster(); c != "outbound|8080||gateway.coolapp.svc.cluster.local" {
		t.Errorf("cluster %q", c)
	}
	if _, ok := r.Clusters["outbound|8080||gateway.coolapp.svc.cluster.local"]; !ok {
		t.Errorf("gateway lacks cluster; have %v", sortedKeys(r.Clusters))
	}
	if rt.GetRoute().GetTimeout().AsDuration() != 0 || rt.GetRoute().GetTimeout() == nil {
		t.Errorf("timeout %v, want explicit 0s", rt.GetRoute().GetTimeout())
	}
}

func TestGatewayHostsAndSelection(t *testing.T) {
	objs := coolapp(
		obj(config.KindGateway, "other", &networking.Gateway{
			Selector: map[string]string{"istio": "egress"},
			Servers:  []*networking.Server{{Port: &networking.Port{Number: 9090, Protocol: "HTTP"}, Hosts: []string{"*"}}},
		}),
		obj(config.KindGateway, "web", &networking.Gateway{
			Selector: map[string]string{"istio": "ingressgateway"},
			Servers: []*networking.Server{{Port: &networking.Port{Number: 8000, Protocol: "HTTP"},
				Hosts: []string{"coolapp/shop.example.com", "other-ns/admin.example.com"}}},
		}),
		vs("shop", []string{"coolapp/web"}, []string{"shop.example.com", "admin.example.com"}, &networking.HTTPRoute{
			Route: []*networking.HTTPRouteDestination{dest("catalog", "", 0, 0)},
		}),
	)
	r := generate(t, objs, routerMeta())
	if _, ok := r.Listeners["0.0.0.0_9090"]; ok {
		t.Error("gateway with non-matching selector produced a listener")
	}
	if sa := r.Listeners["0.0.0.0_8000"].GetAddress().GetSocketAddress(); sa.GetPortValue() != 8000 {
		t.Errorf("port 8000 listens on %v", sa)
	}
	rc := r.Routes["http.8000"]
	if len(rc.GetVirtualHosts()) != 1 {
		t.Fatalf("want only shop.example.com (admin host is restricted to other-ns); got %v", rc.GetVirtualHosts())
	}
	vh := vhost(t, rc, "shop.example.com:8000")
	if strings.Join(vh.Domains, ",") != "shop.example.com,shop.example.com:8000" {
		t.Errorf("domains %v", vh.Domains)
	}
	rt := vh.Routes[0]
	if rt.GetMatch().GetPrefix() != "/" || rt.GetRoute().GetCluster() != "outbound|8080||catalog.coolapp.svc.cluster.local" {
		t.Errorf("route %v", rt)
	}
	// Port-80 server is listened on 18080: the Host header may carry either.
	r2 := generate(t, coolapp(vs("named", []string{"ingress-gateway"}, []string{"a.example.com"},
		&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("catalog", "", 0, 0)}})), routerMeta())
	vh = vhost(t, r2.Routes["http.80"], "a.example.com:80")
	if strings.Join(vh.Domains, ",") != "a.example.com,a.example.com:80,a.example.com:18080" {
		t.Errorf("domains %v", vh.Domains)
	}
}

func TestSidecarOutboundDefaults(t *testing.T) {
	r := generate(t, coolapp(), sidecarMeta())
	m := manager(t, r, OutboundListener)
	if m.GetRds().GetRouteConfigName() != "outbound" || m.GetRds().GetConfigSource().GetAds() == nil {
		t.Errorf("rds %v", m.GetRds())
	}
	var filters []string
	for _, f := range m.GetHttpFilters() {
		filters = append(filters, f.GetName()+"="+f.GetTypedConfig().GetTypeUrl())
	}
	wantFilters := "envoy.filters.http.fault=type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault," +
		"envoy.filters.http.cors=type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors," +
		"envoy.filters.http.router=type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	if got := strings.Join(filters, ","); got != wantFilters {
		t.Errorf("http filters %s, want %s", got, wantFilters)
	}
	vh := vhost(t, r.Routes["outbound"], "catalog.coolapp.svc.cluster.local:8080")
	want := "catalog.coolapp.svc.cluster.local:8080,catalog.coolapp.svc:8080,catalog.coolapp:8080,catalog:8080"
	if got := strings.Join(vh.Domains, ","); got != want {
		t.Errorf("domains %s, want %s", got, want)
	}
	if c := vh.Routes[0].GetRoute().GetCluster(); c != "outbound|8080||catalog.coolapp.svc.cluster.local" || vh.Routes[0].GetMatch().GetPrefix() != "/" {
		t.Errorf("default route %v", vh.Routes[0])
	}
	// The gateway-bound VS must not leak into the sidecar.
	if c := vhost(t, r.Routes["outbound"], "gateway.coolapp.svc.cluster.local:8080").Routes[0].GetMatch().GetPrefix(); c != "/" {
		t.Errorf("gateway VS applied to sidecar")
	}
}

func TestSidecarInbound(t *testing.T) {
	r := generate(t, coolapp(), sidecarMeta())
	m := manager(t, r, InboundListener)
	rc := m.GetRouteConfig()
	if rc.GetName() != "inbound|9000||" || rc.VirtualHosts[0].Routes[0].GetRoute().GetCluster() != "inbound|9000||" {
		t.Errorf("inbound route config %v", rc)
	}
	c := r.Clusters["inbound|9000||"]
	if c.GetType() != cluster.Cluster_STATIC {
		t.Fatalf("inbound cluster %v", c)
	}
	sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 9000 {
		t.Errorf("app address %v", sa)
	}
	client := sidecarMeta()
	client.Inbound, client.App = "", ""
	r = generate(t, coolapp(), client)
	if _, ok := r.Listeners[InboundListener]; ok {
		t.Error("client-only sidecar got an inbound listener")
	}
}

func TestSubsetWithoutDestinationRule(t *testing.T) {
	r := generate(t, coolapp(vs("catalog", nil, []string{"catalog"}, &networking.HTTPRoute{
		Route: []*networking.HTTPRouteDestination{dest("catalog", "version-v2", 0, 0)},
	})), sidecarMeta())
	vh := vhost(t, r.Routes["outbound"], "catalog.coolapp.svc.cluster.local:8080")
	c := vh.Routes[0].GetRoute().GetCluster()
	if c != "outbound|8080|version-v2|catalog.coolapp.svc.cluster.local" {
		t.Fatalf("cluster %q", c)
	}
	if _, ok := r.Clusters[c]; ok {
		t.Error("subset cluster exists without a DestinationRule")
	}
}

func TestWeightedAndSubsets(t *testing.T) {
	dr := obj(config.KindDestinationRule, "catalog", &networking.DestinationRule{
		Host: "catalog",
		TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: &networking.LoadBalancerSettings{
			LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_RANDOM}}},
		Subsets: []*networking.Subset{
			{Name: "v1", Labels: map[string]string{"version": "v1"}},
			{Name: "v2", Labels: map[string]string{"version": "v2"}, TrafficPolicy: &networking.TrafficPolicy{
				LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_LEAST_REQUEST}}}},
		},
	})
	r := generate(t, coolapp(dr, vs("catalog", []string{"mesh"}, []string{"catalog.coolapp.svc.cluster.local"}, &networking.HTTPRoute{
		Timeout: durationpb.New(3 * time.Second),
		Route: []*networking.HTTPRouteDestination{
			dest("catalog", "v1", 0, 70), dest("catalog", "v2", 0, 30), dest("catalog", "v3", 0, 0)},
	})), sidecarMeta())
	rt := vhost(t, r.Routes["outbound"], "catalog.coolapp.svc.cluster.local:8080").Routes[0]
	wc := rt.GetRoute().GetWeightedClusters().GetClusters()
	if len(wc) != 2 || wc[0].Name != "outbound|8080|v1|catalog.coolapp.svc.cluster.local" || wc[0].Weight.GetValue() != 70 ||
		wc[1].Name != "outbound|8080|v2|catalog.coolapp.svc.cluster.local" || wc[1].Weight.GetValue() != 30 {
		t.Errorf("weighted clusters %v", wc)
	}
	if rt.GetRoute().GetTimeout().AsDuration() != 3*time.Second {
		t.Errorf("timeout %v", rt.GetRoute().GetTimeout())
	}
	for name, want := range map[string]cluster.Cluster_LbPolicy{
		"outbound|8080||catalog.coolapp.svc.cluster.local":   cluster.Cluster_RANDOM,
		"outbound|8080|v1|catalog.coolapp.svc.cluster.local": cluster.Cluster_RANDOM,
		"outbound|8080|v2|catalog.coolapp.svc.cluster.local": cluster.Cluster_LEAST_REQUEST,
		"outbound|8080||gateway.coolapp.svc.cluster.local":   cluster.Cluster_ROUND_ROBIN,
	} {
		c := r.Clusters[name]
		if c == nil || c.GetLbPolicy() != want || c.GetType() != cluster.Cluster_EDS || c.GetConnectTimeout().AsDuration() != 10*time.Second {
			t.Errorf("cluster %s = %v, want lb %v", name, c, want)
		}
	}
	cla := r.Endpoints["outbound|8080|v2|catalog.coolapp.svc.cluster.local"]
	if len(cla.Endpoints) != 2 {
		t.Fatalf("v2 localities: %v", cla.Endpoints)
	}
	// Sorted by locality: eu/west before us/east/a.
	eu, us := cla.Endpoints[0], cla.Endpoints[1]
	if eu.Locality.GetRegion() != "eu" || eu.Locality.GetZone() != "west" || eu.LoadBalancingWeight.GetValue() != 2 {
		t.Errorf("eu group %v", eu)
	}
	if us.Locality.GetSubZone() != "a" || us.LoadBalancingWeight.GetValue() != 3 || len(us.LbEndpoints) != 1 {
		t.Errorf("us group %v", us)
	}
	le := us.LbEndpoints[0]
	if le.GetLoadBalancingWeight().GetValue() != 3 || le.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() != 8080 {
		t.Errorf("lb endpoint %v", le)
	}
	if v := le.GetMetadata().GetFilterMetadata()["istio"].GetFields()["labels"].GetStructValue().GetFields()["version"].GetStringValue(); v != "v2" {
		t.Errorf("metadata %v", le.GetMetadata())
	}
	if all := r.Endpoints["outbound|8080||catalog.coolapp.svc.cluster.local"]; len(all.Endpoints) != 2 || len(all.Endpoints[1].LbEndpoints) != 2 {
		t.Errorf("whole-service CLA %v", all)
	}
}

func TestEmptyServiceGetsEmptyCLA(t *testing.T) {
	r := generate(t, coolapp(svcEntry("lonely", 80)), sidecarMeta())
	cla, ok := r.Endpoints["outbound|80||lonely.coolapp.svc.cluster.local"]
	if !ok || len(cla.Endpoints) != 0 {
		t.Errorf("CLA %v, %v", cla, ok)
	}
	vh := vhost(t, r.Routes["outbound"], "lonely.coolapp.svc.cluster.local:80")
	if !contains(vh.Domains, "lonely") || !contains(vh.Domains, "lonely:80") {
		t.Errorf("port 80 domains %v", vh.Domains)
	}
}

func TestMatches(t *testing.T) {
	r := generate(t, coolapp(vs("catalog", nil, []string{"catalog"},
		&networking.HTTPRoute{
			Name: "matchers",
			Match: []*networking.HTTPMatchRequest{
				{
					Uri: regexM("/api/v[0-9]+/.*"), Headers: map[string]*networking.StringMatch{"x-user": exact("jason"), "x-any": {}},
					QueryParams:    map[string]*networking.StringMatch{"debug": {}, "q": prefix("ab")},
					WithoutHeaders: map[string]*networking.StringMatch{"x-block": {}, "x-env": exact("prod")},
					Method:         exact("GET"), Authority: prefix("catalog"),
				},
				{Uri: prefix("/Static"), IgnoreUriCase: true},
				{Uri: exact("/other-port"), Port: 9999},
			},
			Route: []*networking.HTTPRouteDestination{dest("catalog", "", 0, 0)},
		},
		&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("gateway", "", 0, 0)}},
	)), sidecarMeta())
	routes := vhost(t, r.Routes["outbound"], "catalog.coolapp.svc.cluster.local:8080").Routes
	if len(routes) != 3 {
		t.Fatalf("want 2 matches (port 9999 dropped) + catch-all, got %d: %v", len(routes), routes)
	}
	m := routes[0].GetMatch()
	if m.GetSafeRegex().GetRegex() != "/api/v[0-9]+/.*" || m.GetSafeRegex().GetGoogleRe2() == nil {
		t.Errorf("regex %v", m.GetSafeRegex())
	}
	var hs []string
	for _, h := range m.GetHeaders() {
		s := h.GetName() + "="
		switch {
		case h.GetPresentMatch():
			s += "present"
		case h.GetStringMatch().GetExact() != "":
			s += "exact:" + h.GetStringMatch().GetExact()
		case h.GetStringMatch().GetPrefix() != "":
			s += "prefix:" + h.GetStringMatch().GetPrefix()
		}
		if h.GetInvertMatch() {
			s = "!" + s
		}
		hs = append(hs, s)
	}
	want := ":authority=prefix:catalog,:method=exact:GET,x-any=present,!x-block=present,!x-env=exact:prod,x-user=exact:jason"
	if got := strings.Join(hs, ","); got != want {
		t.Errorf("headers\n got %s\nwant %s", got, want)
	}
	qp := m.GetQueryParameters()
	if len(qp) != 2 || qp[0].Name != "debug" || !qp[0].GetPresentMatch() || qp[1].GetStringMatch().GetPrefix() != "ab" {
		t.Errorf("query params %v", qp)
	}
	if routes[0].GetName() != "matchers" {
		t.Errorf("route name %q", routes[0].GetName())
	}
	m2 := routes[1].GetMatch()
	if m2.GetPrefix() != "/Static" || m2.GetCaseSensitive() == nil || m2.GetCaseSensitive().GetValue() {
		t.Errorf("ignoreUriCase %v", m2)
	}
	if routes[2].GetRoute().GetCluster() != "outbound|8080||gateway.coolapp.svc.cluster.local" {
		t.Errorf("second http route %v", routes[2])
	}
}

func TestPortMatchAcrossVirtualHosts(t *testing.T) {
	multi := obj(config.KindServiceEntry, "multi", &networking.ServiceEntry{
		Hosts: []string{"multi.coolapp.svc.cluster.local"},
		Ports: []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}, {Number: 81, Name: "admin", Protocol: "HTTP"},
			{Number: 5432, Name: "db", Protocol: "TCP"}},
	})
	r := generate(t, coolapp(multi, vs("multi", nil, []string{"multi"},
		&networking.HTTPRoute{Match: []*networking.HTTPMatchRequest{{Port: 81}}, Route: []*networking.HTTPRouteDestination{dest("multi", "", 0, 0)}},
		&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("multi", "", 0, 0)}},
	)), sidecarMeta())
	rc := r.Routes["outbound"]
	v80 := vhost(t, rc, "multi.coolapp.svc.cluster.local:80").Routes
	v81 := vhost(t, rc, "multi.coolapp.svc.cluster.local:81").Routes
	if len(v80) != 1 || v80[0].GetRoute().GetCluster() != "outbound|80||multi.coolapp.svc.cluster.local" {
		t.Errorf("port 80 routes %v", v80)
	}
	if len(v81) != 2 || v81[0].GetRoute().GetCluster() != "outbound|81||multi.coolapp.svc.cluster.local" {
		t.Errorf("port 81 routes %v", v81)
	}
	for _, vh := range rc.VirtualHosts {
		if strings.HasSuffix(vh.Name, ":5432") {
			t.Error("TCP port got a virtual host")
		}
	}
	if _, ok := r.Clusters["outbound|5432||multi.coolapp.svc.cluster.local"]; !ok {
		t.Error("TCP port lacks a cluster")
	}
}

func TestShortNameClash(t *testing.T) {
	other := &config.Object{Kind: config.KindServiceEntry, Meta: config.Meta{Name: "catalog", Namespace: "zzz"}, Spec: &networking.ServiceEntry{
		Hosts: []string{"catalog.zzz.svc.cluster.local"}, Ports: []*networking.ServicePort{{Number: 8080, Name: "http", Protocol: "HTTP"}},
	}}
	r := generate(t, coolapp(other), sidecarMeta())
	if d := vhost(t, r.Routes["outbound"], "catalog.zzz.svc.cluster.local:8080").Domains; contains(d, "catalog:8080") {
		t.Errorf("other namespace took the short name: %v", d)
	}
	if d := vhost(t, r.Routes["outbound"], "catalog.coolapp.svc.cluster.local:8080").Domains; !contains(d, "catalog:8080") {
		t.Errorf("own namespace lost the short name: %v", d)
	}
}

func TestDeterministic(t *testing.T) {
	objs := coolapp(vs("catalog", nil, []string{"catalog"}, &networking.HTTPRoute{
		Match: []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{"a": exact("1"), "b": exact("2"), "c": exact("3")}}},
		Route: []*networking.HTTPRouteDestination{dest("catalog", "", 0, 0)},
	}))
	marshal := func() []byte {
		r := Generate(model.Build(1, objs), sidecarMeta())
		var buf bytes.Buffer
		for _, typ := range []string{ClusterType, EndpointType, ListenerType, RouteType} {
			for _, m := range r.ByType(typ) {
				b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				buf.Write(b)
			}
		}
		return buf.Bytes()
	}
	first := marshal()
	for i := 0; i < 20; i++ {
		if !bytes.Equal(first, marshal()) {
			t.Fatal("output differs between runs")
		}
	}
}

func TestValidateCatchesProblems(t *testing.T) {
	p := sidecarMeta()
	p.Outbound = "not-an-address"
	if err := Generate(model.Build(1, coolapp()), p).Validate(); err == nil {
		t.Error("bad OUTBOUND_ADDRESS passed validation")
	}
	r := Generate(model.Build(1, coolapp()), sidecarMeta())
	delete(r.Routes, OutboundRoute)
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "outbound") {
		t.Errorf("missing RDS target: %v", err)
	}
	r = Generate(model.Build(1, coolapp()), sidecarMeta())
	r.Routes[OutboundRoute].VirtualHosts[0].Domains = append(r.Routes[OutboundRoute].VirtualHosts[0].Domains, r.Routes[OutboundRoute].VirtualHosts[1].Domains[0])
	if err := r.Validate(); err == nil {
		t.Error("duplicate domain passed validation")
	}
	r = Generate(model.Build(1, coolapp()), sidecarMeta())
	delete(r.Endpoints, "outbound|8080||gateway.coolapp.svc.cluster.local")
	if err := r.Validate(); err == nil {
		t.Error("EDS cluster without CLA passed validation")
	}
}

func TestDump(t *testing.T) {
	r := generate(t, coolapp(), sidecarMeta())
	var all []proto.Message
	for _, typ := range []string{ClusterType, EndpointType, ListenerType, RouteType} {
		all = append(all, r.ByType(typ)...)
	}
	b, err := DumpVersion("v1", all)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"dynamic_active_clusters"`, `"connect_timeout": "10s"`, `"route_config_name": "outbound"`, `"version_info": "v1"`,
		`"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"`, `"cluster_name"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("dump lacks %s", want)
		}
	}
}

func TestGatewayWildcardIntersection(t *testing.T) {
	objs := coolapp(
		obj(config.KindGateway, "wild", &networking.Gateway{
			Selector: map[string]string{"istio": "ingressgateway"},
			Servers:  []*networking.Server{{Port: &networking.Port{Number: 8443, Protocol: "HTTP"}, Hosts: []string{"./*.example.com"}}},
		}),
		vs("any", []string{"wild"}, []string{"*"}, &networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("catalog", "", 0, 0)}}),
		vs("unrelated", []string{"wild"}, []string{"foo.other.org"}, &networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("catalog", "", 0, 0)}}),
	)
	rc := generate(t, objs, routerMeta()).Routes["http.8443"]
	if len(rc.GetVirtualHosts()) != 1 {
		t.Fatalf("vhosts %v", rc.GetVirtualHosts())
	}
	vh := vhost(t, rc, "*.example.com:8443")
	if strings.Join(vh.Domains, ",") != "*.example.com,*.example.com:8443" || len(vh.Routes) != 1 {
		t.Errorf("vhost %v", vh)
	}
}
