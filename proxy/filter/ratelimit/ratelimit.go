// Package ratelimit implements Envoy's local rate limit HTTP filter
// (envoy.filters.http.local_ratelimit), what weft's RateLimit object
// becomes: a token bucket for the whole listener (at the HTTP connection
// manager) or for one route (typed_per_filter_config, which replaces the
// listener's bucket for that route). See README.md.
package ratelimit

import (
	"math"
	"net/http"
	"strconv"

	"github.com/weft-mesh/weft/proxy/filter"
)

// LimitedBody is the body of a limited request's response, as from Envoy.
const LimitedBody = "local_rate_limited"

// Exchange marks: the listener-level or the route-level limiter let the
// request through without consulting its bucket, so it adds no headers.
var (
	markHCM   = filter.NewMark()
	markRoute = filter.NewMark()
)

// Limiter is one compiled LocalRateLimit with its bucket. The config is
// immutable; the bucket is the only state, shared by all requests it sees.
type Limiter struct {
	bucket   *Bucket
	status   int
	enabled  filter.Fraction
	enforced filter.Fraction
	headers  bool     // x-ratelimit-* (DRAFT_VERSION_03)
	limit    []string // x-ratelimit-limit value
	perRoute bool
	mark     uint32
}

// Bucket returns the limiter's token bucket.
func (l *Limiter) Bucket() *Bucket { return l.bucket }

// Request takes a token. None left: the request is answered with the
// configured status (429) and body "local_rate_limited", flag RL, unless
// the limit is not enforced for it. A listener-level limiter stands aside
// for routes that carry their own.
func (l *Limiter) Request(x *filter.Exchange) bool {
	if (!l.perRoute && hasOwn(x.RouteFilters)) || !l.enabled.Sample() {
		x.Marks |= l.mark
		return true
	}
	if l.bucket.Take() || !l.enforced.Sample() {
		return true
	}
	x.Flags |= filter.RateLimited
	if l.headers {
		l.setHeaders(x.W.Header())
	}
	x.LocalReply(l.status, LimitedBody)
	return false
}

// Response adds the x-ratelimit headers to responses of requests the
// limiter counted.
func (l *Limiter) Response(x *filter.Exchange, _ int, h http.Header) {
	if l.headers && x.Marks&l.mark == 0 {
		l.setHeaders(h)
	}
}

func (l *Limiter) setHeaders(h http.Header) {
	h["X-Ratelimit-Limit"] = l.limit
	h["X-Ratelimit-Remaining"] = count(l.bucket.Remaining())
	h["X-Ratelimit-Reset"] = count(uint32(math.Ceil(l.bucket.Reset().Seconds())))
}

// hasOwn reports whether a route's chain holds a limiter of its own.
func hasOwn(c filter.Chain) bool {
	for _, f := range c {
		if _, ok := f.(*Limiter); ok {
			return true
		}
	}
	return false
}

// counts holds the header values of small numbers, so most responses
// allocate nothing for them.
var counts = func() (c [1024][]string) {
	for i := range c {
		c[i] = []string{strconv.Itoa(i)}
	}
	return c
}()

func count(n uint32) []string {
	if int(n) < len(counts) {
		return counts[n]
	}
	return []string{strconv.FormatUint(uint64(n), 10)}
}
