package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	maistrav1 "github.com/weft-mesh/weft/config/apis/maistra/v1"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
)

// Validate makes the semantic checks Istio's validation makes on one object
// (required fields, ranges, durations, regular expressions, host forms) and
// returns every problem, each with a field path in YAML spelling. Checks
// that need other objects (does the subset exist? the gateway?) belong to
// package analyze, since they can change without this object changing.
func Validate(o *Object) ErrorList {
	v := &validator{o: o}
	if o.Meta.Name == "" {
		v.errorf("metadata.name", "required")
	}
	if info, ok := LookupKind(string(o.Kind)); ok && o.Spec != nil &&
		info.New().ProtoReflect().Descriptor().FullName() != o.Spec.ProtoReflect().Descriptor().FullName() {
		v.errorf("spec", "a %s cannot hold a spec of type %T", o.Kind, o.Spec)
		return v.errs
	}
	switch spec := o.Spec.(type) {
	case *networking.VirtualService:
		v.virtualService(spec)
	case *networking.DestinationRule:
		v.destinationRule(spec)
	case *networking.Gateway:
		v.gateway(spec)
	case *networking.ServiceEntry:
		v.serviceEntry(spec)
	case *networking.WorkloadEntry:
		v.workloadEntry("spec", spec, nil)
	case *networking.Sidecar:
		v.sidecar(spec)
	case *security.PeerAuthentication:
		v.peerAuthentication(spec)
	case *security.AuthorizationPolicy:
		v.authorizationPolicy(spec)
	case *security.RequestAuthentication:
		v.requestAuthentication(spec)
	case *maistrav1.ServiceMeshMemberRoll:
		v.memberRoll(spec)
	case *weftv1alpha1.RateLimit:
		v.rateLimit(spec)
	case *flaggerv1beta1.Canary:
		v.canary(spec)
	case *flaggerv1beta1.MetricTemplate:
		v.metricTemplate(spec)
	default:
		v.errorf("spec", "a %s cannot hold a spec of type %T", o.Kind, o.Spec)
	}
	return v.errs
}

// validator collects the problems of one object.
type validator struct {
	o    *Object
	errs ErrorList
}

func (v *validator) errorf(p path, format string, args ...any) {
	v.errs = append(v.errs, &Error{
		Kind: v.o.Kind, Namespace: v.o.Meta.Namespace, Name: v.o.Meta.Name,
		Field: string(p), Msg: fmt.Sprintf(format, args...),
	})
}

// duration checks d (if set) is valid and at least 1ms, as Istio requires of
// every timeout and interval: Envoy treats 0 as "no timeout" or rejects it,
// neither of which is what a user writing one meant.
func (v *validator) duration(p path, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		v.errorf(p, "invalid duration: %v", err)
		return
	}
	if got := d.AsDuration(); got < time.Millisecond {
		v.errorf(p, "duration must be at least 1ms, got %s", got)
	}
}

func (v *validator) percentage(p path, pct *networking.Percent) {
	if pct != nil {
		v.percent(p.field("value"), pct.GetValue())
	}
}

func (v *validator) percent(p path, x float64) {
	if x < 0 || x > 100 {
		v.errorf(p, "must be between 0 and 100, got %v", x)
	}
}

func (v *validator) port(p path, n uint32) {
	if n < 1 || n > 65535 {
		v.errorf(p, "port number must be between 1 and 65535, got %d", n)
	}
}

// optionalPort checks a port number where 0 means "not set".
func (v *validator) optionalPort(p path, n uint32) {
	if n != 0 {
		v.port(p, n)
	}
}

// regex checks re compiles with Go's RE2, the dialect Envoy's safe_regex
// (and the weft proxy) uses; Istio rejects the same patterns.
func (v *validator) regex(p path, re string) {
	if _, err := regexp.Compile(re); err != nil {
		v.errorf(p, "invalid regular expression %q: %s", re, regexpReason(err))
	}
}

// regexpReason strips the "error parsing regexp: " prefix Go puts on every error.
func regexpReason(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

func (v *validator) stringMatch(p path, m *networking.StringMatch) {
	if m == nil {
		return
	}
	switch t := m.GetMatchType().(type) {
	case *networking.StringMatch_Regex:
		v.regex(p.field("regex"), t.Regex)
	case nil:
		v.errorf(p, "one of exact, prefix or regex is required")
	}
}

func (v *validator) stringMatches(p path, m map[string]*networking.StringMatch) {
	for _, k := range sortedKeys(m) {
		if k == "" {
			v.errorf(p, "names must not be empty")
			continue
		}
		// An empty match in a map (headers, withoutHeaders, queryParams)
		// is Istio's presence check.
		if m[k].GetMatchType() != nil {
			v.stringMatch(p.key(k), m[k])
		}
	}
}

// host checks a host name as Istio's hosts fields take it: a DNS name, an
// IP address, optionally with a leading "*" wildcard label, or "*" alone.
func (v *validator) host(p path, h string) {
	if msg := checkHost(h); msg != "" {
		v.errorf(p, "%s", msg)
	}
}

func checkHost(h string) string {
	switch {
	case h == "":
		return "host must not be empty"
	case h == "*":
		return ""
	case len(h) > 255:
		return fmt.Sprintf("host %q is longer than 255 characters", h)
	}
	rest := h
	if strings.HasPrefix(rest, "*.") {
		rest = rest[2:]
	}
	for _, label := range strings.Split(rest, ".") {
		if !isHostLabel(label) {
			return fmt.Sprintf("invalid host %q: use a DNS name such as reviews or *.example.com", h)
		}
	}
	return ""
}

// isHostLabel accepts DNS labels in either case: hosts are matched
// case-insensitively, and Istio accepts upper case here.
func isHostLabel(l string) bool {
	if l == "" || len(l) > 63 {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(l)-1) {
			return false
		}
	}
	return true
}

// gatewayRef checks a reference to a Gateway: "mesh", "name" or "ns/name".
func (v *validator) gatewayRef(p path, g string) {
	if g == "" {
		v.errorf(p, "gateway name must not be empty")
		return
	}
	ns, name, qualified := strings.Cut(g, "/")
	if !qualified {
		ns, name = "", g
	}
	if qualified && !isDNS1123Label(ns) || !isDNS1123Subdomain(name) {
		v.errorf(p, "invalid gateway reference %q: use mesh, NAME or NAMESPACE/NAME", g)
	}
}

func (v *validator) virtualService(vs *networking.VirtualService) {
	spec := path("spec")
	if len(vs.GetHosts()) == 0 {
		v.errorf(spec.field("hosts"), "at least one host is required (delegate VirtualServices are not supported)")
	}
	v.exportTo(spec.field("exportTo"), vs.GetExportTo())
	meshBound := len(vs.GetGateways()) == 0
	for i, g := range vs.GetGateways() {
		v.gatewayRef(spec.field("gateways").index(i), g)
		meshBound = meshBound || g == "mesh"
	}
	for i, h := range vs.GetHosts() {
		p := spec.field("hosts").index(i)
		v.host(p, h)
		if h == "*" && meshBound {
			v.errorf(p, "wildcard host * is not allowed for a VirtualService bound to the mesh gateway")
		}
	}
	if len(vs.GetHttp()) == 0 && len(vs.GetTcp()) == 0 && len(vs.GetTls()) == 0 {
		v.errorf(spec, "at least one of http, tcp or tls routes is required")
	}
	for i, r := range vs.GetHttp() {
		v.httpRoute(spec.field("http").index(i), r)
	}
	for i, r := range vs.GetTcp() {
		p := spec.field("tcp").index(i)
		for j, m := range r.GetMatch() {
			mp := p.field("match").index(j)
			v.optionalPort(mp.field("port"), m.GetPort())
			for k, g := range m.GetGateways() {
				v.gatewayRef(mp.field("gateways").index(k), g)
			}
		}
		v.routeDestinations(p.field("route"), r.GetRoute())
	}
	for i, r := range vs.GetTls() {
		p := spec.field("tls").index(i)
		if len(r.GetMatch()) == 0 {
			v.errorf(p.field("match"), "at least one match is required")
		}
		for j, m := range r.GetMatch() {
			mp := p.field("match").index(j)
			if len(m.GetSniHosts()) == 0 {
				v.errorf(mp.field("sniHosts"), "at least one SNI host is required")
			}
			for k, h := range m.GetSniHosts() {
				v.host(mp.field("sniHosts").index(k), h)
			}
			v.optionalPort(mp.field("port"), m.GetPort())
		}
		v.routeDestinations(p.field("route"), r.GetRoute())
	}
}

// routeDestinations checks the destinations of a TCP or TLS route.
func (v *validator) routeDestinations(p path, route []*networking.RouteDestination) {
	if len(route) == 0 {
		v.errorf(p, "at least one destination is required")
	}
	for i, d := range route {
		v.destination(p.index(i).field("destination"), d.GetDestination())
		v.weight(p.index(i).field("weight"), d.GetWeight())
	}
}

func (v *validator) weight(p path, w int32) {
	if w < 0 || w > 100 {
		v.errorf(p, "must be between 0 and 100, got %d", w)
	}
}

func (v *validator) destination(p path, d *networking.Destination) {
	if d == nil {
		v.errorf(p, "required")
		return
	}
	if d.GetHost() == "" {
		v.errorf(p.field("host"), "required")
	} else if strings.Contains(d.GetHost(), "*") {
		v.errorf(p.field("host"), "destination host %q must not contain a wildcard", d.GetHost())
	} else {
		v.host(p.field("host"), d.GetHost())
	}
	if d.GetSubset() != "" && !isDNS1123Label(d.GetSubset()) {
		v.errorf(p.field("subset"), "invalid subset name %q: use lower-case letters, digits and '-'", d.GetSubset())
	}
	if d.GetPort() != nil {
		v.port(p.field("port").field("number"), d.GetPort().GetNumber())
	}
}

func (v *validator) httpRoute(p path, r *networking.HTTPRoute) {
	hasRoute, hasRedirect, hasDirect, hasDelegate := len(r.GetRoute()) > 0, r.GetRedirect() != nil, r.GetDirectResponse() != nil, r.GetDelegate() != nil
	switch {
	case !hasRoute && !hasRedirect && !hasDirect && !hasDelegate:
		v.errorf(p, "one of route, redirect or directResponse is required")
	case hasRoute && hasRedirect:
		v.errorf(p.field("redirect"), "cannot be set together with route")
	case hasDirect && (hasRoute || hasRedirect):
		v.errorf(p.field("directResponse"), "cannot be set together with route or redirect")
	case hasDelegate && (hasRoute || hasRedirect || hasDirect):
		v.errorf(p.field("delegate"), "cannot be set together with route, redirect or directResponse")
	}
	for i, m := range r.GetMatch() {
		v.httpMatch(p.field("match").index(i), m)
	}
	for i, d := range r.GetRoute() {
		rp := p.field("route").index(i)
		v.destination(rp.field("destination"), d.GetDestination())
		v.weight(rp.field("weight"), d.GetWeight())
		v.headers(rp.field("headers"), d.GetHeaders())
	}
	v.headers(p.field("headers"), r.GetHeaders())
	if rd := r.GetRedirect(); rd != nil {
		rp := p.field("redirect")
		if c := rd.GetRedirectCode(); c != 0 && (c < 300 || c > 399) {
			v.errorf(rp.field("redirectCode"), "must be a 3xx status, got %d", c)
		}
		if port, ok := rd.GetRedirectPort().(*networking.HTTPRedirect_Port); ok {
			v.port(rp.field("port"), port.Port)
		}
	}
	if dr := r.GetDirectResponse(); dr != nil {
		if s := dr.GetStatus(); s < 200 || s > 599 {
			v.errorf(p.field("directResponse").field("status"), "must be between 200 and 599, got %d", s)
		}
	}
	if rw := r.GetRewrite(); rw != nil {
		if rx := rw.GetUriRegexRewrite(); rx != nil {
			if rw.GetUri() != "" {
				v.errorf(p.field("rewrite").field("uriRegexRewrite"), "cannot be set together with uri")
			}
			v.regex(p.field("rewrite").field("uriRegexRewrite").field("match"), rx.GetMatch())
		}
	}
	v.duration(p.field("timeout"), r.GetTimeout())
	if rt := r.GetRetries(); rt != nil {
		if rt.GetAttempts() < 0 {
			v.errorf(p.field("retries").field("attempts"), "must not be negative, got %d", rt.GetAttempts())
		}
		v.duration(p.field("retries").field("perTryTimeout"), rt.GetPerTryTimeout())
		v.duration(p.field("retries").field("backoff"), rt.GetBackoff())
	}
	v.fault(p.field("fault"), r.GetFault())
	if r.GetMirror() != nil {
		v.destination(p.field("mirror"), r.GetMirror())
	}
	for i, m := range r.GetMirrors() {
		mp := p.field("mirrors").index(i)
		v.destination(mp.field("destination"), m.GetDestination())
		v.percentage(mp.field("percentage"), m.GetPercentage())
	}
	if mp := r.GetMirrorPercent(); mp != nil && mp.GetValue() > 100 {
		v.errorf(p.field("mirrorPercent"), "must be between 0 and 100, got %d", mp.GetValue())
	}
	v.percentage(p.field("mirrorPercentage"), r.GetMirrorPercentage())
	if c := r.GetCorsPolicy(); c != nil {
		for i, o := range c.GetAllowOrigins() {
			v.stringMatch(p.field("corsPolicy").field("allowOrigins").index(i), o)
		}
		v.duration(p.field("corsPolicy").field("maxAge"), c.GetMaxAge())
	}
}

func (v *validator) httpMatch(p path, m *networking.HTTPMatchRequest) {
	v.stringMatch(p.field("uri"), m.GetUri())
	v.stringMatch(p.field("scheme"), m.GetScheme())
	v.stringMatch(p.field("method"), m.GetMethod())
	v.stringMatch(p.field("authority"), m.GetAuthority())
	v.stringMatches(p.field("headers"), m.GetHeaders())
	v.stringMatches(p.field("withoutHeaders"), m.GetWithoutHeaders())
	v.stringMatches(p.field("queryParams"), m.GetQueryParams())
	v.optionalPort(p.field("port"), m.GetPort())
	for i, g := range m.GetGateways() {
		v.gatewayRef(p.field("gateways").index(i), g)
	}
}

func (v *validator) fault(p path, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.GetDelay() == nil && f.GetAbort() == nil {
		v.errorf(p, "at least one of delay or abort is required")
	}
	if d := f.GetDelay(); d != nil {
		dp := p.field("delay")
		switch t := d.GetHttpDelayType().(type) {
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			if t.FixedDelay == nil {
				v.errorf(dp.field("fixedDelay"), "required")
			}
			v.duration(dp.field("fixedDelay"), t.FixedDelay)
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			v.duration(dp.field("exponentialDelay"), t.ExponentialDelay)
		default:
			v.errorf(dp.field("fixedDelay"), "required")
		}
		if d.GetPercent() < 0 || d.GetPercent() > 100 {
			v.errorf(dp.field("percent"), "must be between 0 and 100, got %d", d.GetPercent())
		}
		v.percentage(dp.field("percentage"), d.GetPercentage())
	}
	if a := f.GetAbort(); a != nil {
		ap := p.field("abort")
		switch t := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			if t.HttpStatus < 200 || t.HttpStatus > 599 {
				v.errorf(ap.field("httpStatus"), "must be between 200 and 599, got %d", t.HttpStatus)
			}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if _, ok := GRPCStatusCode(t.GrpcStatus); !ok {
				v.errorf(ap.field("grpcStatus"), "unknown gRPC status %q; use a name such as UNAVAILABLE or INTERNAL", t.GrpcStatus)
			}
		case nil:
			v.errorf(ap.field("httpStatus"), "required")
		}
		v.percentage(ap.field("percentage"), a.GetPercentage())
	}
}

// headers checks header operations: every name set, added or removed must
// be non-empty, since Envoy rejects an empty header key.
func (v *validator) headers(p path, h *networking.Headers) {
	for _, op := range []struct {
		name string
		ops  *networking.Headers_HeaderOperations
	}{{"request", h.GetRequest()}, {"response", h.GetResponse()}} {
		sp := p.field(op.name)
		for _, k := range sortedKeys(op.ops.GetSet()) {
			if strings.TrimSpace(k) == "" {
				v.errorf(sp.field("set"), "header names must not be empty")
			}
		}
		for _, k := range sortedKeys(op.ops.GetAdd()) {
			if strings.TrimSpace(k) == "" {
				v.errorf(sp.field("add"), "header names must not be empty")
			}
		}
		for i, k := range op.ops.GetRemove() {
			if strings.TrimSpace(k) == "" {
				v.errorf(sp.field("remove").index(i), "header name must not be empty")
			}
		}
	}
}

// grpcCodes are the gRPC status names Istio accepts, e.g. in abort.grpcStatus.
var grpcCodes = map[string]uint32{
	"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
	"NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
	"FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
	"INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

// GRPCStatusCode returns the numeric code of a gRPC status name such as
// "UNAVAILABLE".
func GRPCStatusCode(name string) (uint32, bool) {
	c, ok := grpcCodes[name]
	return c, ok
}
