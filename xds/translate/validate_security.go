package translate

import (
	"fmt"
	"regexp"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs of the transport socket configs, which must sit on the right
// side: a listener terminates TLS, a cluster originates it.
var (
	downstreamTLSType = "type.googleapis.com/" + string(proto.MessageName(&tlsv3.DownstreamTlsContext{}))
	upstreamTLSType   = "type.googleapis.com/" + string(proto.MessageName(&tlsv3.UpstreamTlsContext{}))
)

// validateListenerChains checks what Envoy refuses when it loads a
// listener's filter chains: duplicate chain names or matches, a chain
// matching on transport_protocol without a tls_inspector to detect it, a
// chain whose last network filter is not terminal (or a terminal one
// before the end), an HCM whose router is not its last HTTP filter, and a
// transport socket that is not a TLS server context.
func validateListenerChains(l *listener.Listener) []error {
	var errs []error
	name := l.GetName()
	inspector := false
	for _, lf := range l.GetListenerFilters() {
		inspector = inspector || lf.GetName() == TLSInspectorFilter
	}
	names := map[string]bool{}
	var matches []*listener.FilterChainMatch
	for i, fc := range l.GetFilterChains() {
		where := fmt.Sprintf("listener %q: filter chain %d (%q)", name, i, fc.GetName())
		if fc.GetName() != "" {
			if names[fc.GetName()] {
				errs = append(errs, fmt.Errorf("%s: duplicate name", where))
			}
			names[fc.GetName()] = true
		}
		m := fc.GetFilterChainMatch()
		if m == nil {
			m = &listener.FilterChainMatch{}
		}
		for j, prev := range matches {
			if proto.Equal(prev, m) {
				errs = append(errs, fmt.Errorf("%s: same filter_chain_match as chain %d", where, j))
			}
		}
		matches = append(matches, m)
		if m.GetTransportProtocol() != "" && !inspector {
			errs = append(errs, fmt.Errorf("%s: matches transport_protocol %q but the listener has no %s", where, m.GetTransportProtocol(), TLSInspectorFilter))
		}
		if ts := fc.GetTransportSocket(); ts != nil {
			if ts.GetName() != TLSTransportSocket || ts.GetTypedConfig().GetTypeUrl() != downstreamTLSType {
				errs = append(errs, fmt.Errorf("%s: transport socket %s (%s): want %s with a DownstreamTlsContext", where, ts.GetName(), ts.GetTypedConfig().GetTypeUrl(), TLSTransportSocket))
			}
		}
		errs = append(errs, validateNetworkFilters(where, fc.GetFilters())...)
	}
	return errs
}

// terminalFilters are the network filters that end a chain.
var terminalFilters = map[string]bool{hcmFilterName: true, tcpProxyFilterName: true}

func validateNetworkFilters(where string, fs []*listener.Filter) []error {
	var errs []error
	for i, f := range fs {
		last := i == len(fs)-1
		if terminalFilters[f.GetName()] != last {
			errs = append(errs, fmt.Errorf("%s: filter %d (%s): only the last filter may, and it must, be terminal (%s or %s)", where, i, f.GetName(), hcmFilterName, tcpProxyFilterName))
		}
		if f.GetName() != hcmFilterName {
			continue
		}
		m := &hcm.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
			continue // reported by validateFilters
		}
		hf := m.GetHttpFilters()
		for j, h := range hf {
			if (h.GetName() == routerFilterName) != (j == len(hf)-1) {
				errs = append(errs, fmt.Errorf("%s: http filter %d (%s): %s must be the last HTTP filter, once", where, j, h.GetName(), routerFilterName))
			}
			if h.GetName() == jwtFilterName {
				errs = append(errs, validateJWT(where, h.GetTypedConfig())...)
			}
		}
		if len(hf) == 0 {
			errs = append(errs, fmt.Errorf("%s: http_connection_manager has no %s", where, routerFilterName))
		}
	}
	return errs
}

// validateJWT checks that requirements name existing providers and that
// inline key sets are key sets.
func validateJWT(where string, cfg *anypb.Any) []error {
	ja := &jwtv3.JwtAuthentication{}
	if err := cfg.UnmarshalTo(ja); err != nil {
		return []error{fmt.Errorf("%s: jwt_authn: %w", where, err)}
	}
	var errs []error
	for _, name := range sortedKeys(ja.GetProviders()) {
		if s := ja.GetProviders()[name].GetLocalJwks().GetInlineString(); s != "" {
			if err := checkJWKS(s); err != nil {
				errs = append(errs, fmt.Errorf("%s: jwt_authn provider %s: local_jwks: %w", where, name, err))
			}
		}
	}
	var walk func(r *jwtv3.JwtRequirement)
	walk = func(r *jwtv3.JwtRequirement) {
		switch t := r.GetRequiresType().(type) {
		case *jwtv3.JwtRequirement_ProviderName:
			if _, ok := ja.GetProviders()[t.ProviderName]; !ok {
				errs = append(errs, fmt.Errorf("%s: jwt_authn requirement names provider %q, which does not exist", where, t.ProviderName))
			}
		case *jwtv3.JwtRequirement_RequiresAny:
			for _, x := range t.RequiresAny.GetRequirements() {
				walk(x)
			}
		case *jwtv3.JwtRequirement_RequiresAll:
			for _, x := range t.RequiresAll.GetRequirements() {
				walk(x)
			}
		}
	}
	for _, rule := range ja.GetRules() {
		walk(rule.GetRequires())
	}
	return errs
}

// validateClusterTLS checks a cluster's transport sockets: TLS sockets
// carry an UpstreamTlsContext, match names are unique, and SDS secrets
// come over ADS, the only source the proxy has.
func validateClusterTLS(c *cluster.Cluster) []error {
	var errs []error
	check := func(what string, ts *core.TransportSocket) {
		switch ts.GetName() {
		case TLSTransportSocket:
			if ts.GetTypedConfig().GetTypeUrl() != upstreamTLSType {
				errs = append(errs, fmt.Errorf("cluster %q: %s: %s needs an UpstreamTlsContext, not %s", c.GetName(), what, TLSTransportSocket, ts.GetTypedConfig().GetTypeUrl()))
			}
		case RawBufferTransportSocket:
		default:
			errs = append(errs, fmt.Errorf("cluster %q: %s: unknown transport socket %q", c.GetName(), what, ts.GetName()))
		}
	}
	if ts := c.GetTransportSocket(); ts != nil {
		if len(c.GetTransportSocketMatches()) > 0 {
			errs = append(errs, fmt.Errorf("cluster %q: both transport_socket and transport_socket_matches", c.GetName()))
		}
		check("transport_socket", ts)
	}
	names := map[string]bool{}
	for i, m := range c.GetTransportSocketMatches() {
		if names[m.GetName()] {
			errs = append(errs, fmt.Errorf("cluster %q: transport_socket_matches[%d]: duplicate name %q", c.GetName(), i, m.GetName()))
		}
		names[m.GetName()] = true
		check(fmt.Sprintf("transport_socket_matches[%d]", i), m.GetTransportSocket())
	}
	return errs
}

// checkMessage applies the checks protoc-gen-validate cannot make to one
// message found anywhere in a resource: regular expressions must compile
// (Go's syntax is RE2's, which Envoy uses) and SDS secrets must come over ADS.
func checkMessage(m proto.Message) error {
	switch v := m.(type) {
	case *matcher.RegexMatcher:
		if _, err := regexp.Compile(v.GetRegex()); err != nil {
			return fmt.Errorf("regex %q: %w", v.GetRegex(), err)
		}
	case *tlsv3.SdsSecretConfig:
		if _, ok := v.GetSdsConfig().GetConfigSourceSpecifier().(*core.ConfigSource_Ads); !ok {
			return fmt.Errorf("sds secret %q: config source is not ADS", v.GetName())
		}
	}
	return nil
}
