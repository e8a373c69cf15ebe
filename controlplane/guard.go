package controlplane

import (
	"encoding/json"
	"net/http"

	"github.com/weft-mesh/weft/internal/hostguard"
	"github.com/weft-mesh/weft/kube/inject"
)

// guard puts the API, console and telemetry endpoints behind a
// hostguard: reads are open on loopback, so a web page must not reach
// them through the user's browser, neither by a cross-origin request nor
// by rebinding its own name to 127.0.0.1.
func (c *ControlPlane) guard(h http.Handler) http.Handler {
	hosts := c.opts.APIHosts
	if k := c.opts.Kubernetes; k != nil {
		// In a cluster clients name the Services (kubectl port-forward and
		// in-cluster callers alike): istiod, and istiod-leader for the
		// console and telemetry; setupKube has defaulted the namespace.
		ns := k.Namespace
		for _, svc := range []string{inject.ControlPlaneName, inject.LeaderServiceName} {
			hosts = append(hosts, svc, svc+"."+ns, svc+"."+ns+".svc", svc+"."+ns+".svc.cluster.local")
		}
	}
	g := hostguard.New(c.opts.APIAddr, hosts...)
	g.Refuse = func(w http.ResponseWriter, err error) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error() + " (--api-allowed-hosts adds names)"})
	}
	return g.Wrap(h)
}
