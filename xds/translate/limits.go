package translate

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// headerLimits writes Options' request header limits into every HTTP
// connection manager of the generated listeners. With none configured
// nothing is written: the fields' absence is Envoy's default, which the
// proxy applies too, so the common case costs nothing.
func (g *generator) headerLimits() {
	kb, count := g.opts.MaxRequestHeadersKB, g.opts.MaxHeadersCount
	if kb == 0 && count == 0 {
		return
	}
	for _, name := range sortedKeys(g.r.Listeners) {
		for _, fc := range g.r.Listeners[name].GetFilterChains() {
			for _, f := range fc.GetFilters() {
				if f.GetName() != hcmFilterName {
					continue
				}
				m := &hcm.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
					g.r.problem("listener %s: %v", name, err)
					continue
				}
				if kb != 0 {
					m.MaxRequestHeadersKb = wrapperspb.UInt32(kb)
				}
				if count != 0 {
					m.CommonHttpProtocolOptions = &core.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(count)}
				}
				if a := g.toAny("listener "+name+" header limits", m); a != nil {
					f.ConfigType = &listener.Filter_TypedConfig{TypedConfig: a}
				}
			}
		}
	}
}
