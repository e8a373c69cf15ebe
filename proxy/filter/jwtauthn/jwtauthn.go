// Package jwtauthn implements Envoy's JWT authentication HTTP filter
// (envoy.filters.http.jwt_authn) at the HTTP connection manager, from a
// JwtAuthentication with inline JWKS (what Istio's RequestAuthentication
// becomes). Tokens are verified with Go's crypto; a verified token's claims
// become request headers and dynamic metadata, including Istio's
// istio_authn for the RBAC filter's requestPrincipals. See README.md.
package jwtauthn

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/weft-mesh/weft/proxy/filter"
)

// Dynamic metadata the filter writes on success.
const (
	// AuthnNamespace is Istio's namespace for the authenticated request.
	AuthnNamespace = "istio_authn"
	// Keys in AuthnNamespace.
	KeyPrincipal = "request.auth.principal" // "ISS/SUB"
	KeyAudiences = "request.auth.audiences" // list of strings
	KeyPresenter = "request.auth.presenter" // azp
	KeyClaims    = "request.auth.claims"    // the payload
)

// Filter is the compiled JwtAuthentication. It is immutable.
type Filter struct {
	providers    map[string]*provider
	order        []*provider // by name
	rules        []rule
	ownedHeaders []string // claim_to_headers and forward_payload_header headers: only the filter sets them
	bypassCORS   bool
	now          func() time.Time
}

type provider struct {
	name         string
	issuer       string
	audiences    []string // normalized
	keys         *KeySet
	forward      bool
	headers      []headerLoc
	params       []string
	cookies      []string
	claimHeaders []claimHeader
	payloadKey   string
	skew         time.Duration
	// forward_payload_header (canonical) and its padding
	payloadHeader string
	padPayload    bool
	// normalize_payload_in_metadata.space_delimited_claims, split on "."
	spaceDelimited [][]string
	// authnSplit is istioSpaceDelimited then spaceDelimited: the claims
	// split in istio_authn's request.auth.claims.
	authnSplit [][]string
}

// nlocs is the number of token locations of p: headers, params, cookies.
func (p *provider) nlocs() int { return len(p.headers) + len(p.params) + len(p.cookies) }

type headerLoc struct {
	key    string // canonical
	prefix string
}

type claimHeader struct {
	header string   // canonical
	claim  []string // dotted claim name, split
}

type rule struct {
	prefix, path string
	exact        bool
	re           *regexp.Regexp
	req          *requirement // nil: no requirement
}

type reqKind uint8

const (
	reqProvider reqKind = iota
	reqAny
	reqAll
	reqAllowMissing
	reqAllowMissingOrFailed
)

type requirement struct {
	kind      reqKind
	p         *provider
	audiences []string // provider_and_audiences: replaces the provider's
	kids      []requirement
}

// SetClock replaces the filter's clock (tests).
func (f *Filter) SetClock(now func() time.Time) { f.now = now }

// Request verifies the request's token per the first rule whose match
// holds. Failed: 401 with Envoy's message as body and a www-authenticate
// challenge. Passed: see README.md for what changes on the request.
func (f *Filter) Request(x *filter.Exchange) bool {
	r := x.R
	for _, h := range f.ownedHeaders {
		delete(r.Header, h) // a client must not pose as a verified claim
	}
	if f.bypassCORS && r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != "" {
		return true
	}
	req := f.requirementFor(x.Path())
	if req == nil {
		return true
	}
	v := verification{f: f, r: r, now: f.now()}
	st := v.eval(req)
	if st != OK {
		challenge := `Bearer realm="` + realm(r) + `"`
		if st != Missing {
			challenge += `, error="invalid_token"`
		}
		x.W.Header()["Www-Authenticate"] = []string{challenge}
		x.LocalReply(http.StatusUnauthorized, st.String())
		return false
	}
	for _, w := range v.wins {
		f.accept(x, w)
	}
	return true
}

func (f *Filter) requirementFor(path string) *requirement {
	for i := range f.rules {
		rl := &f.rules[i]
		var ok bool
		switch {
		case rl.re != nil:
			ok = rl.re.MatchString(path)
		case rl.exact:
			ok = path == rl.path
		default:
			ok = strings.HasPrefix(path, rl.prefix)
		}
		if ok {
			return rl.req
		}
	}
	return nil
}

// realm is the request's URL without query, Envoy's realm in challenges.
func realm(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if r.URL.Host != "" {
		host = r.URL.Host
	}
	return scheme + "://" + host + r.URL.EscapedPath()
}

// win is a token a provider verified.
type win struct {
	p     *provider
	t     *Token
	loc   int // index into p.headers, or len(p.headers)+index into p.params
	value string
}

// verification is one request's evaluation of a requirement.
type verification struct {
	f    *Filter
	r    *http.Request
	now  time.Time
	wins []win
	// last parsed token, as several providers may read one location
	parsed  bool
	lastRaw string
	lastTok *Token
	lastSt  Status
}

func (v *verification) eval(req *requirement) Status {
	switch req.kind {
	case reqProvider:
		return v.provider(req.p, req.audiences)
	case reqAll:
		for i := range req.kids {
			if st := v.eval(&req.kids[i]); st != OK {
				return st
			}
		}
		return OK
	case reqAllowMissing, reqAllowMissingOrFailed:
		// Alone, as in Envoy: any provider may verify the token.
		return v.any(nil, req.kind == reqAllowMissing, req.kind == reqAllowMissingOrFailed)
	}
	missingOK, failedOK := false, false
	for i := range req.kids {
		switch req.kids[i].kind {
		case reqAllowMissing:
			missingOK = true
		case reqAllowMissingOrFailed:
			failedOK = true
		}
	}
	return v.any(req.kids, missingOK, failedOK)
}

// any passes when one of kids passes (nil kids: one of all providers). A
// missing token passes with missingOK; anything passes with failedOK. All
// failing, the most telling status wins: a real verification error over an
// unknown issuer over a missing token.
func (v *verification) any(kids []requirement, missingOK, failedOK bool) Status {
	best := Missing
	try := func(st Status) bool {
		if st == OK {
			return true
		}
		if rank(st) > rank(best) {
			best = st
		}
		return false
	}
	if kids == nil {
		for _, p := range v.f.order {
			if try(v.provider(p, nil)) {
				return OK
			}
		}
	}
	for i := range kids {
		if k := kids[i].kind; k == reqAllowMissing || k == reqAllowMissingOrFailed {
			continue
		}
		if try(v.eval(&kids[i])) {
			return OK
		}
	}
	if failedOK || (missingOK && best == Missing) {
		return OK
	}
	return best
}

func rank(s Status) int {
	switch s {
	case Missing:
		return 0
	case UnknownIssuer:
		return 1
	}
	return 2
}

// provider verifies the first token in p's locations whose issuer is p's.
func (v *verification) provider(p *provider, audiences []string) Status {
	sawOther := false
	for loc := 0; loc < p.nlocs(); loc++ {
		raw, ok := v.extract(p, loc)
		if !ok {
			continue
		}
		t, st := v.parse(raw)
		if st != OK {
			return st
		}
		if p.issuer != "" && t.Issuer() != p.issuer {
			sawOther = true // another provider's token, perhaps
			continue
		}
		if st := v.check(p, t, audiences); st != OK {
			return st
		}
		v.wins = append(v.wins, win{p: p, t: t, loc: loc, value: raw})
		return OK
	}
	if sawOther {
		return UnknownIssuer
	}
	return Missing
}

// check verifies t for p in Envoy's order: time, audiences, signature.
func (v *verification) check(p *provider, t *Token, audiences []string) Status {
	if st := t.CheckTime(v.now, p.skew); st != OK {
		return st
	}
	if audiences == nil {
		audiences = p.audiences
	}
	if len(audiences) > 0 && !audienceAllowed(t.Audiences(), audiences) {
		return AudienceNotAllowed
	}
	return t.Verify(p.keys)
}

func audienceAllowed(have, allowed []string) bool {
	for _, a := range have {
		a = normalizeAudience(a)
		for _, b := range allowed {
			if a == b {
				return true
			}
		}
	}
	return false
}

func (v *verification) parse(raw string) (*Token, Status) {
	if !v.parsed || raw != v.lastRaw {
		v.parsed, v.lastRaw = true, raw
		v.lastTok, v.lastSt = ParseToken(raw)
	}
	return v.lastTok, v.lastSt
}

// extract returns the token at p's location loc, if the request has one.
func (v *verification) extract(p *provider, loc int) (string, bool) {
	if loc < len(p.headers) {
		h := p.headers[loc]
		for _, val := range v.r.Header[h.key] {
			if len(val) < len(h.prefix) || !strings.EqualFold(val[:len(h.prefix)], h.prefix) {
				continue
			}
			if tok := strings.TrimSpace(val[len(h.prefix):]); tok != "" {
				return tok, true
			}
		}
		return "", false
	}
	if loc >= len(p.headers)+len(p.params) {
		c, err := v.r.Cookie(p.cookies[loc-len(p.headers)-len(p.params)])
		if err != nil || c.Value == "" {
			return "", false
		}
		return c.Value, true
	}
	name := p.params[loc-len(p.headers)]
	for q := range strings.SplitSeq(v.r.URL.RawQuery, "&") {
		k, val, _ := strings.Cut(q, "=")
		if k, err := url.QueryUnescape(k); err != nil || k != name {
			continue
		}
		if tok, err := url.QueryUnescape(val); err == nil && tok != "" {
			return tok, true
		}
	}
	return "", false
}

// accept applies a verified token to the request: the token leaves unless
// forwarded, claims go to headers and metadata.
func (f *Filter) accept(x *filter.Exchange, w win) {
	r, p := x.R, w.p
	if !p.forward {
		switch {
		case w.loc < len(p.headers):
			delete(r.Header, p.headers[w.loc].key)
		case w.loc < len(p.headers)+len(p.params):
			removeParam(r, p.params[w.loc-len(p.headers)])
		}
		// A cookie stays, as in Envoy: the Cookie header holds others too.
	}
	if p.payloadHeader != "" {
		v := w.t.payload
		if p.padPayload {
			v += strings.Repeat("=", (4-len(v)%4)%4)
		}
		r.Header[p.payloadHeader] = []string{v}
	}
	for _, ch := range p.claimHeaders {
		if s, ok := claimString(lookup(w.t.Claims, ch.claim)); ok {
			r.Header[ch.header] = []string{s}
		}
	}
	if p.payloadKey != "" {
		x.SetMetadata(Name, p.payloadKey, splitClaims(w.t.Claims, p.spaceDelimited))
	}
	sub, _ := w.t.Claims["sub"].(string)
	x.SetMetadata(AuthnNamespace, KeyPrincipal, w.t.Issuer()+"/"+sub)
	auds := w.t.Audiences()
	list := make([]any, len(auds))
	for i, a := range auds {
		list[i] = a
	}
	x.SetMetadata(AuthnNamespace, KeyAudiences, list)
	if azp, ok := w.t.Claims["azp"].(string); ok {
		x.SetMetadata(AuthnNamespace, KeyPresenter, azp)
	}
	x.SetMetadata(AuthnNamespace, KeyClaims, splitClaims(w.t.Claims, p.authnSplit))
}

// istioSpaceDelimited are the claims Istio always reads as space-delimited
// lists in authorization (request.auth.claims[scope] matches one scope).
var istioSpaceDelimited = [][]string{{"scope"}, {"permission"}}

// splitClaims returns claims with each string claim at one of paths
// replaced by the list of its space-separated words. claims itself is not
// modified (maps on the way are copied), so it can be shared.
func splitClaims(claims map[string]any, paths [][]string) map[string]any {
	out := claims
	for _, path := range paths {
		out = splitAt(out, path)
	}
	return out
}

func splitAt(m map[string]any, path []string) map[string]any {
	v, ok := m[path[0]]
	if !ok {
		return m
	}
	var nv any
	if len(path) == 1 {
		s, ok := v.(string)
		if !ok {
			return m
		}
		words := strings.Fields(s)
		list := make([]any, len(words))
		for i, w := range words {
			list[i] = w
		}
		nv = list
	} else {
		sub, ok := v.(map[string]any)
		if !ok {
			return m
		}
		nv = splitAt(sub, path[1:])
	}
	cp := make(map[string]any, len(m))
	for k, e := range m {
		cp[k] = e
	}
	cp[path[0]] = nv
	return cp
}

// lookup follows a dotted claim name into nested objects.
func lookup(claims map[string]any, path []string) any {
	var v any = claims
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// claimString formats a claim for a header: strings, numbers and booleans;
// a list of those is joined with commas. Objects are left out.
func claimString(v any) (string, bool) {
	switch c := v.(type) {
	case string:
		return c, validHeaderValue(c)
	case float64:
		return strconv.FormatFloat(c, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(c), true
	case []any:
		parts := make([]string, 0, len(c))
		for _, e := range c {
			s, ok := claimString(e)
			if !ok {
				return "", false
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), len(parts) > 0
	}
	return "", false
}

// validHeaderValue rejects control characters, which a claim could carry
// and a header must not.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// removeParam drops every occurrence of query parameter name from r's URL.
func removeParam(r *http.Request, name string) {
	var kept []string
	for q := range strings.SplitSeq(r.URL.RawQuery, "&") {
		k, _, _ := strings.Cut(q, "=")
		if k, err := url.QueryUnescape(k); err == nil && k == name {
			continue
		}
		kept = append(kept, q)
	}
	r.URL.RawQuery = strings.Join(kept, "&")
}
