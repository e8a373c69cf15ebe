package controlplane

import (
	"encoding/json"
	"net/http"

	"github.com/weft-mesh/weft/internal/hostguard"
)

// guard puts the API, console and telemetry endpoints behind a
// hostguard: reads are open on loopback, so a web page must not reach
// them through the user's browser, neither by a cross-origin request nor
// by rebinding its own name to 127.0.0.1.
func (c *ControlPlane) guard(h http.Handler) http.Handler {
	g := hostguard.New(c.opts.APIAddr, c.opts.APIHosts...)
	g.Refuse = func(w http.ResponseWriter, err error) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error() + " (--api-allowed-hosts adds names)"})
	}
	return g.Wrap(h)
}
