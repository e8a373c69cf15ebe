package xdsscale

import (
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWireNames(t *testing.T) {
	ads := &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
	eds := &cluster.Cluster{Name: "outbound|80||a", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{EdsConfig: ads, ServiceName: "svc-a"}}
	if n, ok := edsServiceName(marshal(t, eds)); !ok || n != "svc-a" {
		t.Errorf("EDS cluster with service_name: got %q, %v", n, ok)
	}
	eds.EdsClusterConfig.ServiceName = ""
	if n, ok := edsServiceName(marshal(t, eds)); !ok || n != "outbound|80||a" {
		t.Errorf("EDS cluster without service_name: got %q, %v", n, ok)
	}
	static := &cluster.Cluster{Name: "inbound|8080||", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC}}
	if n, ok := edsServiceName(marshal(t, static)); ok {
		t.Errorf("STATIC cluster read as EDS %q", n)
	}
	if got := resourceName(marshal(t, &endpoint.ClusterLoadAssignment{ClusterName: "outbound|80|v1|a"})); got != "outbound|80|v1|a" {
		t.Errorf("assignment name %q", got)
	}
	if got := resourceName([]byte{0xff}); got != "" {
		t.Errorf("garbage gave name %q", got)
	}
}

// TestMeshIsValid decodes and validates every generated object and checks
// that the model sees the services and endpoints the harness expects.
func TestMeshIsValid(t *testing.T) {
	m := Mesh{Services: 6, Endpoints: 4, PerNamespace: 4, Sidecar: "none"}
	objs, err := config.Decode("mesh.yaml", strings.NewReader(strings.Join(m.Documents(), "---\n")))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if errs := config.Validate(o); len(errs) > 0 {
			t.Errorf("%s: %v", o.Key(), errs)
		}
	}
	s := model.Build(1, objs)
	if got := len(s.Services()); got != 6 {
		t.Fatalf("services: got %d, want 6", got)
	}
	svc := s.Service(m.Host(5))
	if svc == nil || len(svc.Endpoints) != 4 || svc.Namespace != "ns-1" {
		t.Fatalf("service 5: %+v", svc)
	}
	p := m.Proxy(7, false)
	if p.Name != "svc-1-1" || p.Labels["version"] != "v2" || !strings.HasPrefix(p.Inbound, EndpointAddress(1, 1)+":") {
		t.Errorf("proxy 7: %+v", p)
	}
}
