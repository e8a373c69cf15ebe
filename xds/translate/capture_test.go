package translate

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/runtime"
	"github.com/weft-mesh/weft/xds/node"
)

// bookinfoCaptured is a slice of Bookinfo as a cluster has it: services
// with ClusterIPs, the pod under test (reviews-v1, 10.1.0.5) behind two
// of them, a TCP database, routing and security objects.
func bookinfoCaptured() []*config.Object {
	ep := func(addr, app, version string) *networking.WorkloadEntry {
		return &networking.WorkloadEntry{Address: addr, ServiceAccount: app,
			Labels: map[string]string{"app": app, "version": version, config.LabelTLSMode: "istio"}}
	}
	svc := func(name, ip string, ports []*networking.ServicePort, eps ...*networking.WorkloadEntry) *config.Object {
		return obj(config.KindServiceEntry, name, &networking.ServiceEntry{
			Hosts: []string{name + "." + ns + ".svc.cluster.local"}, Addresses: []string{ip}, Ports: ports,
			Resolution: networking.ServiceEntry_STATIC, Location: networking.ServiceEntry_MESH_INTERNAL, Endpoints: eps,
		})
	}
	http9080 := []*networking.ServicePort{{Number: 9080, Name: "http", Protocol: "HTTP"}}
	return []*config.Object{
		svc("reviews", "10.96.0.10", []*networking.ServicePort{
			{Number: 9080, Name: "http", Protocol: "HTTP"},
			{Number: 9090, Name: "tcp-metrics", Protocol: "TCP", TargetPort: 9091},
		}, ep("10.1.0.5", "reviews", "v1"), ep("10.1.0.6", "reviews", "v2")),
		svc("ratings", "10.96.0.30", http9080, ep("10.1.0.8", "ratings", "v1")),
		svc("mysql", "10.96.0.20", []*networking.ServicePort{{Number: 3306, Name: "tcp", Protocol: "TCP"}},
			ep("10.1.0.7", "mysql", "v1"), ep("10.1.0.9", "mysql", "v2")),
		svc("web", "10.96.0.40", []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}}, ep("10.1.0.10", "web", "v1")),
		obj(config.KindDestinationRule, "reviews", &networking.DestinationRule{Host: "reviews", Subsets: []*networking.Subset{
			{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}}),
		obj(config.KindDestinationRule, "mysql", &networking.DestinationRule{Host: "mysql", Subsets: []*networking.Subset{
			{Name: "v2", Labels: map[string]string{"version": "v2"}}}}),
		vs("reviews", nil, []string{"reviews"},
			&networking.HTTPRoute{Match: []*networking.HTTPMatchRequest{{Headers: map[string]*networking.StringMatch{"end-user": exact("jason")}}},
				Route: []*networking.HTTPRouteDestination{dest("reviews", "v2", 0, 0)}},
			&networking.HTTPRoute{Route: []*networking.HTTPRouteDestination{dest("reviews", "v1", 0, 0)}}),
		obj(config.KindVirtualService, "mysql", &networking.VirtualService{Hosts: []string{"mysql"}, Tcp: []*networking.TCPRoute{{
			Match: []*networking.L4MatchAttributes{{Port: 3306}},
			Route: []*networking.RouteDestination{{Destination: &networking.Destination{Host: "mysql", Subset: "v2"}}},
		}}}),
		obj(config.KindPeerAuthentication, "reviews", &security.PeerAuthentication{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "reviews"}},
			Mtls:     &security.PeerAuthentication_MutualTLS{Mode: security.PeerAuthentication_MutualTLS_PERMISSIVE},
			PortLevelMtls: map[uint32]*security.PeerAuthentication_MutualTLS{
				9091: {Mode: security.PeerAuthentication_MutualTLS_DISABLE},
			},
		}),
		obj(config.KindAuthorizationPolicy, "reviews", &security.AuthorizationPolicy{
			Selector: &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "reviews"}},
			Rules:    []*security.Rule{{From: []*security.Rule_From{{Source: &security.Source{Namespaces: []string{ns}}}}}},
		}),
	}
}

func capturedMeta() *node.Meta {
	return &node.Meta{Type: node.Sidecar, IP: "10.1.0.5", Name: "reviews-v1-5d8f", Namespace: ns, WorkloadName: "reviews-v1",
		Labels: map[string]string{"app": "reviews", "version": "v1"}, ServiceAccount: "reviews", Interception: node.InterceptRedirect}
}

func TestCapturedSidecarResources(t *testing.T) {
	r := generate(t, bookinfoCaptured(), capturedMeta())
	if got, want := strings.Join(sortedKeys(r.Listeners), " "),
		"0.0.0.0_80 0.0.0.0_9080 10.96.0.10_9090 10.96.0.20_3306 virtualInbound virtualOutbound"; got != want {
		t.Fatalf("listeners %s, want %s", got, want)
	}
	if got := strings.Join(sortedKeys(r.Routes), " "); got != "80 9080" {
		t.Errorf("route configurations %s, want 80 9080 (no \"outbound\")", got)
	}

	out := r.Listeners[OutboundListener]
	if sa := out.GetAddress().GetSocketAddress(); sa.GetAddress() != "0.0.0.0" || sa.GetPortValue() != 15001 || !out.GetUseOriginalDst().GetValue() {
		t.Errorf("virtualOutbound at %v, use_original_dst %v", sa, out.GetUseOriginalDst())
	}
	if got := chainsOf(t, out); got != "virtualOutbound-blackhole[15001]:tcp:BlackHoleCluster virtualOutbound-catchall-tcp:tcp:PassthroughCluster" {
		t.Errorf("virtualOutbound chains %s", got)
	}

	h := r.Listeners["0.0.0.0_9080"]
	if h.GetBindToPort().GetValue() || h.BindToPort == nil || h.GetAddress().GetSocketAddress().GetPortValue() != 9080 {
		t.Errorf("0.0.0.0_9080 binds, or at %v", h.GetAddress())
	}
	if m := manager(t, r, "0.0.0.0_9080"); m.GetRds().GetRouteConfigName() != "9080" {
		t.Errorf("0.0.0.0_9080 RDS %q", m.GetRds().GetRouteConfigName())
	}
	rc := r.Routes["9080"]
	vhs := rc.GetVirtualHosts()
	if last := vhs[len(vhs)-1]; last.GetName() != AllowAnyVirtualHost || strings.Join(last.GetDomains(), ",") != "*" ||
		last.GetRoutes()[0].GetRoute().GetCluster() != PassthroughCluster {
		t.Errorf("last virtual host %v", last)
	}
	ratings := vhost(t, rc, "ratings.coolapp.svc.cluster.local:9080")
	for _, d := range []string{"ratings.coolapp.svc.cluster.local:9080", "ratings:9080", "10.96.0.30", "10.96.0.30:9080"} {
		if !contains(ratings.GetDomains(), d) {
			t.Errorf("ratings domains %v lack %s", ratings.GetDomains(), d)
		}
	}
	reviews := vhost(t, rc, "reviews.coolapp.svc.cluster.local:9080")
	if !contains(reviews.GetDomains(), "10.96.0.10:9080") || len(reviews.GetRoutes()) != 2 ||
		reviews.GetRoutes()[0].GetRoute().GetCluster() != "outbound|9080|v2|reviews.coolapp.svc.cluster.local" ||
		reviews.GetRoutes()[1].GetRoute().GetCluster() != "outbound|9080|v1|reviews.coolapp.svc.cluster.local" {
		t.Errorf("reviews virtual host: %v", reviews)
	}
	web := vhost(t, r.Routes["80"], "web.coolapp.svc.cluster.local:80")
	for _, d := range []string{"web", "web:80", "10.96.0.40", "10.96.0.40:80"} {
		if !contains(web.GetDomains(), d) {
			t.Errorf("web domains %v lack %s", web.GetDomains(), d)
		}
	}

	for name, want := range map[string]string{
		"10.96.0.20_3306": "outbound|3306|v2|mysql.coolapp.svc.cluster.local", // the VirtualService's tcp route
		"10.96.0.10_9090": "outbound|9090||reviews.coolapp.svc.cluster.local", // no tcp route: the service
	} {
		l := r.Listeners[name]
		if l.GetBindToPort().GetValue() || l.BindToPort == nil {
			t.Errorf("%s binds a socket", name)
		}
		if got := chainsOf(t, l); got != ":tcp:"+want {
			t.Errorf("%s chains %s, want tcp_proxy to %s", name, got, want)
		}
	}

	in := r.Listeners[InboundListener]
	if sa := in.GetAddress().GetSocketAddress(); sa.GetPortValue() != 15006 || in.GetUseOriginalDst().GetValue() {
		t.Errorf("virtualInbound at %v", sa)
	}
	var lfs []string
	for _, lf := range in.GetListenerFilters() {
		lfs = append(lfs, lf.GetName())
	}
	if got := strings.Join(lfs, " "); got != OriginalDstFilter+" "+TLSInspectorFilter {
		t.Errorf("virtualInbound listener filters %s", got)
	}
	if got, want := chainsOf(t, in), strings.Join([]string{
		"virtualInbound-blackhole[15006]:tcp:BlackHoleCluster",
		"inbound-tls-9080[9080/tls]:rbac,hcm:inbound|9080||",
		"inbound-plaintext-9080[9080/raw_buffer]:rbac,hcm:inbound|9080||",
		"inbound-plaintext-9091[9091]:rbac,tcp:inbound|9091||",
		"inbound-tls-passthrough[tls]:rbac,tcp:InboundPassthroughClusterIpv4",
		"inbound-plaintext-passthrough[raw_buffer]:rbac,tcp:InboundPassthroughClusterIpv4",
	}, " "); got != want {
		t.Errorf("virtualInbound chains\n got %s\nwant %s", got, want)
	}
	for _, name := range []string{"inbound|9080||", "inbound|9091||"} {
		c := r.Clusters[name]
		ep := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if c.GetType() != cluster.Cluster_STATIC || ep.GetAddress() != "10.1.0.5" ||
			c.GetUpstreamBindConfig().GetSourceAddress().GetAddress() != InboundPassthroughSource {
			t.Errorf("cluster %s: %v", name, c)
		}
	}
	for _, name := range []string{PassthroughCluster, InboundPassthroughCluster} {
		if c := r.Clusters[name]; c.GetType() != cluster.Cluster_ORIGINAL_DST || c.GetLbPolicy() != cluster.Cluster_CLUSTER_PROVIDED {
			t.Errorf("cluster %s: %v", name, c)
		}
	}
	if r.Clusters[InboundPassthroughCluster].GetUpstreamBindConfig() == nil || r.Clusters[PassthroughCluster].GetUpstreamBindConfig() != nil {
		t.Error("only the inbound passthrough connects from 127.0.0.6")
	}

	// The weft proxy takes all of it.
	ca := mtlstest.NewCA(t, "root")
	res := &runtime.Resources{Listeners: r.Listeners, Routes: r.Routes, Clusters: r.Clusters, Endpoints: r.Endpoints,
		Secrets: ca.Secrets(t, mtlstest.SPIFFE(ns, "reviews"))}
	cfg, err := runtime.Compile(res)
	if err != nil {
		t.Fatalf("the proxy refuses the captured sidecar's resources: %v", err)
	}
	if l := cfg.Listener(InboundListener); len(l.ByPort) != 3 || l.TCP == nil {
		t.Errorf("compiled virtualInbound: ports %v, own tcp %v", l.ByPort, l.TCP)
	}
}

// TestCapturedSidecarInactive: a pod that gets no traffic (not ready yet,
// or terminating: the Kubernetes source lists it in the ServiceEntry's
// inactive endpoints) keeps the inbound chains of its ports, so requests
// that reach it while it starts or drains are served as HTTP, with its
// policies, not passed through as TCP; its callers have no endpoint for it.
func TestCapturedSidecarInactive(t *testing.T) {
	objs := bookinfoCaptured()
	reviews := objs[0]
	se := reviews.Spec.(*networking.ServiceEntry)
	se.Endpoints = se.Endpoints[1:] // 10.1.0.5, the pod under test, is terminating
	reviews.Meta.Annotations = map[string]string{model.AnnotationInactiveEndpoints: `[{"address":"10.1.0.5"}]`}
	r := generate(t, objs, capturedMeta())
	want := "virtualInbound-blackhole[15006]:tcp:BlackHoleCluster " +
		"inbound-tls-9080[9080/tls]:rbac,hcm:inbound|9080|| inbound-plaintext-9080[9080/raw_buffer]:rbac,hcm:inbound|9080|| " +
		"inbound-plaintext-9091[9091]:rbac,tcp:inbound|9091|| "
	if got := chainsOf(t, r.Listeners[InboundListener]); !strings.HasPrefix(got, want) {
		t.Errorf("virtualInbound chains of a terminating pod\n got %s\nwant %s...", got, want)
	}
	for _, e := range r.Endpoints[ClusterName(9080, "", "reviews."+ns+".svc.cluster.local")].GetEndpoints() {
		for _, le := range e.GetLbEndpoints() {
			if a := le.GetEndpoint().GetAddress().GetSocketAddress().GetAddress(); a == "10.1.0.5" {
				t.Error("the terminating pod is an endpoint of its service")
			}
		}
	}
}

// Local mode is untouched, and a captured node without its pod IP is a
// problem, not a broken listener.
func TestCapturedSidecarNeedsPodIP(t *testing.T) {
	m := capturedMeta()
	m.IP = "pod"
	r := Generate(model.Build(1, bookinfoCaptured()), m)
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "pod's IP address") {
		t.Errorf("Validate: %v", err)
	}
	local := generate(t, bookinfoCaptured(), sidecarMeta())
	if local.Listeners[OutboundListener].GetUseOriginalDst() != nil || local.Routes[OutboundRoute] == nil || local.Clusters[PassthroughCluster] != nil {
		t.Error("local mode got capture resources")
	}
}

// chainsOf renders a listener's chains as NAME[PORT/PROTOCOL]:FILTERS:CLUSTER.
func chainsOf(t *testing.T, l *listener.Listener) string {
	t.Helper()
	var out []string
	for _, fc := range l.GetFilterChains() {
		var match []string
		if p := fc.GetFilterChainMatch().GetDestinationPort(); p != nil {
			match = append(match, fmt.Sprint(p.GetValue()))
		}
		if tp := fc.GetFilterChainMatch().GetTransportProtocol(); tp != "" {
			match = append(match, tp)
		}
		s := fc.GetName()
		if len(match) > 0 {
			s += "[" + strings.Join(match, "/") + "]"
		}
		var kinds []string
		target := ""
		for _, f := range fc.GetFilters() {
			switch f.GetName() {
			case netRBACFilterName:
				kinds = append(kinds, "rbac")
			case tcpProxyFilterName:
				kinds = append(kinds, "tcp")
				tp := &tcpv3.TcpProxy{}
				if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
					t.Fatal(err)
				}
				target = tp.GetCluster()
			case hcmFilterName:
				m := &hcm.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
					t.Fatal(err)
				}
				for _, hf := range m.GetHttpFilters() {
					if hf.GetName() == rbacFilterName && !contains(kinds, "rbac") {
						kinds = append(kinds, "rbac")
					}
				}
				kinds = append(kinds, "hcm")
				target = inlineCluster(m.GetRouteConfig())
			}
		}
		out = append(out, s+":"+strings.Join(kinds, ",")+":"+target)
	}
	return strings.Join(out, " ")
}

func inlineCluster(rc *route.RouteConfiguration) string {
	var cs []string
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			cs = append(cs, r.GetRoute().GetCluster())
		}
	}
	sort.Strings(cs)
	return strings.Join(cs, ",")
}
