package translate

import (
	"errors"
	"fmt"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbac "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/proto"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/xds/node"
)

// AuthnFilter is the dynamic metadata namespace the jwt_authn filter
// writes the request's identity into and RBAC reads it from (Istio's).
const AuthnFilter = "istio_authn"

// NetworkRBACStatPrefix is the stat_prefix of network RBAC filters.
const NetworkRBACStatPrefix = "tcp."

// rbacActions lists, in filter order, the Envoy action for each group of
// AuthorizationPolicies. CUSTOM policies delegate to an external
// authorizer, which weft does not have: they join DENY, so what they
// cover is refused rather than let through unchecked.
var rbacActions = []struct {
	envoy   rbacv3.RBAC_Action
	istio   []security.AuthorizationPolicy_Action
	network bool // whether TCP listeners get this filter too
}{
	{rbacv3.RBAC_LOG, []security.AuthorizationPolicy_Action{security.AuthorizationPolicy_AUDIT}, false},
	{rbacv3.RBAC_DENY, []security.AuthorizationPolicy_Action{security.AuthorizationPolicy_DENY, security.AuthorizationPolicy_CUSTOM}, true},
	{rbacv3.RBAC_ALLOW, []security.AuthorizationPolicy_Action{security.AuthorizationPolicy_ALLOW}, true},
}

// httpRBACFilters returns the HCM's rbac filters, LOG then DENY then
// ALLOW, each only when a policy of that action selects the proxy.
func (g *generator) httpRBACFilters(pols []*config.Object) []*hcm.HttpFilter {
	var out []*hcm.HttpFilter
	for _, a := range rbacActions {
		rules := g.rbacRules(pols, a.envoy, a.istio, false)
		if rules == nil {
			continue
		}
		if cfg := g.toAny("http rbac", &httprbac.RBAC{Rules: rules}); cfg != nil {
			out = append(out, httpFilter(rbacFilterName, cfg))
		}
	}
	return out
}

// networkRBACFilters returns the network rbac filters for TCP listeners,
// DENY then ALLOW.
func (g *generator) networkRBACFilters(pols []*config.Object) []*listener.Filter {
	var out []*listener.Filter
	for _, a := range rbacActions {
		if !a.network {
			continue
		}
		rules := g.rbacRules(pols, a.envoy, a.istio, true)
		if rules == nil {
			continue
		}
		if cfg := g.toAny("network rbac", &netrbac.RBAC{Rules: rules, StatPrefix: NetworkRBACStatPrefix}); cfg != nil {
			out = append(out, networkFilter(netRBACFilterName, cfg))
		}
	}
	return out
}

// rbacRules translates the policies whose action is one of actions, or
// returns nil when there are none. A selected policy without rules still
// yields the (then empty) config: for ALLOW that denies everything.
func (g *generator) rbacRules(pols []*config.Object, action rbacv3.RBAC_Action, actions []security.AuthorizationPolicy_Action, tcp bool) *rbacv3.RBAC {
	var out *rbacv3.RBAC
	ports := g.listenPorts()
	for _, o := range pols {
		ap, ok := o.Spec.(*security.AuthorizationPolicy)
		if !ok || !hasAction(actions, ap.GetAction()) {
			continue
		}
		if out == nil {
			out = &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
		}
		for i, rule := range ap.GetRules() {
			b := ruleBuilder{ns: o.Meta.Namespace, tcp: tcp, allow: action == rbacv3.RBAC_ALLOW, ports: ports}
			p, err := b.policy(rule)
			if err == nil && p != nil {
				// Catch what Envoy's constraints or marshalling would refuse
				// (a header name with a space, a value that is not UTF-8)
				// here, where the rule can still be named.
				err = checkBuilt(p)
			}
			if err != nil {
				g.r.problem("AuthorizationPolicy %s/%s: rules[%d].%v", o.Meta.Namespace, o.Meta.Name, i, err)
				continue
			}
			if p != nil {
				out.Policies[RBACPolicyName(o.Meta.Namespace, o.Meta.Name, i)] = p
			}
		}
	}
	return out
}

func hasAction(list []security.AuthorizationPolicy_Action, a security.AuthorizationPolicy_Action) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// checkBuilt applies Envoy's constraints to a message built from user
// input, and checks it can be marshalled.
func checkBuilt(m interface {
	proto.Message
	ValidateAll() error
}) error {
	if err := m.ValidateAll(); err != nil {
		return err
	}
	_, err := proto.Marshal(m)
	return err
}

// listenPorts maps the workload port policies name (ports,
// destination.port) to the port the proxy actually receives it on, which
// is what the proxy compares. A sidecar's app is reached through its
// inbound listener, bound to a port of its own, whereas Istio's workload
// port is the one the app serves (the service's targetPort, else its
// port). A gateway's ports are its listeners' own, as in Istio, where an
// ingress gateway's AuthorizationPolicy names its container port.
func (g *generator) listenPorts() map[uint32]uint32 {
	if g.p.Type != node.Sidecar {
		return nil
	}
	_, listen, err := socketAddress(g.p.Inbound)
	wp := g.inboundPort()
	if err != nil || wp == 0 || wp == listen {
		return nil
	}
	return map[uint32]uint32{wp: listen}
}

// RBACPolicyName names the Envoy policy for rule i of AuthorizationPolicy
// ns/name, as Istio does; proxies report it as the policy that decided.
func RBACPolicyName(ns, name string, i int) string {
	return fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", ns, name, i)
}

// ruleBuilder translates one rule. On a TCP listener, HTTP-only fields
// cannot be evaluated: an ALLOW rule using one is dropped (allows less), a
// DENY rule loses the field (denies more), as in Istio.
type ruleBuilder struct {
	ns    string // the policy's namespace: serviceAccounts without one live there
	tcp   bool
	allow bool
	ports map[uint32]uint32 // see generator.listenPorts
}

// errDropRule marks a rule an ALLOW filter on a TCP listener leaves out.
var errDropRule = errors.New("rule needs HTTP")

// httpOnly reports whether a field must be skipped, or returns
// errDropRule when the whole rule must go.
func (b ruleBuilder) httpOnly() (skip bool, err error) {
	if !b.tcp {
		return false, nil
	}
	if b.allow {
		return true, errDropRule
	}
	return true, nil
}

// policy builds the Envoy policy for rule, or nil when the rule is dropped.
// Errors name the offending field relative to the rule.
func (b ruleBuilder) policy(rule *security.Rule) (*rbacv3.Policy, error) {
	var whenPerms []*rbacv3.Permission
	var whenIDs []*rbacv3.Principal
	for i, c := range rule.GetWhen() {
		perms, ids, err := b.condition(c)
		if errors.Is(err, errDropRule) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("when[%d]: %w", i, err)
		}
		whenPerms, whenIDs = append(whenPerms, perms...), append(whenIDs, ids...)
	}
	p := &rbacv3.Policy{}
	for i, to := range rule.GetTo() {
		fields, err := b.operation(to.GetOperation())
		if errors.Is(err, errDropRule) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("to[%d].operation.%w", i, err)
		}
		p.Permissions = append(p.Permissions, andPermissions(append(fields, whenPerms...)))
	}
	if len(rule.GetTo()) == 0 {
		p.Permissions = []*rbacv3.Permission{andPermissions(whenPerms)}
	}
	for i, from := range rule.GetFrom() {
		fields, err := b.source(from.GetSource())
		if errors.Is(err, errDropRule) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("from[%d].source.%w", i, err)
		}
		p.Principals = append(p.Principals, andPrincipals(append(fields, whenIDs...)))
	}
	if len(rule.GetFrom()) == 0 {
		p.Principals = []*rbacv3.Principal{andPrincipals(whenIDs)}
	}
	return p, nil
}

// listField is one list field of an operation or source, such as paths or
// notNamespaces: each value becomes a T, and the field their OR (negated
// for the not* fields).
type listField[T any] struct {
	name     string
	values   []string
	not      bool
	httpOnly bool
	one      func(string) (T, error)
}

// listFields translates the fields that have values, one T each, in order;
// or combines a field's values. An HTTP-only field follows b.httpOnly.
func listFields[T any](b ruleBuilder, or func([]T, bool) T, fields []listField[T]) ([]T, error) {
	var out []T
	for _, f := range fields {
		if len(f.values) == 0 {
			continue
		}
		if f.httpOnly {
			if skip, err := b.httpOnly(); err != nil {
				return nil, err
			} else if skip {
				continue
			}
		}
		var vals []T
		for i, v := range f.values {
			x, err := f.one(v)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", f.name, i, err)
			}
			vals = append(vals, x)
		}
		out = append(out, or(vals, f.not))
	}
	return out, nil
}

// operation translates a to[].operation into one permission per field.
func (b ruleBuilder) operation(op *security.Operation) ([]*rbacv3.Permission, error) {
	return listFields(b, orPermissions, []listField[*rbacv3.Permission]{
		{"hosts", op.GetHosts(), false, true, hostPermission},
		{"notHosts", op.GetNotHosts(), true, true, hostPermission},
		{"ports", op.GetPorts(), false, false, b.portPermission},
		{"notPorts", op.GetNotPorts(), true, false, b.portPermission},
		{"methods", op.GetMethods(), false, true, methodPermission},
		{"notMethods", op.GetNotMethods(), true, true, methodPermission},
		{"paths", op.GetPaths(), false, true, pathPermission},
		{"notPaths", op.GetNotPaths(), true, true, pathPermission},
	})
}

// source translates a from[].source into one principal per field.
func (b ruleBuilder) source(src *security.Source) ([]*rbacv3.Principal, error) {
	return listFields(b, orPrincipals, []listField[*rbacv3.Principal]{
		{"principals", src.GetPrincipals(), false, false, principalID},
		{"notPrincipals", src.GetNotPrincipals(), true, false, principalID},
		{"requestPrincipals", src.GetRequestPrincipals(), false, true, requestPrincipalID},
		{"notRequestPrincipals", src.GetNotRequestPrincipals(), true, true, requestPrincipalID},
		{"namespaces", src.GetNamespaces(), false, false, namespaceID},
		{"notNamespaces", src.GetNotNamespaces(), true, false, namespaceID},
		{"serviceAccounts", src.GetServiceAccounts(), false, false, b.serviceAccountID},
		{"notServiceAccounts", src.GetNotServiceAccounts(), true, false, b.serviceAccountID},
		{"trustDomains", src.GetTrustDomains(), false, false, trustDomainID},
		{"notTrustDomains", src.GetNotTrustDomains(), true, false, trustDomainID},
		{"ipBlocks", src.GetIpBlocks(), false, false, directIPID},
		{"notIpBlocks", src.GetNotIpBlocks(), true, false, directIPID},
		{"remoteIpBlocks", src.GetRemoteIpBlocks(), false, false, remoteIPID},
		{"notRemoteIpBlocks", src.GetNotRemoteIpBlocks(), true, false, remoteIPID},
	})
}

// condition translates a when entry: attributes of the request become
// permissions, attributes of the caller principals.
func (b ruleBuilder) condition(c *security.Condition) ([]*rbacv3.Permission, []*rbacv3.Principal, error) {
	key := c.GetKey()
	if len(c.GetValues()) == 0 && len(c.GetNotValues()) == 0 {
		return nil, nil, fmt.Errorf("key %q: needs values or notValues", key)
	}
	perm, id, httpOnly, err := b.conditionMatcher(key)
	if err != nil {
		return nil, nil, fmt.Errorf("key: %w", err)
	}
	if httpOnly {
		if skip, err := b.httpOnly(); err != nil {
			return nil, nil, err
		} else if skip {
			return nil, nil, nil
		}
	}
	var perms []*rbacv3.Permission
	var ids []*rbacv3.Principal
	for _, set := range []struct {
		name   string
		values []string
		not    bool
	}{{"values", c.GetValues(), false}, {"notValues", c.GetNotValues(), true}} {
		if len(set.values) == 0 {
			continue
		}
		var ps []*rbacv3.Permission
		var is []*rbacv3.Principal
		for i, v := range set.values {
			var err error
			if perm != nil {
				var p *rbacv3.Permission
				p, err = perm(v)
				ps = append(ps, p)
			} else {
				var p *rbacv3.Principal
				p, err = id(v)
				is = append(is, p)
			}
			if err != nil {
				return nil, nil, fmt.Errorf("%s[%d] for %s: %w", set.name, i, key, err)
			}
		}
		if perm != nil {
			perms = append(perms, orPermissions(ps, set.not))
		} else {
			ids = append(ids, orPrincipals(is, set.not))
		}
	}
	return perms, ids, nil
}

// conditionMatcher maps a when key to the matcher for one of its values:
// a permission (request side) or a principal (caller side), and whether
// the attribute exists only for HTTP.
func (b ruleBuilder) conditionMatcher(key string) (perm func(string) (*rbacv3.Permission, error), id func(string) (*rbacv3.Principal, error), httpOnly bool, err error) {
	switch key {
	case "source.ip":
		return nil, directIPID, false, nil
	case "remote.ip":
		return nil, remoteIPID, false, nil
	case "source.namespace":
		return nil, namespaceID, false, nil
	case "source.principal":
		return nil, principalID, false, nil
	case "request.auth.principal":
		return nil, requestPrincipalID, true, nil
	case "request.auth.audiences":
		return nil, authnListID("request.auth.audiences"), true, nil
	case "request.auth.presenter":
		return nil, authnListID("request.auth.presenter"), true, nil
	case "destination.ip":
		return func(v string) (*rbacv3.Permission, error) {
			r, err := cidr(v)
			return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: r}}, err
		}, nil, false, nil
	case "destination.port":
		return b.portPermission, nil, false, nil
	case "connection.sni":
		return func(v string) (*rbacv3.Permission, error) {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: authzString(v)}}, nil
		}, nil, false, nil
	}
	if rest, ok := strings.CutPrefix(key, "request.headers"); ok {
		segs, err := bracketed(rest)
		if err != nil || len(segs) != 1 {
			return nil, nil, false, fmt.Errorf("%q: want request.headers[NAME]", key)
		}
		name := segs[0]
		return func(v string) (*rbacv3.Permission, error) {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: authzHeader(name, v, false)}}, nil
		}, nil, true, nil
	}
	if rest, ok := strings.CutPrefix(key, "request.auth.claims"); ok {
		segs, err := bracketed(rest)
		if err != nil || len(segs) == 0 {
			return nil, nil, false, fmt.Errorf("%q: want request.auth.claims[NAME] or request.auth.claims[NAME][NESTED]...", key)
		}
		return nil, authnListID(append([]string{"request.auth.claims"}, segs...)...), true, nil
	}
	return nil, nil, false, fmt.Errorf("%q: unsupported attribute", key)
}

// bracketed splits "[a][b]" into a, b; every segment must be non-empty.
func bracketed(s string) ([]string, error) {
	var out []string
	for s != "" {
		if s[0] != '[' {
			return nil, fmt.Errorf("want [")
		}
		end := strings.IndexByte(s, ']')
		if end <= 1 {
			return nil, fmt.Errorf("empty or unterminated segment")
		}
		out = append(out, s[1:end])
		s = s[end+1:]
	}
	return out, nil
}
