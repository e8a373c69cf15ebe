package cors

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/filter"
)

// Name is the Envoy filter name this filter reads its per-route config under.
const Name = "envoy.filters.http.cors"

func init() { filter.Register(Name, 200, setup) }

func setup(cfg *anypb.Any) (filter.Filter, error) {
	p, err := Parse(cfg)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Parse validates an envoy.extensions.filters.http.cors.v3.CorsPolicy packed
// in cfg and compiles it.
func Parse(cfg *anypb.Any) (*Policy, error) {
	m := &corsv3.CorsPolicy{}
	if err := cfg.UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	return ParseMessage(m)
}

// ParseMessage validates m; see README.md for the fields.
func ParseMessage(m *corsv3.CorsPolicy) (*Policy, error) {
	if err := contract.CheckFields(m, "allow_origin_string_match", "allow_methods", "allow_headers",
		"expose_headers", "max_age", "allow_credentials", "filter_enabled", "shadow_enabled",
		"allow_private_network_access", "forward_not_matching_preflights"); err != nil {
		return nil, err
	}
	p := &Policy{
		enabled:            filter.Always,
		forwardNotMatching: true,
		credentials:        m.GetAllowCredentials().GetValue(),
		privateNetwork:     m.GetAllowPrivateNetworkAccess().GetValue(),
	}
	if v := m.GetForwardNotMatchingPreflights(); v != nil {
		p.forwardNotMatching = v.GetValue()
	}
	for i, sm := range m.GetAllowOriginStringMatch() {
		c, err := filter.CompileStringMatcher(sm)
		if err != nil {
			return nil, fmt.Errorf("allow_origin_string_match[%d].%w", i, err)
		}
		p.origins = append(p.origins, c)
	}
	for name, s := range map[string]string{"allow_methods": m.GetAllowMethods(), "allow_headers": m.GetAllowHeaders(),
		"expose_headers": m.GetExposeHeaders(), "max_age": m.GetMaxAge()} {
		if !validHeaderValue(s) {
			return nil, fmt.Errorf("%s: invalid header value %q", name, s)
		}
	}
	p.methods = header(m.GetAllowMethods())
	p.headers = header(m.GetAllowHeaders())
	p.expose = header(m.GetExposeHeaders())
	p.maxAge = header(m.GetMaxAge())
	if fe := m.GetFilterEnabled(); fe != nil {
		if err := contract.CheckFields(fe, "default_value", "runtime_key"); err != nil {
			return nil, fmt.Errorf("filter_enabled.%w", err)
		}
		f, err := filter.ParseFraction(fe.GetDefaultValue())
		if err != nil {
			return nil, fmt.Errorf("filter_enabled.default_value.%w", err)
		}
		p.enabled = f
	}
	if se := m.GetShadowEnabled(); se != nil {
		if err := contract.CheckFields(se, "default_value", "runtime_key"); err != nil {
			return nil, fmt.Errorf("shadow_enabled.%w", err)
		}
		if _, err := filter.ParseFraction(se.GetDefaultValue()); err != nil {
			return nil, fmt.Errorf("shadow_enabled.default_value.%w", err)
		}
	}
	return p, nil
}

func header(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// validHeaderValue rejects control characters other than tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
