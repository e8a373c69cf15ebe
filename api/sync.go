package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/weft-mesh/weft/config"
)

// syncStatus handles GET /api/v1/sync?revision=N: has every connected
// proxy ACKed the configuration of store revision N (default: the current
// revision), and which have not. `weft apply --wait` polls it. A proxy
// that took a later revision in full counts as synced: configurations are
// whole, so it holds N's changes too.
func (s *Server) syncStatus(w http.ResponseWriter, r *http.Request) {
	if s.proxies == nil {
		writeError(w, http.StatusServiceUnavailable, "no proxy information: the xDS server is not running")
		return
	}
	var rev int64
	if v := r.URL.Query().Get("revision"); v != "" {
		var err error
		if rev, err = strconv.ParseInt(v, 10, 64); err != nil || rev < 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter revision=%q is not a revision number", v))
			return
		}
	} else {
		_, current, err := s.st.List(r.Context(), config.KindGateway, "")
		if err != nil {
			s.storeError(w, r, "list", err)
			return
		}
		rev = current
	}
	resp := SyncResponse{Revision: rev, Synced: true, Proxies: []ProxySync{}}
	for _, p := range s.proxies.Proxies() {
		if !p.Connected {
			continue
		}
		ps := ProxySync{ID: p.ID, Name: p.Name, Namespace: p.Namespace, Revision: p.Revision, State: SyncPending, Detail: p.SyncDetail}
		switch {
		case p.SyncedRevision >= rev:
			ps.State, ps.Detail = SyncSynced, ""
		case p.Revision >= rev && p.Sync == SyncNACKed:
			ps.State = SyncNACKed
		case p.Revision < rev:
			ps.Detail = fmt.Sprintf("has revision %d", p.Revision)
			if p.SyncDetail != "" {
				ps.Detail += ": " + p.SyncDetail
			}
		}
		if ps.State != SyncSynced {
			resp.Synced = false
		}
		resp.Proxies = append(resp.Proxies, ps)
	}
	writeJSON(w, http.StatusOK, resp)
}
