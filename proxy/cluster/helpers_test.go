package cluster

import (
	"net"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// static returns a STATIC cluster over addrs ("host:port").
func static(t testing.TB, name string, addrs ...string) *clusterv3.Cluster {
	t.Helper()
	var lbes []*endpointv3.LbEndpoint
	for _, a := range addrs {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		lbes = append(lbes, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: h, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}}}}})
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbes}}},
	}
}

func breakers(maxConns, maxPending, maxReqs, maxRetries uint32) *clusterv3.CircuitBreakers {
	th := &clusterv3.CircuitBreakers_Thresholds{}
	if maxConns > 0 {
		th.MaxConnections = wrapperspb.UInt32(maxConns)
	}
	if maxPending > 0 {
		th.MaxPendingRequests = wrapperspb.UInt32(maxPending)
	}
	if maxReqs > 0 {
		th.MaxRequests = wrapperspb.UInt32(maxReqs)
	}
	if maxRetries > 0 {
		th.MaxRetries = wrapperspb.UInt32(maxRetries)
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
}

func protocolOptions(t testing.TB, o *httpv3.HttpProtocolOptions) map[string]*anypb.Any {
	t.Helper()
	a, err := anypb.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*anypb.Any{HTTPProtocolOptionsKey: a}
}

func mustCompile(t testing.TB, s *State, c *clusterv3.Cluster) *Cluster {
	t.Helper()
	out, err := s.Compile(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually polls cond every 10ms until it holds or 10s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
