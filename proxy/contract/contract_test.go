package contract

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

func TestCheckFields(t *testing.T) {
	sa := &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}, ResolverName: "x"}
	if err := CheckFields(sa, "address", "port_value", "resolver_name"); err != nil {
		t.Fatalf("all allowed: %v", err)
	}
	err := CheckFields(sa, "address", "port_value")
	if err == nil || !strings.HasPrefix(err.Error(), "resolver_name:") {
		t.Fatalf("want resolver_name named, got %v", err)
	}
}
