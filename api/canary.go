package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/weft-mesh/weft/canary"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

// CanarySource answers the canary endpoints: what the analysis knows of a
// canary beyond its status, and the manual commands. *canary.Controller
// is one.
type CanarySource interface {
	Info(namespace, name string) (canary.Info, bool)
	Command(ctx context.Context, namespace, name, action string) error
}

// Guard checks a write against what controllers own (see canary.Guard): a
// non-empty refusal is answered 409 with it, and nothing is written.
type Guard func(ctx context.Context, writes []*config.Object, deletes []config.Key) (refusal string, err error)

// CanaryResponse is the body of GET /api/v1/canaries/{namespace}/{name}
// and of a command: the analysis' view (the status is on the object).
type CanaryResponse struct {
	Info canary.Info `json:"info"`
	// Phase is the canary's phase after a command.
	Phase string `json:"phase,omitempty"`
}

// getCanary handles GET /api/v1/canaries/{namespace}/{name}.
func (s *Server) getCanary(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := s.canaryExists(w, r)
	if !ok {
		return
	}
	info, _ := s.canaries.Info(ns, name)
	writeJSON(w, http.StatusOK, CanaryResponse{Info: info})
}

// canaryCommand handles POST /api/v1/canaries/{namespace}/{name}/{action}
// (promote, abort, resume).
func (s *Server) canaryCommand(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := s.canaryExists(w, r)
	if !ok {
		return
	}
	action := r.PathValue("action")
	err := s.canaries.Command(r.Context(), ns, name, action)
	switch {
	case errors.Is(err, canary.ErrWrongPhase):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("canary %s/%s has no analysis running yet; try again in a moment", ns, name))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.log.Info("canary command", "canary", ns+"/"+name, "action", action)
	info, _ := s.canaries.Info(ns, name)
	resp := CanaryResponse{Info: info}
	if o, err := s.st.Get(r.Context(), config.Key{Kind: config.KindCanary, Namespace: ns, Name: name}); err == nil && o.Status != nil {
		resp.Phase = canaryPhase(o)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) canaryExists(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	if s.canaries == nil {
		writeError(w, http.StatusServiceUnavailable, "this control plane runs no canary analysis")
		return "", "", false
	}
	k := config.Key{Kind: config.KindCanary, Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}
	if _, err := s.st.Get(r.Context(), k); errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, notFound(k))
		return "", "", false
	} else if err != nil {
		s.storeError(w, r, "get", err)
		return "", "", false
	}
	return k.Namespace, k.Name, true
}

func canaryPhase(o *config.Object) string {
	type phaser interface{ GetPhase() string }
	if p, ok := o.Status.(phaser); ok {
		return p.GetPhase()
	}
	return ""
}

// guard runs the write guard, answering the request itself on a refusal
// or failure; ok reports the write may go on.
func (s *Server) guardWrite(w http.ResponseWriter, r *http.Request, writes []*config.Object, deletes []config.Key) bool {
	if s.guard == nil {
		return true
	}
	refusal, err := s.guard(r.Context(), writes, deletes)
	if err != nil {
		s.storeError(w, r, "check ownership", err)
		return false
	}
	if refusal != "" {
		writeError(w, http.StatusConflict, refusal)
		return false
	}
	return true
}
