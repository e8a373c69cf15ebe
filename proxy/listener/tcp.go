package listener

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
	"github.com/weft-mesh/weft/proxy/filter/rbac"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

// Network filter names of a TCP listener's chain.
const (
	// TCPProxy is the network filter of a TCP listener, always last.
	TCPProxy = tcpproxy.FilterName
	// NetworkRBAC runs before it: DENY, then ALLOW.
	NetworkRBAC = rbac.NetworkName
)

// isTCP reports whether a filter chain's filters make a TCP listener: its
// last filter is tcp_proxy.
func isTCP(fs []*listenerv3.Filter) bool {
	return len(fs) > 0 && fs[len(fs)-1].GetName() == TCPProxy
}

// tcpSpec fills s from a filter chain group's filters: any envoy.filters.network.rbac
// (LOG, DENY, ALLOW in that order, each at most once), then envoy.filters.network.tcp_proxy. Errors name the
// field relative to the listener.
func tcpSpec(fs []*listenerv3.Filter, s *Spec) error {
	last := -1 // rank of the previous RBAC action: LOG 0, DENY 1, ALLOW 2
	for i, f := range fs {
		if err := contract.CheckFields(f, "name", "typed_config"); err != nil {
			return fmt.Errorf("%s.filters[%d].%w", s.Field, i, err)
		}
		if f.GetTypedConfig() == nil {
			return fmt.Errorf("%s.filters[%d].typed_config: required", s.Field, i)
		}
		if i == len(fs)-1 {
			tcp, err := tcpproxy.Parse(f.GetTypedConfig())
			if err != nil {
				return fmt.Errorf("%s.filters[%d].%w", s.Field, i, err)
			}
			s.TCP = tcp
			break
		}
		if f.GetName() != NetworkRBAC {
			return fmt.Errorf("%s.filters[%d].name: unsupported filter %q before %s (want %s)", s.Field, i, f.GetName(), TCPProxy, NetworkRBAC)
		}
		n, err := rbac.ParseNetwork(f.GetTypedConfig())
		if err != nil {
			return underTypedConfig(fmt.Sprintf("%s.filters[%d]", s.Field, i), err)
		}
		if n == nil {
			continue // no rules: enforces nothing
		}
		rank := actionRank(n.Engine().Action())
		if rank <= last {
			return fmt.Errorf("%s.filters[%d]: %s with action %v out of order (want LOG, DENY, ALLOW, each at most once)", s.Field, i, NetworkRBAC, n.Engine().Action())
		}
		last = rank
		s.ConnFilters = append(s.ConnFilters, filter.ConnFilter(n))
	}
	return nil
}
