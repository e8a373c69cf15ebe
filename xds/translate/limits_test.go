package translate

import (
	"testing"

	"github.com/weft-mesh/weft/model"
)

// TestHeaderLimits: configured request header limits reach every HTTP
// connection manager, sidecar and gateway; unconfigured, the fields stay
// out (Envoy's defaults apply).
func TestHeaderLimits(t *testing.T) {
	snap := model.Build(1, coolapp())
	for _, c := range []struct {
		name      string
		listeners []string
		opts      Options
		kb, count uint32
	}{
		{"sidecar, defaults", []string{OutboundListener, InboundListener}, Options{}, 0, 0},
		{"sidecar, configured", []string{OutboundListener, InboundListener}, Options{MaxRequestHeadersKB: 32, MaxHeadersCount: 50}, 32, 50},
		{"gateway, configured", []string{"0.0.0.0_80"}, Options{MaxRequestHeadersKB: 96}, 96, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			meta := sidecarMeta()
			if c.listeners[0] == "0.0.0.0_80" {
				meta = routerMeta()
			}
			r := GenerateWith(snap, meta, c.opts)
			if err := r.Validate(); err != nil {
				t.Fatal(err)
			}
			for _, name := range c.listeners {
				m := manager(t, r, name)
				if got := m.GetMaxRequestHeadersKb(); (got == nil) != (c.kb == 0) || got.GetValue() != c.kb {
					t.Errorf("%s: max_request_headers_kb %v, want %d (0: absent)", name, got, c.kb)
				}
				if got := m.GetCommonHttpProtocolOptions().GetMaxHeadersCount(); (got == nil) != (c.count == 0) || got.GetValue() != c.count {
					t.Errorf("%s: max_headers_count %v, want %d (0: absent)", name, got, c.count)
				}
				if m.GetRouteSpecifier() == nil || len(m.GetHttpFilters()) == 0 {
					t.Errorf("%s: the rest of the manager was lost: %v", name, m)
				}
			}
		})
	}
}
