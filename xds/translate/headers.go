package translate

import (
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"
)

// headerOps is an Istio Headers block in Envoy's terms.
type headerOps struct {
	requestAdd     []*core.HeaderValueOption
	requestRemove  []string
	responseAdd    []*core.HeaderValueOption
	responseRemove []string
	// authority is a request "set" of :authority or host, which Envoy does
	// not allow in headers_to_add; Istio turns it into a host rewrite.
	authority string
}

// headerOperations translates h: "set" entries overwrite
// (OVERWRITE_IF_EXISTS_OR_ADD), "add" entries append
// (APPEND_IF_EXISTS_OR_ADD); sets come before adds, each sorted by name so
// the output does not depend on map order. Pseudo-headers and Host, which
// Envoy refuses to touch this way, are left out.
func headerOperations(h *networking.Headers) headerOps {
	var ops headerOps
	req, resp := h.GetRequest(), h.GetResponse()
	for _, k := range sortedKeys(req.GetSet()) {
		if isAuthority(k) {
			ops.authority = req.GetSet()[k]
		}
	}
	ops.requestAdd = append(headerValues(req.GetSet(), core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		headerValues(req.GetAdd(), core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)...)
	ops.responseAdd = append(headerValues(resp.GetSet(), core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD),
		headerValues(resp.GetAdd(), core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD)...)
	ops.requestRemove = headerNames(req.GetRemove())
	ops.responseRemove = headerNames(resp.GetRemove())
	return ops
}

func headerValues(m map[string]string, action core.HeaderValueOption_HeaderAppendAction) []*core.HeaderValueOption {
	var out []*core.HeaderValueOption
	for _, k := range sortedKeys(m) {
		if !modifiable(k) {
			continue
		}
		out = append(out, &core.HeaderValueOption{
			Header:       &core.HeaderValue{Key: strings.ToLower(k), Value: m[k]},
			AppendAction: action,
		})
	}
	return out
}

func headerNames(names []string) []string {
	var out []string
	for _, n := range names {
		if modifiable(n) {
			out = append(out, strings.ToLower(n))
		}
	}
	sort.Strings(out)
	return out
}

func isAuthority(name string) bool {
	return strings.EqualFold(name, ":authority") || strings.EqualFold(name, "host")
}

// modifiable reports whether Envoy lets configuration add or remove name.
func modifiable(name string) bool {
	return name != "" && !strings.HasPrefix(name, ":") && !strings.EqualFold(name, "host")
}

// addToRoute appends the operations to r's, after any already there.
func (o headerOps) addToRoute(r *route.Route) {
	r.RequestHeadersToAdd = append(r.RequestHeadersToAdd, o.requestAdd...)
	r.RequestHeadersToRemove = append(r.RequestHeadersToRemove, o.requestRemove...)
	r.ResponseHeadersToAdd = append(r.ResponseHeadersToAdd, o.responseAdd...)
	r.ResponseHeadersToRemove = append(r.ResponseHeadersToRemove, o.responseRemove...)
}

// addToClusterWeight sets the operations of one weighted destination. An
// :authority set there is dropped: a per-cluster host rewrite is not part
// of the xDS contract.
func (o headerOps) addToClusterWeight(cw *route.WeightedCluster_ClusterWeight) {
	cw.RequestHeadersToAdd = o.requestAdd
	cw.RequestHeadersToRemove = o.requestRemove
	cw.ResponseHeadersToAdd = o.responseAdd
	cw.ResponseHeadersToRemove = o.responseRemove
}
