package translate

import (
	"slices"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
)

func grpcMeta() *node.Meta {
	return &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "client", Namespace: ns, Generator: node.GeneratorGRPC}
}

func TestGRPCNode(t *testing.T) {
	greeter := obj(config.KindServiceEntry, "greeter", &networking.ServiceEntry{
		Hosts: []string{"greeter.coolapp.svc.cluster.local"},
		Ports: []*networking.ServicePort{{Number: 50051, Name: "grpc", Protocol: "GRPC"}, {Number: 5432, Name: "tcp", Protocol: "TCP"}},
		Endpoints: []*networking.WorkloadEntry{
			{Address: "127.0.0.2", Labels: map[string]string{"version": "v1", config.LabelTLSMode: "istio"}, ServiceAccount: "greeter"},
			{Address: "127.0.0.3", Labels: map[string]string{"version": "v2", config.LabelTLSMode: "istio"}, ServiceAccount: "greeter"},
		},
	})
	plain := svcEntry("plain", 8080, we("127.0.0.4", "v1", "", 0))
	dr := obj(config.KindDestinationRule, "greeter", &networking.DestinationRule{Host: "greeter",
		TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: networking.LoadBalancerSettings_RANDOM}}},
		Subsets:       []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}})
	split := vs("greeter", nil, []string{"greeter"}, &networking.HTTPRoute{
		Route:      []*networking.HTTPRouteDestination{dest("greeter", "v1", 0, 80), dest("greeter", "v2", 0, 20)},
		Timeout:    durationpb.New(2 * time.Second),
		CorsPolicy: &networking.CorsPolicy{AllowOrigins: []*networking.StringMatch{exact("https://a")}},
	})
	r := Generate(model.Build(1, []*config.Object{greeter, plain, dr, split}), grpcMeta())
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	target := GRPCTarget("greeter.coolapp.svc.cluster.local", 50051)
	if _, ok := r.Listeners[GRPCTarget("greeter.coolapp.svc.cluster.local", 5432)]; ok || len(r.Listeners) != 2 {
		t.Errorf("listeners %v: want one per HTTP port (greeter:50051, plain:8080)", sortedKeys(r.Listeners))
	}
	l := r.Listeners[target]
	m := &hcm.HttpConnectionManager{}
	if l == nil || l.GetApiListener().GetApiListener().UnmarshalTo(m) != nil {
		t.Fatalf("listener %s: %v", target, l)
	}
	if m.GetRds().GetRouteConfigName() != target {
		t.Errorf("RDS name %q", m.GetRds().GetRouteConfigName())
	}
	var filters []string
	for _, f := range m.GetHttpFilters() {
		filters = append(filters, f.GetName())
	}
	if !slices.Equal(filters, []string{faultFilterName, routerFilterName}) {
		t.Errorf("HTTP filters %v: gRPC knows fault and router", filters)
	}
	rc := r.Routes[target]
	if rc == nil || len(rc.GetVirtualHosts()) != 1 {
		t.Fatalf("route table %s: %v", target, rc)
	}
	vh := rc.GetVirtualHosts()[0]
	if !slices.Contains(vh.GetDomains(), target) {
		t.Errorf("domains %v lack the target", vh.GetDomains())
	}
	a := vh.GetRoutes()[0].GetRoute()
	if a.GetMaxStreamDuration().GetMaxStreamDuration().AsDuration() != 2*time.Second || a.GetTimeout().AsDuration() != 2*time.Second {
		t.Errorf("timeout %v, max_stream_duration %v", a.GetTimeout(), a.GetMaxStreamDuration())
	}
	if len(a.GetWeightedClusters().GetClusters()) != 2 {
		t.Errorf("weighted clusters %v", a.GetWeightedClusters())
	}
	if _, ok := vh.GetRoutes()[0].GetTypedPerFilterConfig()[corsFilterName]; ok {
		t.Error("CORS per-filter config sent to gRPC")
	}
	v1 := r.Clusters[ClusterName(50051, "v1", "greeter.coolapp.svc.cluster.local")]
	if v1.GetLbPolicy() != cluster.Cluster_ROUND_ROBIN || len(v1.GetTransportSocketMatches()) != 0 {
		t.Errorf("cluster v1: lb %v, matches %d", v1.GetLbPolicy(), len(v1.GetTransportSocketMatches()))
	}
	up := &tlsv3.UpstreamTlsContext{}
	if v1.GetTransportSocket().GetTypedConfig().UnmarshalTo(up) != nil {
		t.Fatalf("cluster v1 has no TLS: %v", v1.GetTransportSocket())
	}
	common := up.GetCommonTlsContext()
	vc := common.GetValidationContext()
	if common.GetTlsCertificateProviderInstance().GetInstanceName() != GRPCCertProvider || vc.GetCaCertificateProviderInstance().GetCertificateName() != "ROOTCA" ||
		len(common.GetTlsCertificateSdsSecretConfigs()) != 0 || len(vc.GetMatchSubjectAltNames()) != 1 ||
		vc.GetMatchSubjectAltNames()[0].GetExact() != "spiffe://cluster.local/ns/coolapp/sa/greeter" {
		t.Errorf("cluster v1 TLS %v", up)
	}
	if p := r.Clusters[ClusterName(8080, "", "plain.coolapp.svc.cluster.local")]; p.GetTransportSocket() != nil {
		t.Errorf("plaintext endpoints got TLS: %v", p.GetTransportSocket())
	}
}
