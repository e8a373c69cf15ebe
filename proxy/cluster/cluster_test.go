package cluster

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/lb/leastrequest"
)

func lbe(port uint32, w uint32, h corev3.HealthStatus) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
			Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}}},
		LoadBalancingWeight: wrapperspb.UInt32(w),
		HealthStatus:        h,
	}
}

func eds(name string, p clusterv3.Cluster_LbPolicy) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: "svc"}, LbPolicy: p}
}

func weights(eps []*lb.Endpoint) map[string]uint32 {
	m := map[string]uint32{}
	for _, e := range eps {
		m[e.Address] = e.Weight
	}
	return m
}

func TestEndpointsHealthPriorityWeights(t *testing.T) {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "svc", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{Locality: &corev3.Locality{Region: "r", Zone: "a"}, LoadBalancingWeight: wrapperspb.UInt32(3), LbEndpoints: []*endpointv3.LbEndpoint{
			lbe(1, 1, corev3.HealthStatus_HEALTHY), lbe(2, 2, corev3.HealthStatus_UNKNOWN), lbe(3, 5, corev3.HealthStatus_UNHEALTHY),
		}},
		{Locality: &corev3.Locality{Region: "r", Zone: "b"}, LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: []*endpointv3.LbEndpoint{
			lbe(4, 1, corev3.HealthStatus_HEALTHY),
		}},
		{Priority: 1, LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: []*endpointv3.LbEndpoint{lbe(5, 1, corev3.HealthStatus_HEALTHY)}},
	}}
	c, err := Compile(eds("c", clusterv3.Cluster_LEAST_REQUEST), cla)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Balancer.(*leastrequest.Balancer); !ok || c.Policy != lb.LeastRequest || c.Type != "EDS" {
		t.Errorf("cluster = %+v", c)
	}
	// Unhealthy :3 and failover-priority :5 are out; locality weights equal
	// the sums of their healthy endpoints' weights, so endpoint weights stand.
	if got := weights(c.Endpoints); len(got) != 3 || got["127.0.0.1:1"] != 1 || got["127.0.0.1:2"] != 2 || got["127.0.0.1:4"] != 1 {
		t.Errorf("weights = %v", got)
	}
	if c.Endpoints[0].Locality != "r/a/" {
		t.Errorf("locality = %q", c.Endpoints[0].Locality)
	}

	// Locality b weighted 3x locality a: its single endpoint gets 3/4 of traffic.
	cla.Endpoints[0].LoadBalancingWeight = wrapperspb.UInt32(1)
	cla.Endpoints[1].LoadBalancingWeight = wrapperspb.UInt32(3)
	eps, err := Endpoints(cla)
	if err != nil {
		t.Fatal(err)
	}
	got := weights(eps)
	if got["127.0.0.1:4"] != 10000 || got["127.0.0.1:1"] != 1111 || got["127.0.0.1:2"] != 2222 {
		t.Errorf("locality-weighted = %v", got)
	}

	// Only unhealthy at priority 0: fail over to priority 1.
	cla.Endpoints = cla.Endpoints[2:]
	eps, _ = Endpoints(cla)
	if len(eps) != 1 || eps[0].Address != "127.0.0.1:5" {
		t.Errorf("failover = %v", weights(eps))
	}
}

func TestNoEndpoints(t *testing.T) {
	c, err := Compile(eds("c", clusterv3.Cluster_ROUND_ROBIN), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Pick(nil, lb.Hash{}) != nil || c.ConnectTimeout != DefaultConnectTimeout {
		t.Errorf("cluster = %+v", c)
	}
	if AssignmentName(eds("c", 0)) != "svc" || AssignmentName(&clusterv3.Cluster{Name: "x"}) != "x" {
		t.Error("AssignmentName")
	}
}

func TestErrors(t *testing.T) {
	c := eds("c", clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG)
	if _, err := Compile(c, nil); err == nil || !strings.Contains(err.Error(), `cluster "c": lb_policy`) {
		t.Errorf("err = %v", err)
	}
	c = &clusterv3.Cluster{Name: "s", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_EndpointName{EndpointName: "x"}}}}}}}
	if _, err := Compile(c, nil); err == nil || !strings.Contains(err.Error(), `cluster "s": load_assignment.endpoints[0].lb_endpoints[0].endpoint_name: unsupported`) {
		t.Errorf("err = %v", err)
	}
	c = &clusterv3.Cluster{Name: "d", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}}
	if _, err := Compile(c, nil); err == nil || !strings.Contains(err.Error(), "type: unsupported LOGICAL_DNS") {
		t.Errorf("err = %v", err)
	}
}

func TestEndpointMeta(t *testing.T) {
	md := func(fields map[string]any) *corev3.Metadata {
		s, err := structpb.NewStruct(fields)
		if err != nil {
			t.Fatal(err)
		}
		return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": s}}
	}
	if endpointMeta(nil) != nil {
		t.Error("no metadata: want nil")
	}
	m := endpointMeta(md(map[string]any{"workload": "fedora01", "namespace": "default", "service_account": "sa",
		"labels": map[string]any{"app": "service-b", "version": "vm"}}))
	if *m != (lb.Metadata{Workload: "fedora01", Namespace: "default", ServiceAccount: "sa", App: "service-b", Version: "vm"}) {
		t.Errorf("static entry: %+v", m)
	}
}
