// Package cors implements Envoy's CORS HTTP filter (envoy.filters.http.cors)
// from per-route CorsPolicy config: matching preflight requests are answered
// locally, matching simple requests get the allow-origin headers on their
// response. See README.md.
package cors

import (
	"net/http"

	"github.com/weft-mesh/weft/proxy/filter"
)

// Policy is a compiled CorsPolicy for one route. It is immutable.
type Policy struct {
	origins            []filter.StringMatcher
	methods            []string
	headers            []string
	expose             []string
	maxAge             []string
	credentials        bool
	privateNetwork     bool
	forwardNotMatching bool
	enabled            filter.Fraction
}

// matched marks a request whose origin is allowed, for the response hook.
var matched = filter.NewMark()

// Header names, canonical.
const (
	hOrigin            = "Origin"
	hReqMethod         = "Access-Control-Request-Method"
	hReqPrivateNetwork = "Access-Control-Request-Private-Network"
	hAllowOrigin       = "Access-Control-Allow-Origin"
	hAllowCredentials  = "Access-Control-Allow-Credentials"
	hAllowMethods      = "Access-Control-Allow-Methods"
	hAllowHeaders      = "Access-Control-Allow-Headers"
	hExposeHeaders     = "Access-Control-Expose-Headers"
	hMaxAge            = "Access-Control-Max-Age"
	hAllowPrivate      = "Access-Control-Allow-Private-Network"
)

var trueValue = []string{"true"}

// Allowed reports whether origin matches the policy. As in Envoy, a matcher
// that matches "*" allows every origin.
func (p *Policy) Allowed(origin string) bool {
	for i := range p.origins {
		if p.origins[i].Match("*") || p.origins[i].Match(origin) {
			return true
		}
	}
	return false
}

// Request answers preflights and marks simple requests from allowed origins.
func (p *Policy) Request(x *filter.Exchange) bool {
	origin := x.R.Header[hOrigin]
	if len(origin) == 0 || origin[0] == "" || !p.enabled.Sample() {
		return true
	}
	allowed := p.Allowed(origin[0])
	rm := x.R.Header[hReqMethod]
	if x.R.Method != http.MethodOptions || len(rm) == 0 || rm[0] == "" {
		if allowed {
			x.Marks |= matched
		}
		return true
	}
	// Preflight.
	if !allowed {
		if p.forwardNotMatching {
			return true
		}
		x.Reply(http.StatusOK, "")
		return false
	}
	h := x.W.Header()
	h[hAllowOrigin] = origin[:1]
	if p.credentials {
		h[hAllowCredentials] = trueValue
	}
	if p.methods != nil {
		h[hAllowMethods] = p.methods
	}
	if p.headers != nil {
		h[hAllowHeaders] = p.headers
	}
	if p.maxAge != nil {
		h[hMaxAge] = p.maxAge
	}
	if p.privateNetwork {
		if v := x.R.Header[hReqPrivateNetwork]; len(v) > 0 && v[0] == "true" {
			h[hAllowPrivate] = trueValue
		}
	}
	x.Reply(http.StatusOK, "")
	return false
}

// Response adds the allow-origin headers for a matched simple request.
func (p *Policy) Response(x *filter.Exchange, _ int, h http.Header) {
	if x.Marks&matched == 0 {
		return
	}
	h[hAllowOrigin] = x.R.Header[hOrigin][:1]
	if p.credentials {
		h[hAllowCredentials] = trueValue
	}
	if p.expose != nil {
		h[hExposeHeaders] = p.expose
	}
}
