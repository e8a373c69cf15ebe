package filter

import (
	"fmt"

	"google.golang.org/protobuf/types/known/anypb"
)

// HCMOptions is what a listener-level filter may need to know about the
// HTTP connection manager it runs in.
type HCMOptions struct {
	// UseRemoteAddress is the HCM's use_remote_address: when true the
	// downstream connection's address is the client's; otherwise the
	// rightmost x-forwarded-for entry is, when there is one (Envoy with
	// xff_num_trusted_hops 0). See Exchange.RemoteIP.
	UseRemoteAddress bool
}

// HCMSetup parses and validates a filter's typed config as found in the
// HCM's http_filters list. It returns a nil Filter when the config asks
// for nothing at that level (a LocalRateLimit without token bucket, an
// RBAC without rules). Errors name the field relative to the config.
type HCMSetup func(config *anypb.Any, o HCMOptions) (Filter, error)

var hcmRegistry = map[string]HCMSetup{}

// RegisterHCM makes a filter configurable at the HCM (listener level)
// under its Envoy name. Call it from init; it panics on a duplicate name.
// The order of HCM filters is the http_filters list's, checked by
// proxy/listener against the contract.
func RegisterHCM(name string, setup HCMSetup) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := hcmRegistry[name]; dup {
		panic("filter: duplicate HCM registration of " + name)
	}
	hcmRegistry[name] = setup
}

// BuildHCM compiles the HCM-level config of the filter registered under
// name. known is false when no filter registered that name for the HCM.
func BuildHCM(name string, config *anypb.Any, o HCMOptions) (f Filter, known bool, err error) {
	registry.RLock()
	setup, ok := hcmRegistry[name]
	registry.RUnlock()
	if !ok {
		return nil, false, nil
	}
	if config == nil {
		return nil, true, fmt.Errorf("typed_config: required")
	}
	f, err = setup(config, o)
	return f, true, err
}
