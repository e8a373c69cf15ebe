// Package all links every HTTP filter of the weft proxy into the binary, so
// that they register with proxy/filter. Import it for its side effects.
package all

import (
	_ "github.com/weft-mesh/weft/proxy/filter/cors"  // envoy.filters.http.cors
	_ "github.com/weft-mesh/weft/proxy/filter/fault" // envoy.filters.http.fault
)
