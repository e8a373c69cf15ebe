// Package listener validates Envoy v3 Listener resources of the weft xDS
// contract (one filter chain with one http_connection_manager) and serves them:
// HTTP/1.1 and cleartext HTTP/2 (h2c, prior knowledge) on the same socket, with
// graceful draining of in-flight requests on shutdown.
package listener

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weft-mesh/weft/proxy/cluster"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

// Well-known Envoy filter names the contract uses.
const (
	HTTPConnectionManager = "envoy.filters.network.http_connection_manager"
	RouterFilter          = "envoy.filters.http.router"
)

// Spec is a validated Listener: where to bind and which routes to serve.
// Exactly one of RouteConfigName, RouteConfig and TCP is set.
type Spec struct {
	// Name is the listener's xDS name, e.g. "virtualOutbound".
	Name string
	// Address is the "host:port" to bind.
	Address string
	// RouteConfigName names the RDS RouteConfiguration to serve.
	RouteConfigName string
	// RouteConfig is the inline route configuration, when not using RDS.
	RouteConfig *routev3.RouteConfiguration
	// TCP is the tcp_proxy filter of a TCP listener (see tcp.go).
	TCP *tcpproxy.Spec
	// Inbound is true for traffic_direction INBOUND: the listener takes
	// traffic for the local workload (telemetry reports it as the
	// destination). Anything else is outbound.
	Inbound bool
}

// Parse validates l against the xDS contract and returns its Spec. Errors
// name the listener and the offending field path.
func Parse(l *listenerv3.Listener) (*Spec, error) {
	s, err := parse(l)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.GetName(), err)
	}
	return s, nil
}

func parse(l *listenerv3.Listener) (*Spec, error) {
	if err := contract.CheckFields(l, "name", "address", "filter_chains", "traffic_direction", "stat_prefix", "metadata"); err != nil {
		return nil, err
	}
	if l.GetName() == "" {
		return nil, fmt.Errorf("name: empty")
	}
	addr, err := cluster.SocketAddress(l.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("address.%w", err)
	}
	s := &Spec{Name: l.GetName(), Address: addr, Inbound: l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND}
	if n := len(l.GetFilterChains()); n != 1 {
		return nil, fmt.Errorf("filter_chains: want exactly 1 filter chain, got %d", n)
	}
	fc := l.GetFilterChains()[0]
	if err := contract.CheckFields(fc, "filters", "name"); err != nil {
		return nil, fmt.Errorf("filter_chains[0].%w", err)
	}
	if n := len(fc.GetFilters()); n != 1 {
		return nil, fmt.Errorf("filter_chains[0].filters: want exactly 1 filter, got %d", n)
	}
	f := fc.GetFilters()[0]
	if err := contract.CheckFields(f, "name", "typed_config"); err != nil {
		return nil, fmt.Errorf("filter_chains[0].filters[0].%w", err)
	}
	if f.GetName() == TCPProxy {
		return tcpSpec(f, s)
	}
	if f.GetName() != HTTPConnectionManager {
		return nil, fmt.Errorf("filter_chains[0].filters[0].name: unsupported filter %q", f.GetName())
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if f.GetTypedConfig() == nil {
		return nil, fmt.Errorf("filter_chains[0].filters[0].typed_config: required")
	}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return nil, fmt.Errorf("filter_chains[0].filters[0].typed_config: %w", err)
	}
	if err := hcmSpec(hcm, s); err != nil {
		return nil, fmt.Errorf("filter_chains[0].filters[0].typed_config.%w", err)
	}
	return s, nil
}

func hcmSpec(hcm *hcmv3.HttpConnectionManager, s *Spec) error {
	if err := contract.CheckFields(hcm, "stat_prefix", "codec_type", "rds", "route_config", "http_filters",
		"use_remote_address", "generate_request_id", "normalize_path", "merge_slashes"); err != nil {
		return err
	}
	if err := checkHTTPFilters(hcm.GetHttpFilters()); err != nil {
		return err
	}
	switch rs := hcm.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if err := contract.CheckFields(rs.Rds, "config_source", "route_config_name"); err != nil {
			return fmt.Errorf("rds.%w", err)
		}
		if rs.Rds.GetRouteConfigName() == "" {
			return fmt.Errorf("rds.route_config_name: empty")
		}
		s.RouteConfigName = rs.Rds.GetRouteConfigName()
	case *hcmv3.HttpConnectionManager_RouteConfig:
		s.RouteConfig = rs.RouteConfig
	default:
		return fmt.Errorf("route_specifier: one of rds, route_config required")
	}
	return nil
}
