// Package rbac implements Envoy's role-based access control filters for the
// weft proxy: envoy.filters.http.rbac at the HTTP connection manager, and
// envoy.filters.network.rbac before tcp_proxy. Both compile an
// envoy.config.rbac.v3.RBAC (what Istio's AuthorizationPolicy becomes) into
// an immutable matcher tree. See README.md.
package rbac

import (
	"net/http"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	"github.com/weft-mesh/weft/proxy/filter"
)

// Denied HTTP requests get this body, as from Envoy.
const DeniedBody = "RBAC: access denied"

// Dynamic metadata the filters write.
const (
	// LogNamespace and LogHintKey: a LOG engine whose policy matched sets
	// LogNamespace/LogHintKey = true, Envoy's hint for access loggers.
	LogNamespace = "envoy.common"
	LogHintKey   = "access_log_hint"
	// PolicyNamespace and PolicyKey: a denied request carries the name of
	// the DENY policy that matched (absent when an ALLOW engine matched
	// nothing), for logs.
	PolicyNamespace = Name
	PolicyKey       = "enforced_effective_policy_id"
)

// HTTP is the compiled HTTP filter. It is immutable.
type HTTP struct {
	e                *Engine
	useRemoteAddress bool
}

// Engine returns the filter's rules.
func (h *HTTP) Engine() *Engine { return h.e }

// Action returns the filter's action (ALLOW, DENY or LOG); the listener
// checks the contract's order of RBAC filters with it.
func (h *HTTP) Action() rbacv3.RBAC_Action { return h.e.action }

// Request enforces the rules: ALLOW lets through requests some policy
// matches, DENY those no policy matches, LOG lets everything through and
// marks matches for the access log. Denied: 403 "RBAC: access denied"
// (a gRPC status 7 for gRPC requests), flag RBAC.
func (h *HTTP) Request(x *filter.Exchange) bool {
	in := input{x: x, conn: x.Conn(), useRemote: h.useRemoteAddress}
	policy, matched := h.e.evaluate(&in)
	switch h.e.action {
	case rbacv3.RBAC_LOG:
		if matched {
			x.SetMetadata(LogNamespace, LogHintKey, true)
		}
		return true
	case rbacv3.RBAC_ALLOW:
		if matched {
			return true
		}
	case rbacv3.RBAC_DENY:
		if !matched {
			return true
		}
		x.SetMetadata(PolicyNamespace, PolicyKey, policy)
	}
	x.Flags |= filter.RBACDenied
	x.LocalReply(http.StatusForbidden, DeniedBody)
	return false
}

// evaluate returns the first policy (by name) whose permissions and
// principals both match.
func (e *Engine) evaluate(in *input) (string, bool) {
	for i := range e.policies {
		p := &e.policies[i]
		if p.permissions.match(in) && p.principals.match(in) {
			return p.name, true
		}
	}
	return "", false
}

// Allowed reports whether the engine lets a connection with attributes c
// through (LOG always does). HTTP-only rules never appear in an engine
// compiled for the network filter.
func (e *Engine) Allowed(c *filter.ConnInfo) bool {
	in := input{conn: c}
	_, matched := e.evaluate(&in)
	switch e.action {
	case rbacv3.RBAC_ALLOW:
		return matched
	case rbacv3.RBAC_DENY:
		return !matched
	}
	return true
}

// Network is the compiled network filter. It is immutable.
type Network struct {
	e *Engine
}

// Engine returns the filter's rules.
func (n *Network) Engine() *Engine { return n.e }

// Allow reports whether the connection may go on to tcp_proxy; the caller
// closes it otherwise. It implements filter.ConnFilter.
func (n *Network) Allow(c *filter.ConnInfo) bool { return n.e.Allowed(c) }
