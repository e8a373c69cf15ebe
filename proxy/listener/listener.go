// Package listener validates Envoy v3 Listener resources of the weft xDS
// contract (filter chains told apart by destination port and transport
// protocol, TLS or plaintext, the chains of one destination port holding the
// same http_connection_manager or tcp_proxy) and serves them: each accepted
// connection goes to its filter chain (the first byte tells a TLS handshake
// from plaintext when the listener has the tls_inspector), TLS chains are
// served with crypto/tls, then HTTP/1.1 and HTTP/2 (h2 over TLS by ALPN, h2c
// with prior knowledge in plaintext) share the socket, with graceful
// draining of in-flight requests on shutdown.
package listener

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"errors"
	"fmt"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
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
	// OriginalDstFilter is the listener filter that restores a redirected
	// connection's original destination before filter chains are matched.
	OriginalDstFilter = "envoy.filters.listener.original_dst"
)

// Spec is a validated Listener: where to bind and which routes to serve.
// Exactly one of RouteConfigName, RouteConfig and TCP is set, except on a
// listener whose every filter chain names a destination_port (Chains is
// then empty: what no port group takes is closed).
//
// Filter chains matching a destination_port form groups, one per port, in
// ByDestinationPort: each group is a Spec of its own (same name, address
// and listener settings; its own chains and filters), since different
// ports may serve different filters (virtualInbound: HCM to one app port,
// tcp_proxy to another). The Spec itself holds the chains without one.
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
	// BindToPort is false for a listener that binds no socket (bind_to_port:
	// false): it serves the connections a UseOriginalDst listener hands it.
	BindToPort bool
	// UseOriginalDst (use_original_dst) hands each redirected connection
	// to the BindToPort=false listener whose address is its original
	// destination, else the one at 0.0.0.0:PORT, else keeps it.
	UseOriginalDst bool
	// OriginalDst is set by the envoy.filters.listener.original_dst
	// listener filter: the listener restores each redirected connection's
	// original destination, which its destination_port chains match.
	OriginalDst bool
	// DestinationPort is the filter_chain_match.destination_port of a port
	// group's chains; 0 for the listener's own.
	DestinationPort uint32
	// ByDestinationPort holds the groups of chains that match a
	// destination_port, by port; nil when no chain does.
	ByDestinationPort map[uint32]*Spec
	// Field is the path of the first chain of this Spec's group
	// ("filter_chains[I]"), for messages about its filters.
	Field string
	// Limits bound an HTTP listener's request headers (the HCM's
	// max_request_headers_kb and common_http_protocol_options.max_headers_count).
	Limits Limits
}

// Captured reports whether the listener reads its connections' original
// destinations (use_original_dst or the original_dst listener filter).
func (s *Spec) Captured() bool { return s.UseOriginalDst || s.OriginalDst }

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
	// DestinationPort is the chain's filter_chain_match.destination_port,
	// 0 for any.
	DestinationPort uint32
	// Index is the chain's position in filter_chains.
	Index int
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
		"listener_filters", "listener_filters_timeout", "use_original_dst", "bind_to_port"); err != nil {
		return nil, err
	}
	if l.GetName() == "" {
		return nil, fmt.Errorf("name: empty")
	}
	addr, err := cluster.SocketAddress(l.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("address.%w", err)
	}
	s := &Spec{
		Name: l.GetName(), Address: addr, Inbound: l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND,
		BindToPort: l.BindToPort == nil || l.GetBindToPort().GetValue(), UseOriginalDst: l.GetUseOriginalDst().GetValue(),
	}
	if err := listenerFilters(l, s); err != nil {
		return nil, err
	}
	groups, err := chains(l, s)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		u := s
		if g.port != 0 {
			u = &Spec{
				Name: s.Name, Address: s.Address, Inbound: s.Inbound, TLSInspector: s.TLSInspector, InspectTimeout: s.InspectTimeout,
				BindToPort: s.BindToPort, UseOriginalDst: s.UseOriginalDst, OriginalDst: s.OriginalDst, DestinationPort: g.port,
			}
			if s.ByDestinationPort == nil {
				s.ByDestinationPort = map[uint32]*Spec{}
			}
			s.ByDestinationPort[g.port] = u
		}
		u.Chains, u.Field = g.chains, fmt.Sprintf("filter_chains[%d]", g.first)
		if err := filtersSpec(l.GetFilterChains()[g.first].GetFilters(), u); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// filtersSpec reads the network filters of a chain group into s: a
// tcp_proxy (with its rbac filters), or one http_connection_manager.
func filtersSpec(fs []*listenerv3.Filter, s *Spec) error {
	if isTCP(fs) {
		return tcpSpec(fs, s)
	}
	if n := len(fs); n != 1 {
		return fmt.Errorf("%s.filters: want exactly 1 filter, got %d", s.Field, n)
	}
	f := fs[0]
	if err := contract.CheckFields(f, "name", "typed_config"); err != nil {
		return fmt.Errorf("%s.filters[0].%w", s.Field, err)
	}
	if f.GetName() != HTTPConnectionManager {
		return fmt.Errorf("%s.filters[0].name: unsupported filter %q", s.Field, f.GetName())
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if f.GetTypedConfig() == nil {
		return fmt.Errorf("%s.filters[0].typed_config: required", s.Field)
	}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return fmt.Errorf("%s.filters[0].typed_config: %w", s.Field, err)
	}
	if err := hcmSpec(hcm, s); err != nil {
		return fmt.Errorf("%s.filters[0].typed_config.%w", s.Field, err)
	}
	return nil
}

// listenerFilters reads listener_filters: the tls_inspector, which makes
// the listener peek at each connection, and original_dst, which makes it
// restore redirected connections' destinations; both with empty configs.
func listenerFilters(l *listenerv3.Listener, s *Spec) error {
	for i, lf := range l.GetListenerFilters() {
		if err := contract.CheckFields(lf, "name", "typed_config"); err != nil {
			return fmt.Errorf("listener_filters[%d].%w", i, err)
		}
		var seen *bool
		var cfg proto.Message
		switch lf.GetName() {
		case mtls.TLSInspector:
			seen, cfg = &s.TLSInspector, &tlsinspectorv3.TlsInspector{}
		case OriginalDstFilter:
			seen, cfg = &s.OriginalDst, &originaldstv3.OriginalDst{}
		default:
			return fmt.Errorf("listener_filters[%d].name: unsupported listener filter %q", i, lf.GetName())
		}
		if *seen {
			return fmt.Errorf("listener_filters[%d].name: duplicate %q", i, lf.GetName())
		}
		if tc := lf.GetTypedConfig(); tc != nil {
			if err := tc.UnmarshalTo(cfg); err != nil {
				return fmt.Errorf("listener_filters[%d].typed_config: %w", i, err)
			}
			if err := contract.CheckFields(cfg); err != nil {
				return fmt.Errorf("listener_filters[%d].typed_config.%w", i, err)
			}
		}
		*seen = true
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

// chainGroup is the filter chains of one destination port (0: none).
type chainGroup struct {
	port   uint32
	first  int // index of the group's first chain, whose filters it serves
	chains []Chain
}

// chains reads the filter chains' matches and transport sockets, grouped
// by destination port (the group without one first, then by port). The
// filters of a group are read from its first chain; the others must hold
// the same, since weft serves one set of filters per group.
func chains(l *listenerv3.Listener, s *Spec) ([]*chainGroup, error) {
	fcs := l.GetFilterChains()
	if len(fcs) == 0 {
		return nil, errors.New("filter_chains: at least one filter chain required")
	}
	byPort := map[uint32]*chainGroup{}
	for i, fc := range fcs {
		if err := contract.CheckFields(fc, "filters", "name", "filter_chain_match", "transport_socket"); err != nil {
			return nil, fmt.Errorf("filter_chains[%d].%w", i, err)
		}
		c := Chain{Name: fc.GetName(), Index: i}
		if m := fc.GetFilterChainMatch(); m != nil {
			if err := contract.CheckFields(m, "transport_protocol", "destination_port"); err != nil {
				return nil, fmt.Errorf("filter_chains[%d].filter_chain_match.%w", i, err)
			}
			switch c.TransportProtocol = m.GetTransportProtocol(); c.TransportProtocol {
			case "", TransportRaw:
			case TransportTLS:
				if !s.TLSInspector {
					return nil, fmt.Errorf("filter_chains[%d].filter_chain_match.transport_protocol: %q needs listener_filters %s", i, TransportTLS, mtls.TLSInspector)
				}
			default:
				return nil, fmt.Errorf("filter_chains[%d].filter_chain_match.transport_protocol: unsupported %q (want %q or %q)", i, c.TransportProtocol, TransportTLS, TransportRaw)
			}
			if dp := m.GetDestinationPort(); dp != nil {
				if dp.GetValue() == 0 || dp.GetValue() > 65535 {
					return nil, fmt.Errorf("filter_chains[%d].filter_chain_match.destination_port: %d out of range", i, dp.GetValue())
				}
				c.DestinationPort = dp.GetValue()
			}
		}
		g := byPort[c.DestinationPort]
		if g == nil {
			g = &chainGroup{port: c.DestinationPort, first: i}
			byPort[c.DestinationPort] = g
		}
		for _, o := range g.chains {
			if o.TransportProtocol == c.TransportProtocol {
				return nil, fmt.Errorf("filter_chains[%d].filter_chain_match: same match as filter_chains[%d]", i, o.Index)
			}
		}
		tlsCtx, err := mtls.ParseDownstream(fc.GetTransportSocket())
		if err != nil {
			return nil, fmt.Errorf("filter_chains[%d].transport_socket.%w", i, err)
		}
		c.TLS = tlsCtx
		if i != g.first && !sameFilters(fc.GetFilters(), fcs[g.first].GetFilters()) {
			return nil, fmt.Errorf("filter_chains[%d].filters: must equal filter_chains[%d].filters (one set of filters per destination port)", i, g.first)
		}
		g.chains = append(g.chains, c)
	}
	ports := make([]uint32, 0, len(byPort))
	for p := range byPort {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	out := make([]*chainGroup, 0, len(ports))
	for _, p := range ports {
		out = append(out, byPort[p])
	}
	return out, nil
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

// Secrets lists the SDS secrets the TLS chains of the listener (this
// group's, for a port group) need, with the referring field relative to
// the listener.
func (s *Spec) Secrets() []mtls.SecretRef {
	var out []mtls.SecretRef
	for _, c := range s.Chains {
		if c.TLS == nil {
			continue
		}
		for _, r := range c.TLS.Secrets() {
			r.Field = fmt.Sprintf("filter_chains[%d].transport_socket.%s", c.Index, r.Field)
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
