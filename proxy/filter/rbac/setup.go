package rbac

import (
	"fmt"
	"slices"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
)

// Envoy names of the two filters.
const (
	Name        = "envoy.filters.http.rbac"
	NetworkName = "envoy.filters.network.rbac"
)

func init() {
	filter.RegisterHCM(Name, func(cfg *anypb.Any, o filter.HCMOptions) (filter.Filter, error) {
		h, err := Parse(cfg, o)
		if h == nil || err != nil {
			return nil, err // a nil *HTTP must not become a non-nil Filter
		}
		return h, nil
	})
}

// Parse validates an envoy.extensions.filters.http.rbac.v3.RBAC packed in
// cfg and compiles it. An RBAC without rules enforces nothing: Parse returns
// a nil *HTTP, as Envoy then lets every request through.
func Parse(cfg *anypb.Any, o filter.HCMOptions) (*HTTP, error) {
	m := &httprbacv3.RBAC{}
	if err := cfg.UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	return ParseMessage(m, o)
}

// ParseMessage validates m; see Parse.
func ParseMessage(m *httprbacv3.RBAC, o filter.HCMOptions) (*HTTP, error) {
	if err := contract.CheckFields(m, "rules", "rules_stat_prefix", "track_per_rule_stats"); err != nil {
		return nil, err
	}
	if m.GetRules() == nil {
		return nil, nil
	}
	e, err := Compile(m.GetRules(), false)
	if err != nil {
		return nil, fmt.Errorf("rules.%w", err)
	}
	return &HTTP{e: e, useRemoteAddress: o.UseRemoteAddress}, nil
}

// ParseNetwork validates an envoy.extensions.filters.network.rbac.v3.RBAC
// packed in cfg, the network filter of TCP listeners, and compiles it.
// Rules naming HTTP attributes (header, url_path, metadata) are errors: a
// connection has none. Without rules it returns nil.
func ParseNetwork(cfg *anypb.Any) (*Network, error) {
	m := &netrbacv3.RBAC{}
	if err := cfg.UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	return ParseNetworkMessage(m)
}

// ParseNetworkMessage validates m; see ParseNetwork.
func ParseNetworkMessage(m *netrbacv3.RBAC) (*Network, error) {
	if err := contract.CheckFields(m, "rules", "stat_prefix", "enforcement_type"); err != nil {
		return nil, err
	}
	if m.GetStatPrefix() == "" {
		return nil, fmt.Errorf("stat_prefix: required")
	}
	if m.GetRules() == nil {
		return nil, nil
	}
	e, err := Compile(m.GetRules(), true)
	if err != nil {
		return nil, fmt.Errorf("rules.%w", err)
	}
	return &Network{e: e}, nil
}

// Engine is a compiled envoy.config.rbac.v3.RBAC: an action and named
// policies, each a tree of permissions and a tree of principals. It is
// immutable and safe for concurrent use.
type Engine struct {
	action   rbacv3.RBAC_Action
	policies []policy // sorted by name, so the first match reported is stable
	network  bool
}

type policy struct {
	name        string
	permissions node // or over the policy's permissions
	principals  node // or over its principals
}

// Compile compiles an RBAC message. network is true for the network
// filter: HTTP-only rules are then errors.
func Compile(m *rbacv3.RBAC, network bool) (*Engine, error) {
	if err := contract.CheckFields(m, "action", "policies"); err != nil {
		return nil, err
	}
	e := &Engine{action: m.GetAction(), network: network}
	switch e.action {
	case rbacv3.RBAC_ALLOW, rbacv3.RBAC_DENY, rbacv3.RBAC_LOG:
	default:
		return nil, fmt.Errorf("action: unsupported %v", e.action)
	}
	names := make([]string, 0, len(m.GetPolicies()))
	for name := range m.GetPolicies() {
		names = append(names, name)
	}
	slices.Sort(names)
	c := compiler{network: network}
	for _, name := range names {
		p, err := c.policy(m.GetPolicies()[name])
		if err != nil {
			return nil, fmt.Errorf("policies[%q].%w", name, err)
		}
		p.name = name
		e.policies = append(e.policies, p)
	}
	return e, nil
}

func (c compiler) policy(p *rbacv3.Policy) (policy, error) {
	var out policy
	if p == nil {
		return out, fmt.Errorf("permissions: at least one required")
	}
	if err := contract.CheckFields(p, "permissions", "principals"); err != nil {
		return out, err
	}
	if len(p.GetPermissions()) == 0 {
		return out, fmt.Errorf("permissions: at least one required")
	}
	if len(p.GetPrincipals()) == 0 {
		return out, fmt.Errorf("principals: at least one required")
	}
	out.permissions.kind = kOr
	for i, pm := range p.GetPermissions() {
		n, err := c.permission(pm, 0)
		if err != nil {
			return out, fmt.Errorf("permissions[%d].%w", i, err)
		}
		out.permissions.kids = append(out.permissions.kids, n)
	}
	out.principals.kind = kOr
	for i, pr := range p.GetPrincipals() {
		n, err := c.principal(pr, 0)
		if err != nil {
			return out, fmt.Errorf("principals[%d].%w", i, err)
		}
		out.principals.kids = append(out.principals.kids, n)
	}
	return out, nil
}

// Action returns the engine's action: ALLOW, DENY or LOG.
func (e *Engine) Action() rbacv3.RBAC_Action { return e.action }
