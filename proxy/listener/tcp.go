package listener

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/weft-mesh/weft/proxy/tcpproxy"
)

// TCPProxy is the network filter of a TCP listener.
const TCPProxy = tcpproxy.FilterName

// tcpSpec fills s from a filter chain's single envoy.filters.network.tcp_proxy
// filter f. Errors name the field relative to the listener.
func tcpSpec(f *listenerv3.Filter, s *Spec) (*Spec, error) {
	tcp, err := tcpproxy.Parse(f.GetTypedConfig())
	if err != nil {
		return nil, fmt.Errorf("filter_chains[0].filters[0].%w", err)
	}
	s.TCP = tcp
	return s, nil
}
