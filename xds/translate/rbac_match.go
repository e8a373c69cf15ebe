package translate

// The matchers of the AuthorizationPolicy mapping table: how one value of
// one Istio field becomes an Envoy RBAC permission or principal.

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func andPermissions(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 0 {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func orPermissions(ps []*rbacv3.Permission, not bool) *rbacv3.Permission {
	p := &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
	if not {
		p = &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
	}
	return p
}

func andPrincipals(ps []*rbacv3.Principal) *rbacv3.Principal {
	if len(ps) == 0 {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func orPrincipals(ps []*rbacv3.Principal, not bool) *rbacv3.Principal {
	p := &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
	if not {
		p = &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: p}}
	}
	return p
}

// presentRegex matches any non-empty value: Istio's "*".
const presentRegex = ".+"

func regexMatcher(re string) *matcher.StringMatcher {
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: re}}}
}

// stringMatcherWithPrefix applies Istio's value syntax: "*" any non-empty
// value, "x*" prefix, "*x" suffix, else exact; prefix is prepended to
// exact and prefix matches (a suffix match does not see it).
func stringMatcherWithPrefix(prefix, v string) *matcher.StringMatcher {
	switch {
	case v == "*":
		return regexMatcher(presentRegex)
	case strings.HasPrefix(v, "*"):
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Suffix{Suffix: v[1:]}}
	case strings.HasSuffix(v, "*"):
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: prefix + v[:len(v)-1]}}
	}
	return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: prefix + v}}
}

func authzString(v string) *matcher.StringMatcher { return stringMatcherWithPrefix("", v) }

// authzHeader matches header name against v with Istio's value syntax;
// "*" only asks for the header to be present.
func authzHeader(name, v string, ignoreCase bool) *route.HeaderMatcher {
	if v == "*" {
		return &route.HeaderMatcher{Name: name, HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}
	}
	sm := authzString(v)
	sm.IgnoreCase = ignoreCase
	return &route.HeaderMatcher{Name: name, HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func hostPermission(v string) (*rbacv3.Permission, error) {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: authzHeader(":authority", v, true)}}, nil
}

func methodPermission(v string) (*rbacv3.Permission, error) {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: authzHeader(":method", v, false)}}, nil
}

// portPermission matches the port the proxy received the request on;
// see generator.listenPorts.
func (b ruleBuilder) portPermission(v string) (*rbacv3.Permission, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("%q is not a port number", v)
	}
	port := uint32(n)
	if listen, ok := b.ports[port]; ok {
		port = listen
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: port}}, nil
}

// pathPermission matches the request path without its query. Istio's path
// templates ("/a/{*}/b", "/a/{**}") become regular expressions with the
// semantics of Envoy's URI template matcher; see pathTemplateRegex.
func pathPermission(v string) (*rbacv3.Permission, error) {
	sm := authzString(v)
	if strings.Contains(v, "{*}") || strings.Contains(v, "{**}") {
		re, err := pathTemplateRegex(v)
		if err != nil {
			return nil, err
		}
		sm = regexMatcher(re)
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcher.PathMatcher{
		Rule: &matcher.PathMatcher_Path{Path: sm},
	}}}, nil
}

// Envoy's URI template matcher (envoy.path.match.uri_template), which
// Istio hands its path templates to: {*} is one or more of a path
// segment's characters, {**} zero or more of them or '/'.
const (
	pathTemplateChars = `a-zA-Z0-9\-._~%!$&'()+,;:@=`
	pathGlobRegex     = `[` + pathTemplateChars + `]+`
	pathTextGlobRegex = `[` + pathTemplateChars + `/]*`
)

// pathTemplateRegex turns an Istio path template into a regular
// expression as Envoy's URI template matcher reads it. Operators must be
// whole segments, {**} must be the last operator (literal segments may
// follow it, as in Istio's "/foo/{**}/"), and no other '*', '{' or '}' may
// appear.
func pathTemplateRegex(v string) (string, error) {
	segs := strings.Split(v, "/")
	var b strings.Builder
	textGlob := false
	for i, s := range segs {
		if i > 0 {
			b.WriteString("/")
		}
		switch {
		case (s == "{*}" || s == "{**}") && textGlob:
			return "", fmt.Errorf("path %q: {**} must be the last operator", v)
		case s == "{*}":
			b.WriteString(pathGlobRegex)
		case s == "{**}":
			textGlob = true
			b.WriteString(pathTextGlobRegex)
		case strings.ContainsAny(s, "{}"):
			return "", fmt.Errorf("path %q: a template operator must be a whole segment, {*} or {**}", v)
		case strings.Contains(s, "*"):
			return "", fmt.Errorf("path %q: '*' is not allowed outside {*} or {**} in a path template", v)
		default:
			b.WriteString(regexp.QuoteMeta(s))
		}
	}
	return b.String(), nil
}

func authenticated(sm *matcher.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: sm}}}
}

// principalID matches the peer certificate's SPIFFE ID; policies write it
// without the spiffe:// scheme.
func principalID(v string) (*rbacv3.Principal, error) {
	return authenticated(stringMatcherWithPrefix("spiffe://", v)), nil
}

// namespaceID matches peers whose SPIFFE ID names namespace v.
func namespaceID(v string) (*rbacv3.Principal, error) {
	var re string
	switch {
	case v == "*":
		re = presentRegex
	case strings.HasPrefix(v, "*"):
		re = `.*/ns/[^/]*` + regexp.QuoteMeta(v[1:]) + `/.*`
	case strings.HasSuffix(v, "*"):
		re = `.*/ns/` + regexp.QuoteMeta(v[:len(v)-1]) + `[^/]*/.*`
	default:
		re = `.*/ns/` + regexp.QuoteMeta(v) + `/.*`
	}
	return authenticated(regexMatcher(re)), nil
}

// serviceAccountID matches peers running as NS/SA, or SA in the policy's
// namespace, in any trust domain.
func (b ruleBuilder) serviceAccountID(v string) (*rbacv3.Principal, error) {
	ns, sa, ok := strings.Cut(v, "/")
	if !ok {
		ns, sa = b.ns, v
	}
	if ns == "" || sa == "" || strings.Contains(sa, "/") || strings.Contains(v, "*") {
		return nil, fmt.Errorf("%q: want NAMESPACE/SERVICE_ACCOUNT or SERVICE_ACCOUNT, without wildcards", v)
	}
	return authenticated(regexMatcher(`spiffe://[^/]+/ns/` + regexp.QuoteMeta(ns) + `/sa/` + regexp.QuoteMeta(sa))), nil
}

// trustDomainID matches peers whose SPIFFE ID is in trust domain v.
func trustDomainID(v string) (*rbacv3.Principal, error) {
	switch {
	case v == "*":
		return authenticated(regexMatcher(presentRegex)), nil
	case strings.HasPrefix(v, "*"):
		return authenticated(regexMatcher(`spiffe://[^/]*` + regexp.QuoteMeta(v[1:]) + `/.*`)), nil
	case strings.HasSuffix(v, "*"):
		return authenticated(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "spiffe://" + v[:len(v)-1]}}), nil
	}
	return authenticated(&matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Prefix{Prefix: "spiffe://" + v + "/"}}), nil
}

func directIPID(v string) (*rbacv3.Principal, error) {
	r, err := cidr(v)
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: r}}, err
}

func remoteIPID(v string) (*rbacv3.Principal, error) {
	r, err := cidr(v)
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: r}}, err
}

// cidr parses an address block; a bare address is a block of one.
func cidr(v string) (*core.CidrRange, error) {
	if ip := net.ParseIP(v); ip != nil {
		bits := 128
		if ip.To4() != nil {
			bits = 32
		}
		return &core.CidrRange{AddressPrefix: v, PrefixLen: wrapperspb.UInt32(uint32(bits))}, nil
	}
	ip, n, err := net.ParseCIDR(v)
	if err != nil {
		return nil, fmt.Errorf("%q is neither an IP address nor a CIDR block", v)
	}
	ones, _ := n.Mask.Size()
	return &core.CidrRange{AddressPrefix: ip.String(), PrefixLen: wrapperspb.UInt32(uint32(ones))}, nil
}

// requestPrincipalID matches the JWT identity (ISS/SUB) jwt_authn wrote.
func requestPrincipalID(v string) (*rbacv3.Principal, error) {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcher.MetadataMatcher{
		Filter: AuthnFilter,
		Path:   []*matcher.MetadataMatcher_PathSegment{pathSegment("request.auth.principal")},
		Value:  &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_StringMatch{StringMatch: authzString(v)}},
	}}}, nil
}

// authnListID matches a JWT attribute that may be a list (audiences,
// claims) at path: one of its elements must match the value.
func authnListID(path ...string) func(string) (*rbacv3.Principal, error) {
	return func(v string) (*rbacv3.Principal, error) {
		var segs []*matcher.MetadataMatcher_PathSegment
		for _, p := range path {
			segs = append(segs, pathSegment(p))
		}
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcher.MetadataMatcher{
			Filter: AuthnFilter,
			Path:   segs,
			Value: &matcher.ValueMatcher{MatchPattern: &matcher.ValueMatcher_ListMatch{ListMatch: &matcher.ListMatcher{
				MatchPattern: &matcher.ListMatcher_OneOf{OneOf: &matcher.ValueMatcher{
					MatchPattern: &matcher.ValueMatcher_StringMatch{StringMatch: authzString(v)},
				}},
			}}},
		}}}, nil
	}
}

func pathSegment(key string) *matcher.MetadataMatcher_PathSegment {
	return &matcher.MetadataMatcher_PathSegment{Segment: &matcher.MetadataMatcher_PathSegment_Key{Key: key}}
}
