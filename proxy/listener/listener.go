// Package listener validates Envoy v3 Listener resources of the weft xDS
// contract (filter chains told apart by transport protocol, TLS or
// plaintext, all holding the same http_connection_manager or tcp_proxy) and
// serves them: each accepted connection goes to its filter chain (the first
// byte tells a TLS handshake from plaintext when the listener has the
// tls_inspector), TLS chains are served with crypto/tls, then HTTP/1.1 and
// HTTP/2 (h2 over TLS by ALPN, h2c with prior knowledge in plaintext) share
// the socket, with graceful draining of in-flight requests on shutdown.
package listener

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"errors"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/proxy/cluster"
	"github.com/weft-mesh/weft/proxy/filter"
	"github.com/weft-mesh/weft/proxy/mtls"
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
	// HTTPFilters is the listener-level HTTP filter chain, compiled from the
	// HCM's http_filters configs that ask for something (jwt_authn, rbac,
	// local_ratelimit), in list order; nil when none does. The runtime runs
	// it on every request after route matching, before the route's chain.
	HTTPFilters filter.Chain
	// ConnFilters are a TCP listener's network filters before tcp_proxy
	// (envoy.filters.network.rbac), run once per accepted connection.
	ConnFilters []filter.ConnFilter
	// Chains are the filter chains, in order; there is at least one.
	Chains []Chain
	// TLSInspector is set when listener_filters has the tls_inspector:
	// each connection's first byte tells TLS from plaintext, which picks
	// the chain by its transport_protocol.
	TLSInspector bool
	// InspectTimeout bounds waiting for that byte (listener_filters_timeout).
	InspectTimeout time.Duration
	// Limits bound an HTTP listener's request headers (the HCM's
	// max_request_headers_kb and common_http_protocol_options.max_headers_count).
	Limits Limits
}

// Transport protocols of filter_chain_match.transport_protocol.
const (
	TransportTLS = "tls"
	TransportRaw = "raw_buffer"
)

// DefaultInspectTimeout is Envoy's default listener_filters_timeout.
const DefaultInspectTimeout = 15 * time.Second

// Chain is one filter chain: which connections it takes and how they are
// secured. Every chain of a listener holds the same filters (the Spec's).
type Chain struct {
	// Name is the chain's name, e.g. "inbound-tls".
	Name string
	// TransportProtocol is the chain's filter_chain_match: TransportTLS,
	// TransportRaw, or "" for any connection.
	TransportProtocol string
	// TLS is the chain's TLS transport socket, nil for plaintext.
	TLS *mtls.Downstream
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
	if err := contract.CheckFields(l, "name", "address", "filter_chains", "traffic_direction", "stat_prefix", "metadata",
		"listener_filters", "listener_filters_timeout"); err != nil {
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
	if err := listenerFilters(l, s); err != nil {
		return nil, err
	}
	if err := chains(l, s); err != nil {
		return nil, err
	}
	fc := l.GetFilterChains()[0]
	if isTCP(fc.GetFilters()) {
		return tcpSpec(fc.GetFilters(), s)
	}
	if n := len(fc.GetFilters()); n != 1 {
		return nil, fmt.Errorf("filter_chains[0].filters: want exactly 1 filter, got %d", n)
	}
	f := fc.GetFilters()[0]
	if err := contract.CheckFields(f, "name", "typed_config"); err != nil {
		return nil, fmt.Errorf("filter_chains[0].filters[0].%w", err)
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

// listenerFilters reads listener_filters: only the tls_inspector (empty
// config), which makes the listener peek at each connection.
func listenerFilters(l *listenerv3.Listener, s *Spec) error {
	for i, lf := range l.GetListenerFilters() {
		if err := contract.CheckFields(lf, "name", "typed_config"); err != nil {
			return fmt.Errorf("listener_filters[%d].%w", i, err)
		}
		if lf.GetName() != mtls.TLSInspector {
			return fmt.Errorf("listener_filters[%d].name: unsupported listener filter %q", i, lf.GetName())
		}
		if s.TLSInspector {
			return fmt.Errorf("listener_filters[%d].name: duplicate %q", i, lf.GetName())
		}
		if tc := lf.GetTypedConfig(); tc != nil {
			ti := &tlsinspectorv3.TlsInspector{}
			if err := tc.UnmarshalTo(ti); err != nil {
				return fmt.Errorf("listener_filters[%d].typed_config: %w", i, err)
			}
			if err := contract.CheckFields(ti); err != nil {
				return fmt.Errorf("listener_filters[%d].typed_config.%w", i, err)
			}
		}
		s.TLSInspector = true
	}
	s.InspectTimeout = DefaultInspectTimeout
	if d := l.GetListenerFiltersTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return errors.New("listener_filters_timeout: must be a positive duration")
		}
		s.InspectTimeout = d.AsDuration()
	}
	return nil
}

// chains reads the filter chains' matches and transport sockets. The
// filters themselves are read from the first chain; the others must hold
// the same, since weft serves one set of filters per listener.
func chains(l *listenerv3.Listener, s *Spec) error {
	fcs := l.GetFilterChains()
	if len(fcs) == 0 {
		return errors.New("filter_chains: at least one filter chain required")
	}
	for i, fc := range fcs {
		if err := contract.CheckFields(fc, "filters", "name", "filter_chain_match", "transport_socket"); err != nil {
			return fmt.Errorf("filter_chains[%d].%w", i, err)
		}
		c := Chain{Name: fc.GetName()}
		if m := fc.GetFilterChainMatch(); m != nil {
			if err := contract.CheckFields(m, "transport_protocol"); err != nil {
				return fmt.Errorf("filter_chains[%d].filter_chain_match.%w", i, err)
			}
			switch c.TransportProtocol = m.GetTransportProtocol(); c.TransportProtocol {
			case "", TransportRaw:
			case TransportTLS:
				if !s.TLSInspector {
					return fmt.Errorf("filter_chains[%d].filter_chain_match.transport_protocol: %q needs listener_filters %s", i, TransportTLS, mtls.TLSInspector)
				}
			default:
				return fmt.Errorf("filter_chains[%d].filter_chain_match.transport_protocol: unsupported %q (want %q or %q)", i, c.TransportProtocol, TransportTLS, TransportRaw)
			}
		}
		for j, o := range s.Chains {
			if o.TransportProtocol == c.TransportProtocol {
				return fmt.Errorf("filter_chains[%d].filter_chain_match: same match as filter_chains[%d]", i, j)
			}
		}
		tlsCtx, err := mtls.ParseDownstream(fc.GetTransportSocket())
		if err != nil {
			return fmt.Errorf("filter_chains[%d].transport_socket.%w", i, err)
		}
		c.TLS = tlsCtx
		if i > 0 && !sameFilters(fc.GetFilters(), fcs[0].GetFilters()) {
			return fmt.Errorf("filter_chains[%d].filters: must equal filter_chains[0].filters (one set of filters per listener)", i)
		}
		s.Chains = append(s.Chains, c)
	}
	return nil
}

func sameFilters(a, b []*listenerv3.Filter) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Secrets lists the SDS secrets the listener's TLS chains need, with the
// referring field relative to the listener.
func (s *Spec) Secrets() []mtls.SecretRef {
	var out []mtls.SecretRef
	for i, c := range s.Chains {
		if c.TLS == nil {
			continue
		}
		for _, r := range c.TLS.Secrets() {
			r.Field = fmt.Sprintf("filter_chains[%d].transport_socket.%s", i, r.Field)
			out = append(out, r)
		}
	}
	return out
}

func hcmSpec(hcm *hcmv3.HttpConnectionManager, s *Spec) error {
	if err := contract.CheckFields(hcm, "stat_prefix", "codec_type", "rds", "route_config", "http_filters",
		"use_remote_address", "generate_request_id", "normalize_path", "merge_slashes",
		"max_request_headers_kb", "common_http_protocol_options"); err != nil {
		return err
	}
	if err := headerLimits(hcm, s); err != nil {
		return err
	}
	hf, err := httpFilters(hcm.GetHttpFilters(), filter.HCMOptions{UseRemoteAddress: hcm.GetUseRemoteAddress().GetValue()})
	if err != nil {
		return err
	}
	s.HTTPFilters = hf
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
