package listener

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
)

// HTTP filter names the contract's http_filters list may hold.
const (
	FaultFilter = "envoy.filters.http.fault"
	CORSFilter  = "envoy.filters.http.cors"
)

// httpFilterTypes are the typed_config types of the HCM filters weft
// accepts. Their behaviour is configured per route (typed_per_filter_config,
// see proxy/filter); at the HCM they must be empty.
var httpFilterTypes = map[string]proto.Message{
	FaultFilter:  &faultv3.HTTPFault{},
	CORSFilter:   &corsv3.Cors{},
	RouterFilter: &routerv3.Router{},
}

// checkHTTPFilters validates the HCM's http_filters: each of fault, cors and
// router at most once, with an empty (or absent) typed_config of its own
// type, and the router last. An empty list is the router alone.
func checkHTTPFilters(hfs []*hcmv3.HttpFilter) error {
	seen := map[string]bool{}
	for i, hf := range hfs {
		name := hf.GetName()
		want, ok := httpFilterTypes[name]
		if !ok {
			return fmt.Errorf("http_filters[%d].name: unsupported filter %q", i, name)
		}
		if seen[name] {
			return fmt.Errorf("http_filters[%d].name: duplicate filter %q", i, name)
		}
		seen[name] = true
		if err := contract.CheckFields(hf, "name", "typed_config"); err != nil {
			return fmt.Errorf("http_filters[%d].%w", i, err)
		}
		if tc := hf.GetTypedConfig(); tc != nil {
			m := want.ProtoReflect().New().Interface()
			if err := tc.UnmarshalTo(m); err != nil {
				return fmt.Errorf("http_filters[%d].typed_config: %w", i, err)
			}
			if err := contract.CheckFields(m); err != nil {
				return fmt.Errorf("http_filters[%d].typed_config.%w (configure %s per route)", i, err, name)
			}
		}
		if name == RouterFilter && i != len(hfs)-1 {
			return fmt.Errorf("http_filters[%d]: %s must be the last filter", i, RouterFilter)
		}
	}
	if len(hfs) > 0 && !seen[RouterFilter] {
		return fmt.Errorf("http_filters: %s missing", RouterFilter)
	}
	return nil
}
