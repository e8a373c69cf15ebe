package node

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
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

func TestRoundTripCaptured(t *testing.T) {
	m := &Meta{
		Type: Sidecar, IP: "10.244.0.7", Name: "reviews-v1-5d8f7c9b4-x2x7q", Namespace: "default",
		WorkloadName: "reviews-v1", Labels: map[string]string{"app": "reviews", "version": "v1"},
		ServiceAccount: "bookinfo-reviews", Interception: InterceptRedirect,
	}
	got, err := Parse(m.Node())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) || !got.Captured() {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	n := m.Node()
	n.Metadata.Fields[KeyInterception] = structpb.NewStringValue("TPROXY")
	if _, err := Parse(n); err == nil || !strings.Contains(err.Error(), "TPROXY") {
		t.Errorf("Parse accepted interception mode TPROXY: %v", err)
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
