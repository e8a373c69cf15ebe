package translate

import (
	"strconv"
	"strings"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// corsPolicy translates a corsPolicy into the per-route config of
// envoy.filters.http.cors. Lists become the comma-joined strings Envoy
// expects and maxAge whole seconds, as Istio writes them. The deprecated
// allowOrigin list is read as exact matches after allowOrigins.
func corsPolicy(in *networking.CorsPolicy) *corsv3.CorsPolicy {
	if in == nil {
		return nil
	}
	out := &corsv3.CorsPolicy{
		AllowMethods:  strings.Join(in.GetAllowMethods(), ","),
		AllowHeaders:  strings.Join(in.GetAllowHeaders(), ","),
		ExposeHeaders: strings.Join(in.GetExposeHeaders(), ","),
	}
	for _, o := range in.GetAllowOrigins() {
		if m := stringMatcher(o); m != nil {
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, m)
		}
	}
	for _, o := range in.GetAllowOrigin() { //nolint:staticcheck // legacy field, still accepted
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch,
			&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: o}})
	}
	if d := in.GetMaxAge(); d != nil {
		out.MaxAge = strconv.FormatInt(d.GetSeconds(), 10)
	}
	if c := in.GetAllowCredentials(); c != nil {
		out.AllowCredentials = wrapperspb.Bool(c.GetValue())
	}
	return out
}
