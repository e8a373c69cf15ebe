package node

import (
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	m := &Meta{
		Type: Router, IP: "127.0.0.1", Name: "istio-ingressgateway", Namespace: "istio-system",
		WorkloadName: "istio-ingressgateway", Labels: map[string]string{"istio": "ingressgateway"},
		ServiceAccount: "default", Admin: "127.0.0.1:15000",
		GatewayPorts: map[uint32]string{80: "127.0.0.1:8080", 443: "127.0.0.1:8443"}, GatewayHost: "127.0.0.1",
	}
	got, err := Parse(m.Node())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	if id := m.ID(); id != "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local" {
		t.Errorf("ID() = %q", id)
	}
}

func TestGatewayListenAddress(t *testing.T) {
	m := &Meta{GatewayPorts: map[uint32]string{80: "127.0.0.2:9999"}, GatewayHost: "127.0.0.2"}
	for port, want := range map[uint32]string{80: "127.0.0.2:9999", 443: "127.0.0.2:8443", 8080: "127.0.0.2:8080"} {
		if got := m.GatewayListenAddress(port); got != want {
			t.Errorf("GatewayListenAddress(%d) = %s, want %s", port, got, want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, id := range []string{"", "sidecar~1.2.3.4", "pod~127.0.0.1~a.b~b.svc.cluster.local", "sidecar~127.0.0.1~nonamespace~x"} {
		n := (&Meta{Type: Sidecar}).Node()
		n.Id = id
		if _, err := Parse(n); err == nil {
			t.Errorf("Parse(id %q) succeeded, want error", id)
		}
	}
}
