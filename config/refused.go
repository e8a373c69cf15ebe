package config

import (
	"sort"
	"strings"
)

// envoyFilterAdvice maps what an EnvoyFilter patches in (a filter name or
// the type of its config, matched as a substring of any string in the spec)
// to the weft object that does the same. Order matters: the first entry
// whose pattern matches a string claims it, so "local_ratelimit" is tried
// before the global rate-limit filter's names.
var envoyFilterAdvice = []struct {
	patterns []string
	advice   string
}{
	{[]string{"local_ratelimit"},
		"for a local rate limit use weft's RateLimit (weft.io/v1alpha1, see docs/security.md)"},
	{[]string{"envoy.filters.http.ratelimit", "envoy.ratelimit", "filters.http.ratelimit.v3"},
		"weft has no global rate limit service; a RateLimit (weft.io/v1alpha1, see docs/security.md) limits requests per proxy"},
	{[]string{"envoy.filters.http.cors", "filters.http.cors.v3"},
		"for CORS use the VirtualService's http[].corsPolicy"},
	{[]string{"envoy.filters.http.fault", "filters.http.fault.v3"},
		"for fault injection use the VirtualService's http[].fault"},
	{[]string{"envoy.filters.http.jwt_authn", "filters.http.jwt_authn.v3"},
		"for JWT validation use RequestAuthentication"},
	{[]string{"envoy.filters.http.rbac", "envoy.filters.network.rbac", "filters.http.rbac.v3", "filters.network.rbac.v3"},
		"for access control use AuthorizationPolicy"},
}

// refusedKindMessage explains why an Istio kind weft does not take is
// refused and what to use instead, or returns "" for any other kind.
func refusedKindMessage(kind string, spec any) string {
	if kind != "EnvoyFilter" {
		return ""
	}
	msg := "EnvoyFilter is not supported: weft builds its proxies' configuration itself and applies no patches to it"
	var strs []string
	collectStrings(spec, &strs)
	seen := map[int]bool{}
	for _, s := range strs {
		for i, a := range envoyFilterAdvice {
			if containsAny(s, a.patterns) {
				seen[i] = true
				break
			}
		}
	}
	if len(seen) == 0 {
		return msg + "; routing, resilience, security and rate limits are configured with the kinds weft understands (" + kindNames() + ")"
	}
	idx := make([]int, 0, len(seen))
	for i := range seen {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		msg += "; " + envoyFilterAdvice[i].advice
	}
	return msg
}

// collectStrings appends every string value (and map key) found in v.
func collectStrings(v any, out *[]string) {
	switch x := v.(type) {
	case string:
		*out = append(*out, x)
	case []any:
		for _, e := range x {
			collectStrings(e, out)
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			*out = append(*out, k)
			collectStrings(x[k], out)
		}
	}
}

func containsAny(s string, patterns []string) bool {
	for _, p := range patterns {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func kindNames() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k.Kind)
	}
	return strings.Join(names, ", ")
}
