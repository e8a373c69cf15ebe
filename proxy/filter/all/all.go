// Package all links every HTTP and network filter of the weft proxy into
// the binary, so that they register with proxy/filter. Import it for its
// side effects.
package all

import (
	_ "github.com/weft-mesh/weft/proxy/filter/cors"      // envoy.filters.http.cors
	_ "github.com/weft-mesh/weft/proxy/filter/fault"     // envoy.filters.http.fault
	_ "github.com/weft-mesh/weft/proxy/filter/jwtauthn"  // envoy.filters.http.jwt_authn
	_ "github.com/weft-mesh/weft/proxy/filter/ratelimit" // envoy.filters.http.local_ratelimit
	_ "github.com/weft-mesh/weft/proxy/filter/rbac"      // envoy.filters.http.rbac, envoy.filters.network.rbac
)
