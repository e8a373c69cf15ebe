package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store"
)

// ObjectList is the default (no format) answer of GET /api/v1/objects: a
// Kubernetes-style List whose items are config.Marshal's JSON and whose
// metadata.resourceVersion is the store revision the list was read at.
type ObjectList struct {
	APIVersion string `json:"apiVersion"` // "v1"
	Kind       string `json:"kind"`       // "List"
	Metadata   struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

// lookupKind resolves a kind as a user spells it ("vs", "virtualservices").
func lookupKind(w http.ResponseWriter, name string) (config.KindInfo, bool) {
	info, ok := config.LookupKind(name)
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the server doesn't have a resource type %q", name))
	}
	return info, ok
}

func readFormat(w http.ResponseWriter, r *http.Request) (string, bool) {
	switch f := r.URL.Query().Get("format"); f {
	case "", "json", "yaml":
		return f, true
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown format %q: use yaml or json", f))
		return "", false
	}
}

func contentType(format string) string {
	if format == "yaml" {
		return "application/yaml"
	}
	return "application/json"
}

// listObjects handles GET /api/v1/objects?kind=K&namespace=NS&format=F.
func (s *Server) listObjects(w http.ResponseWriter, r *http.Request) {
	format, ok := readFormat(w, r)
	if !ok {
		return
	}
	var kind config.Kind
	if k := r.URL.Query().Get("kind"); k != "" && !strings.EqualFold(k, "all") {
		info, ok := lookupKind(w, k)
		if !ok {
			return
		}
		kind = info.Kind
	}
	objs, rev, err := s.st.List(r.Context(), kind, r.URL.Query().Get("namespace"))
	if err != nil {
		s.storeError(w, r, "list", err)
		return
	}
	w.Header().Set("X-Weft-Revision", strconv.FormatInt(rev, 10))
	if format != "" {
		data, err := config.MarshalList(objs, format)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "encode objects: "+err.Error())
			return
		}
		writeRaw(w, format, data)
		return
	}
	list := ObjectList{APIVersion: "v1", Kind: "List", Items: make([]json.RawMessage, 0, len(objs))}
	list.Metadata.ResourceVersion = strconv.FormatInt(rev, 10)
	for _, o := range objs {
		data, err := config.Marshal(o, "json")
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("encode %s: %v", o.Key(), err))
			return
		}
		list.Items = append(list.Items, data)
	}
	writeJSON(w, http.StatusOK, list)
}

// getObject handles GET /api/v1/objects/{kind}/{namespace}/{name}?format=F;
// the default format is JSON.
func (s *Server) getObject(w http.ResponseWriter, r *http.Request) {
	format, ok := readFormat(w, r)
	if !ok {
		return
	}
	key, ok := pathKey(w, r)
	if !ok {
		return
	}
	o, err := s.st.Get(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, notFound(key))
		return
	}
	if err != nil {
		s.storeError(w, r, "get", err)
		return
	}
	if format == "" {
		format = "json"
	}
	data, err := config.Marshal(o, format)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("encode %s: %v", key, err))
		return
	}
	writeRaw(w, format, data)
}

func writeRaw(w http.ResponseWriter, format string, data []byte) {
	w.Header().Set("Content-Type", contentType(format))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// pathKey reads {kind}/{namespace}/{name} from the request path.
func pathKey(w http.ResponseWriter, r *http.Request) (config.Key, bool) {
	info, ok := lookupKind(w, r.PathValue("kind"))
	if !ok {
		return config.Key{}, false
	}
	return config.Key{Kind: info.Kind, Namespace: r.PathValue("namespace"), Name: r.PathValue("name")}, true
}

// listProxies handles GET /api/v1/proxies?workload=X, where X may be a
// proxy's ID, name or workload.
func (s *Server) listProxies(w http.ResponseWriter, r *http.Request) {
	if s.proxies == nil {
		writeError(w, http.StatusServiceUnavailable, "no proxy information: the xDS server is not running")
		return
	}
	all := s.proxies.Proxies()
	out := make([]ProxyInfo, 0, len(all))
	want := r.URL.Query().Get("workload")
	for _, p := range all {
		if want == "" || proxyMatches(p, want) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	writeJSON(w, http.StatusOK, ProxiesResponse{Proxies: out})
}

func proxyMatches(p ProxyInfo, name string) bool {
	return p.ID == name || p.Name == name || p.Workload == name
}

// proxyConfig handles GET /api/v1/proxies/{id}/config/{kind}. {id} may also
// be a proxy name or workload, as long as it names one proxy only.
func (s *Server) proxyConfig(w http.ResponseWriter, r *http.Request) {
	if s.proxies == nil {
		writeError(w, http.StatusServiceUnavailable, "no proxy information: the xDS server is not running")
		return
	}
	kind := r.PathValue("kind")
	if !strings.HasSuffix(kind, "s") {
		kind += "s" // "secret" as well as "secrets", like kubectl's kinds
	}
	if !slices.Contains(ProxyConfigKinds, kind) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown config kind %q: use one of %s", r.PathValue("kind"), strings.Join(ProxyConfigKinds, ", ")))
		return
	}
	id, status, err := s.resolveProxy(r.PathValue("id"))
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	data, err := s.proxies.ProxyConfig(id, kind)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s of proxy %s: %v", kind, id, err))
		return
	}
	// Every kind, not only secrets: a listener or cluster could inline a
	// key too (a DestinationRule's MUTUAL settings, a future SDS inline).
	if data, err = RedactSecrets(data); err != nil {
		// Unparseable means unredactable: show nothing rather than risk it.
		s.log.Error("proxy config is not JSON", "proxy", id, "kind", kind, "err", err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s of proxy %s: not valid JSON, withheld", kind, id))
		return
	}
	writeRaw(w, "json", data)
}

// resolveProxy finds the one proxy whose ID, name or workload is name; an
// exact ID wins over the other two.
func (s *Server) resolveProxy(name string) (string, int, error) {
	var ids []string
	for _, p := range s.proxies.Proxies() {
		if p.ID == name {
			return p.ID, 0, nil
		}
		if proxyMatches(p, name) {
			ids = append(ids, p.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", http.StatusNotFound, fmt.Errorf("proxy %q not found", name)
	case 1:
		return ids[0], 0, nil
	default:
		sort.Strings(ids)
		return "", http.StatusConflict, fmt.Errorf("%q names %d proxies (%s): give a proxy ID", name, len(ids), strings.Join(ids, ", "))
	}
}
