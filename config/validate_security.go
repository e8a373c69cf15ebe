package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"

	maistrav1 "github.com/weft-mesh/weft/config/apis/maistra/v1"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
)

// This file validates PeerAuthentication, RequestAuthentication,
// ServiceMeshMemberRoll and RateLimit, and the pieces the security kinds
// share; AuthorizationPolicy is in validate_authz.go.

// matchLabels checks a workload selector's labels as Kubernetes label
// selectors take them; Istio also rejects wildcards, which a user might
// expect to work here.
func (v *validator) matchLabels(p path, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		kp := p.key(k)
		switch {
		case k == "":
			v.errorf(p, "label names must not be empty")
		case strings.Contains(k, "*") || strings.Contains(labels[k], "*"):
			v.errorf(kp, "wildcards are not supported in selectors")
		default:
			if msg := checkLabelKey(k); msg != "" {
				v.errorf(kp, "%s", msg)
			} else if msg := checkLabelValue(labels[k]); msg != "" {
				v.errorf(kp, "%s", msg)
			}
		}
	}
}

// istioSelector checks the selector and rejects targetRef(s): weft has no
// Gateway API objects for them to point at, and ignoring them would apply
// the policy to the whole namespace instead.
func (v *validator) istioSelector(spec path, sel *typev1beta1.WorkloadSelector, ref *typev1beta1.PolicyTargetReference, refs []*typev1beta1.PolicyTargetReference) {
	v.matchLabels(spec.field("selector").field("matchLabels"), sel.GetMatchLabels())
	if ref != nil {
		v.errorf(spec.field("targetRef"), "not supported: weft has no Gateway API objects to attach a policy to; use selector")
	}
	if len(refs) > 0 {
		v.errorf(spec.field("targetRefs"), "not supported: weft has no Gateway API objects to attach a policy to; use selector")
	}
}

// checkLabelKey checks a label name: an optional DNS subdomain prefix and
// "/", then a name of at most 63 letters, digits, '-', '_' and '.'.
func checkLabelKey(k string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		prefix, name = "", k
	}
	if hasPrefix && !isDNS1123Subdomain(prefix) {
		return fmt.Sprintf("invalid label name %q: the prefix before '/' must be a DNS subdomain such as example.com", k)
	}
	if name == "" || !isLabelValue(name) {
		return fmt.Sprintf("invalid label name %q: use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit", k)
	}
	return ""
}

func checkLabelValue(val string) string {
	if val != "" && !isLabelValue(val) {
		return fmt.Sprintf("invalid label value %q: use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit", val)
	}
	return ""
}

func isLabelValue(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' && c != '_' && c != '.' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// isHeaderName reports whether s is an HTTP header name (an RFC 9110 token).
func isHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func (v *validator) peerAuthentication(pa *security.PeerAuthentication) {
	spec := path("spec")
	labels := pa.GetSelector().GetMatchLabels()
	v.matchLabels(spec.field("selector").field("matchLabels"), labels)
	ports := pa.GetPortLevelMtls()
	if len(ports) > 0 && len(labels) == 0 {
		v.errorf(spec.field("portLevelMtls"), "requires a selector: only a workload's PeerAuthentication may set port-level modes, a mesh- or namespace-wide one cannot")
	}
	for _, port := range slices.Sorted(maps.Keys(ports)) {
		if port < 1 || port > 65535 {
			v.errorf(spec.field("portLevelMtls").key(strconv.FormatUint(uint64(port), 10)), "port number must be between 1 and 65535, got %d", port)
		}
	}
}

func (v *validator) requestAuthentication(ra *security.RequestAuthentication) {
	spec := path("spec")
	v.istioSelector(spec, ra.GetSelector(), ra.GetTargetRef(), ra.GetTargetRefs())
	for i, r := range ra.GetJwtRules() {
		v.jwtRule(spec.field("jwtRules").index(i), r)
	}
}

func (v *validator) jwtRule(p path, r *security.JWTRule) {
	if strings.TrimSpace(r.GetIssuer()) == "" {
		v.errorf(p.field("issuer"), "required")
	}
	for i, a := range r.GetAudiences() {
		if strings.TrimSpace(a) == "" {
			v.errorf(p.field("audiences").index(i), "must not be empty")
		}
	}
	switch uri, doc := r.GetJwksUri(), r.GetJwks(); {
	case uri != "" && doc != "":
		v.errorf(p.field("jwks"), "cannot be set together with jwksUri; give the keys inline or where to fetch them, not both")
	case uri == "" && doc == "":
		v.errorf(p, "one of jwksUri or jwks is required (weft does not discover keys from the issuer)")
	case uri != "":
		if msg := checkJWKSURI(uri); msg != "" {
			v.errorf(p.field("jwksUri"), "%s", msg)
		}
	default:
		if msg := CheckJWKS([]byte(doc)); msg != "" {
			v.errorf(p.field("jwks"), "%s", msg)
		}
	}
	for i, h := range r.GetFromHeaders() {
		if !isHeaderName(h.GetName()) {
			v.errorf(p.field("fromHeaders").index(i).field("name"), "%s", headerNameMsg(h.GetName()))
		}
	}
	for i, q := range r.GetFromParams() {
		if q == "" {
			v.errorf(p.field("fromParams").index(i), "must not be empty")
		}
	}
	for i, c := range r.GetOutputClaimToHeaders() {
		cp := p.field("outputClaimToHeaders").index(i)
		if !isHeaderName(c.GetHeader()) {
			v.errorf(cp.field("header"), "%s", headerNameMsg(c.GetHeader()))
		}
		if strings.TrimSpace(c.GetClaim()) == "" {
			v.errorf(cp.field("claim"), "required")
		}
	}
	// fromCookies: cookie names are RFC 6265 tokens, as header names are.
	for i, c := range r.GetFromCookies() {
		if !isHeaderName(c) {
			v.errorf(p.field("fromCookies").index(i), "%s", cookieNameMsg(c))
		}
	}
	if h := r.GetOutputPayloadToHeader(); h != "" && !isHeaderName(h) {
		v.errorf(p.field("outputPayloadToHeader"), "%s", headerNameMsg(h))
	}
	// Fields weft's JWT filter does not implement: accepting them would
	// silently behave differently from Istio.
	if len(r.GetSpaceDelimitedClaims()) > 0 {
		v.errorf(p.field("spaceDelimitedClaims"), "not supported by weft")
	}
	if r.GetTimeout() != nil {
		v.errorf(p.field("timeout"), "not supported by weft: the control plane fetches JWKS with a fixed 5s timeout")
	}
}

func headerNameMsg(name string) string {
	if name == "" {
		return "required"
	}
	return fmt.Sprintf("invalid header name %q: use letters, digits and !#$%%&'*+-.^_`|~", name)
}

func cookieNameMsg(name string) string {
	if name == "" {
		return "must not be empty"
	}
	return fmt.Sprintf("invalid cookie name %q: use letters, digits and !#$%%&'*+-.^_`|~", name)
}

// checkJWKSURI checks a jwksUri is an absolute http(s) URL with a host.
func checkJWKSURI(uri string) string {
	u, err := url.Parse(uri)
	switch {
	case err != nil:
		return fmt.Sprintf("invalid URL %q: %v", uri, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("invalid URL %q: must start with http:// or https://", uri)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("invalid URL %q: no host", uri)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("invalid URL %q: port must be between 1 and 65535", uri)
		}
	}
	return ""
}

// CheckJWKS checks doc is a JSON Web Key Set: a JSON object whose "keys" is
// a list of objects, each with a string "kty". It returns what is wrong, or
// "" when doc is usable. Package jwks uses it on fetched documents too.
func CheckJWKS(doc []byte) string {
	var set struct {
		Keys *[]map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return fmt.Sprintf("not a JSON Web Key Set: %v", err)
	}
	if set.Keys == nil {
		return `not a JSON Web Key Set: no "keys" list`
	}
	for i, k := range *set.Keys {
		if kty, ok := k["kty"].(string); !ok || kty == "" {
			return fmt.Sprintf(`not a JSON Web Key Set: keys[%d] has no "kty"`, i)
		}
	}
	return ""
}

func (v *validator) memberRoll(smmr *maistrav1.ServiceMeshMemberRoll) {
	p := path("spec").field("members")
	first := map[string]int{}
	for i, m := range smmr.GetMembers() {
		mp := p.index(i)
		if m != "*" && !isDNS1123Label(m) {
			v.errorf(mp, "%q is not a valid namespace: use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (or * for every namespace)", m)
			continue
		}
		if j, dup := first[m]; dup {
			v.errorf(mp, "namespace %q is already listed (members[%d])", m, j)
			continue
		}
		first[m] = i
	}
}

func (v *validator) rateLimit(rl *weftv1alpha1.RateLimit) {
	spec := path("spec")
	v.matchLabels(spec.field("selector").field("matchLabels"), rl.GetSelector().GetMatchLabels())
	lp := spec.field("limit")
	switch l := rl.GetLimit(); {
	case l == nil:
		v.errorf(lp, "required, e.g. {requests: 100, per: 1s}")
	default:
		if l.GetRequests() == 0 {
			v.errorf(lp.field("requests"), "must be greater than 0")
		}
		if l.GetPer() == nil {
			v.errorf(lp.field("per"), "required, e.g. 1s")
		} else {
			v.duration(lp.field("per"), l.GetPer())
		}
		// The bucket holds at most burst tokens, so a smaller burst than
		// requests would quietly cap the rate at burst per interval.
		if b := l.GetBurst(); b != 0 && b < l.GetRequests() {
			v.errorf(lp.field("burst"), "must be 0 (same as requests) or at least requests (%d), got %d; for a smoother limit use fewer requests per shorter interval", l.GetRequests(), b)
		}
	}
	first := map[string]int{}
	for i, r := range rl.GetRoutes() {
		rp := spec.field("routes").index(i)
		if strings.TrimSpace(r) == "" {
			v.errorf(rp, "route name must not be empty")
			continue
		}
		if j, dup := first[r]; dup {
			v.errorf(rp, "route %q is already listed (routes[%d])", r, j)
			continue
		}
		first[r] = i
	}
}
