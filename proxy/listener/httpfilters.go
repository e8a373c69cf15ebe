package listener

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/proxy/filter"
	_ "github.com/weft-mesh/weft/proxy/filter/all" // register the filters the HCM may configure
)

// HTTP filter names the contract's http_filters list may hold.
const (
	JWTFilter       = "envoy.filters.http.jwt_authn"
	RBACFilter      = "envoy.filters.http.rbac"
	RateLimitFilter = "envoy.filters.http.local_ratelimit"
	FaultFilter     = "envoy.filters.http.fault"
	CORSFilter      = "envoy.filters.http.cors"
)

// httpFilterRank is each filter's place in the contract's order; rbac may
// appear several times (LOG, DENY, ALLOW), the others once.
var httpFilterRank = map[string]int{
	JWTFilter:       1,
	RBACFilter:      2,
	RateLimitFilter: 3,
	FaultFilter:     4,
	CORSFilter:      5,
	RouterFilter:    6,
}

const contractOrder = "jwt_authn, rbac (LOG, DENY, ALLOW), local_ratelimit, fault, cors, router"

// emptyHTTPFilterTypes are the typed_config types of the HCM filters whose
// behaviour is configured per route (typed_per_filter_config, see
// proxy/filter); at the HCM their config must be empty.
var emptyHTTPFilterTypes = map[string]proto.Message{
	FaultFilter:  &faultv3.HTTPFault{},
	CORSFilter:   &corsv3.Cors{},
	RouterFilter: &routerv3.Router{},
}

// httpFilters validates the HCM's http_filters against the contract's order
// and compiles the listener-level chain from the configs of jwt_authn, rbac
// and local_ratelimit (filter.BuildHCM). fault, cors and router carry an
// empty (or absent) typed_config of their own type; the router is last. An
// empty list is the router alone.
func httpFilters(hfs []*hcmv3.HttpFilter, o filter.HCMOptions) (filter.Chain, error) {
	var chain filter.Chain
	seen := map[string]bool{}
	rank, lastAction := 0, -1
	for i, hf := range hfs {
		name := hf.GetName()
		r, ok := httpFilterRank[name]
		if !ok {
			return nil, fmt.Errorf("http_filters[%d].name: unsupported filter %q", i, name)
		}
		if seen[name] && name != RBACFilter {
			return nil, fmt.Errorf("http_filters[%d].name: duplicate filter %q", i, name)
		}
		if r < rank {
			return nil, fmt.Errorf("http_filters[%d].name: %s out of order (want %s)", i, name, contractOrder)
		}
		seen[name], rank = true, r
		if err := contract.CheckFields(hf, "name", "typed_config"); err != nil {
			return nil, fmt.Errorf("http_filters[%d].%w", i, err)
		}
		if want, ok := emptyHTTPFilterTypes[name]; ok {
			if err := checkEmpty(hf, want); err != nil {
				return nil, fmt.Errorf("http_filters[%d].%w", i, err)
			}
			if name == RouterFilter && i != len(hfs)-1 {
				return nil, fmt.Errorf("http_filters[%d]: %s must be the last filter", i, RouterFilter)
			}
			continue
		}
		f, known, err := filter.BuildHCM(name, hf.GetTypedConfig(), o)
		if !known {
			return nil, fmt.Errorf("http_filters[%d].name: %q is not linked into this binary", i, name)
		}
		if err != nil {
			return nil, underTypedConfig(fmt.Sprintf("http_filters[%d]", i), err)
		}
		if f == nil {
			continue // a config that asks for nothing at the listener
		}
		if a, ok := f.(interface{ Action() rbacv3.RBAC_Action }); ok {
			ar := actionRank(a.Action())
			if ar <= lastAction {
				return nil, fmt.Errorf("http_filters[%d]: %s with action %v out of order (want %s, each action at most once)", i, name, a.Action(), contractOrder)
			}
			lastAction = ar
		}
		chain = append(chain, f)
	}
	if len(hfs) > 0 && !seen[RouterFilter] {
		return nil, fmt.Errorf("http_filters: %s missing", RouterFilter)
	}
	return chain, nil
}

// checkEmpty checks that hf's typed_config, if any, is an empty want.
func checkEmpty(hf *hcmv3.HttpFilter, want proto.Message) error {
	tc := hf.GetTypedConfig()
	if tc == nil {
		return nil
	}
	m := want.ProtoReflect().New().Interface()
	if err := tc.UnmarshalTo(m); err != nil {
		return fmt.Errorf("typed_config: %w", err)
	}
	if err := contract.CheckFields(m); err != nil {
		return fmt.Errorf("typed_config.%w (configure %s per route)", err, hf.GetName())
	}
	return nil
}

// actionRank orders RBAC filters as the contract does: LOG, DENY, ALLOW.
func actionRank(a rbacv3.RBAC_Action) int {
	switch a {
	case rbacv3.RBAC_LOG:
		return 0
	case rbacv3.RBAC_DENY:
		return 1
	}
	return 2
}

// underTypedConfig places a filter setup's error under the filter at
// field: setups report a config that does not unmarshal as "typed_config:
// ..." and other errors relative to the config message.
func underTypedConfig(field string, err error) error {
	if strings.HasPrefix(err.Error(), "typed_config") {
		return fmt.Errorf("%s.%w", field, err)
	}
	return fmt.Errorf("%s.typed_config.%w", field, err)
}
