package translate

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/resource"
)

// incrementalMesh is a small mesh whose objects a test replaces one at a
// time, as a store does: every other object keeps its pointer.
type incrementalMesh struct {
	objs map[config.Key]*config.Object
}

func (m *incrementalMesh) put(o *config.Object) { m.objs[o.Key()] = o }

func (m *incrementalMesh) list() []*config.Object {
	var out []*config.Object
	for _, o := range m.objs {
		out = append(out, o)
	}
	return out
}

func newIncrementalMesh() *incrementalMesh {
	m := &incrementalMesh{objs: map[config.Key]*config.Object{}}
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("svc%d", i)
		namespace := fmt.Sprintf("ns%d", i%2)
		m.put(objNS(config.KindServiceEntry, namespace, name, &networking.ServiceEntry{
			Hosts:            []string{name + "." + namespace + ".svc.cluster.local"},
			Addresses:        []string{fmt.Sprintf("240.0.0.%d", i+1)},
			Ports:            []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}, {Number: 5432, Name: "tcp", Protocol: "TCP"}},
			Resolution:       networking.ServiceEntry_STATIC,
			WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": name}},
		}))
		for j := 0; j < 2; j++ {
			m.put(endpointEntry(namespace, name, j))
		}
		m.put(objNS(config.KindDestinationRule, namespace, name, &networking.DestinationRule{Host: name,
			Subsets: []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}}))
		m.put(weightVS(namespace, name, 90))
	}
	return m
}

func endpointEntry(namespace, svc string, j int) *config.Object {
	return objNS(config.KindWorkloadEntry, namespace, fmt.Sprintf("%s-%d", svc, j), &networking.WorkloadEntry{
		Address: fmt.Sprintf("10.%d.%d.%d", len(svc), j, len(namespace)+j), ServiceAccount: svc,
		Labels: map[string]string{"app": svc, "version": fmt.Sprintf("v%d", j%2+1), config.LabelTLSMode: "istio"},
	})
}

func weightVS(namespace, name string, w int32) *config.Object {
	return objNS(config.KindVirtualService, namespace, name, &networking.VirtualService{Hosts: []string{name}, Http: []*networking.HTTPRoute{{
		Route: []*networking.HTTPRouteDestination{
			{Destination: &networking.Destination{Host: name, Subset: "v1"}, Weight: w},
			{Destination: &networking.Destination{Host: name, Subset: "v2"}, Weight: 100 - w},
		},
	}}})
}

// TestTranslatorMatchesFreshGeneration changes a mesh one object at a time
// (endpoints, weights, rules, mTLS, policies, Sidecars) and checks after
// every change that what a long-lived Translator generates, reusing its
// caches, parts and the proxies' previous outputs, is exactly what a new
// Translator generates from nothing.
func TestTranslatorMatchesFreshGeneration(t *testing.T) {
	m := newIncrementalMesh()
	proxies := []*node.Meta{
		{Type: node.Sidecar, IP: "10.4.0.3", Name: "svc1-0", Namespace: "ns1", Labels: map[string]string{"app": "svc1", "version": "v1"},
			Inbound: "10.4.0.3:8080", Outbound: "127.0.0.1:15001", App: "127.0.0.1:8080"},
		{Type: node.Sidecar, IP: "10.4.0.2", Name: "svc0-0", Namespace: "ns0", Labels: map[string]string{"app": "svc0", "version": "v1"},
			Interception: node.InterceptRedirect},
		{Type: node.Router, IP: "127.0.0.1", Name: "gw", Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}},
	}
	tr := NewTranslator(Options{})
	prevOut := make([]*Output, len(proxies))
	var prev *model.Snapshot
	rng := rand.New(rand.NewPCG(1, 2))
	changes := []func(i int) string{
		func(i int) string {
			svc := fmt.Sprintf("svc%d", i%6)
			m.put(endpointEntry(fmt.Sprintf("ns%d", i%6%2), svc, 2+rng.IntN(3)))
			return "endpoint added to " + svc
		},
		func(i int) string {
			svc := fmt.Sprintf("svc%d", i%6)
			m.put(weightVS(fmt.Sprintf("ns%d", i%6%2), svc, int32(rng.IntN(100))))
			return "weight of " + svc
		},
		func(i int) string {
			svc := fmt.Sprintf("svc%d", i%6)
			m.put(objNS(config.KindDestinationRule, fmt.Sprintf("ns%d", i%6%2), svc, &networking.DestinationRule{Host: svc,
				TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_ConsistentHash{
					ConsistentHash: &networking.LoadBalancerSettings_ConsistentHashLB{HashKey: &networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: "x-user"}}}}},
				Subsets: []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}}}))
			return "rule of " + svc
		},
		func(i int) string {
			mode := []security.PeerAuthentication_MutualTLS_Mode{security.PeerAuthentication_MutualTLS_DISABLE, security.PeerAuthentication_MutualTLS_STRICT}[i%2]
			m.put(objNS(config.KindPeerAuthentication, "ns1", "default", &security.PeerAuthentication{Mtls: &security.PeerAuthentication_MutualTLS{Mode: mode}}))
			return "PeerAuthentication " + mode.String()
		},
		func(i int) string {
			m.put(objNS(config.KindAuthorizationPolicy, "ns1", "allow", &security.AuthorizationPolicy{Rules: []*security.Rule{{To: []*security.Rule_To{{Operation: &security.Operation{Methods: []string{fmt.Sprintf("GET%d", i)}}}}}}}))
			return "AuthorizationPolicy"
		},
		func(i int) string {
			hosts := []string{"./*"}
			if i%2 == 1 {
				hosts = []string{"ns0/svc2.ns0.svc.cluster.local"}
			}
			m.put(objNS(config.KindSidecar, "ns1", "default", &networking.Sidecar{Egress: []*networking.IstioEgressListener{{Hosts: hosts}},
				OutboundTrafficPolicy: &networking.OutboundTrafficPolicy{Mode: networking.OutboundTrafficPolicy_Mode(i % 2)}}))
			return fmt.Sprintf("Sidecar egress %v", hosts)
		},
		func(i int) string {
			svc := fmt.Sprintf("svc%d", i%6)
			ns := fmt.Sprintf("ns%d", i%6%2)
			o := m.objs[config.Key{Kind: config.KindServiceEntry, Namespace: ns, Name: svc}]
			se := proto.Clone(o.Spec).(*networking.ServiceEntry)
			se.ExportTo = [][]string{nil, {"."}}[i%2]
			m.put(objNS(config.KindServiceEntry, ns, svc, se))
			return fmt.Sprintf("exportTo of %s: %v", svc, se.ExportTo)
		},
	}
	for step := 0; step < 60; step++ {
		what := "initial"
		if step > 0 {
			what = changes[rng.IntN(len(changes))](step)
		}
		s := model.BuildWith(int64(step+1), m.list(), model.Options{Previous: prev})
		fresh := model.Build(int64(step+1), m.list())
		for i, p := range proxies {
			got := tr.Generate(s, p, prevOut[i])
			want := NewTranslator(Options{}).Generate(fresh, p, nil)
			for _, typ := range []string{ClusterType, EndpointType, ListenerType, RouteType} {
				if d := resource.Compare(want.ByType(typ), got.ByType(typ)); !d.Empty() {
					t.Fatalf("step %d (%s), proxy %s, %s: incremental output differs from fresh: changed %v, removed %v",
						step, what, p.Name, typ, names(d.Changed), d.Removed)
				}
			}
			if (got.Validate() == nil) != (want.Validate() == nil) {
				t.Fatalf("step %d (%s), proxy %s: validation %v, fresh %v", step, what, p.Name, got.Validate(), want.Validate())
			}
			prevOut[i] = got
		}
		prev = s
	}
}

func names(rs []*resource.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}
