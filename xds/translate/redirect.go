package translate

import (
	"unicode/utf8"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	networking "istio.io/api/networking/v1alpha3"
)

// redirectCodes are the redirect statuses Envoy can send.
var redirectCodes = map[uint32]route.RedirectAction_RedirectResponseCode{
	0:   route.RedirectAction_MOVED_PERMANENTLY, // Istio's default
	301: route.RedirectAction_MOVED_PERMANENTLY,
	302: route.RedirectAction_FOUND,
	303: route.RedirectAction_SEE_OTHER,
	307: route.RedirectAction_TEMPORARY_REDIRECT,
	308: route.RedirectAction_PERMANENT_REDIRECT,
}

// redirectAction translates a redirect, or returns nil for a 3xx status
// Envoy cannot send (300, 304...), where Istio also emits no redirect.
// derivePort FROM_REQUEST_PORT becomes the port the request arrived on,
// which is fixed per listener.
func redirectAction(in *networking.HTTPRedirect, listenPort uint32) *route.RedirectAction {
	code, ok := redirectCodes[in.GetRedirectCode()]
	if !ok {
		return nil
	}
	out := &route.RedirectAction{HostRedirect: in.GetAuthority(), ResponseCode: code}
	if in.GetUri() != "" {
		out.PathRewriteSpecifier = &route.RedirectAction_PathRedirect{PathRedirect: in.GetUri()}
	}
	if in.GetScheme() != "" {
		out.SchemeRewriteSpecifier = &route.RedirectAction_SchemeRedirect{SchemeRedirect: in.GetScheme()}
	}
	switch p := in.GetRedirectPort().(type) {
	case *networking.HTTPRedirect_Port:
		out.PortRedirect = p.Port
	case *networking.HTTPRedirect_DerivePort:
		if p.DerivePort == networking.HTTPRedirect_FROM_REQUEST_PORT {
			out.PortRedirect = listenPort
		}
	}
	return out
}

// directResponse translates a directResponse. The contract carries bodies
// as inline_string; bytes that are not UTF-8 (which a protobuf string
// cannot hold) fall back to inline_bytes, as Istio always writes them.
func directResponse(in *networking.HTTPDirectResponse) *route.DirectResponseAction {
	out := &route.DirectResponseAction{Status: in.GetStatus()}
	switch b := in.GetBody().GetSpecifier().(type) {
	case *networking.HTTPBody_String_:
		out.Body = &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: b.String_}}
	case *networking.HTTPBody_Bytes:
		if utf8.Valid(b.Bytes) {
			out.Body = &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: string(b.Bytes)}}
		} else {
			out.Body = &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b.Bytes}}
		}
	}
	return out
}

// applyRewrite sets the path and host rewrites. rewrite.uri is a
// prefix_rewrite even under an exact uri match, as in Istio: the matched
// "prefix" is then the whole path, so the result is a full replacement.
// rewrite.authority wins over an authority from header operations.
func applyRewrite(a *route.RouteAction, rw *networking.HTTPRewrite, authority string) {
	if rx := rw.GetUriRegexRewrite(); rx != nil {
		a.RegexRewrite = &matcher.RegexMatchAndSubstitute{Pattern: regex(rx.GetMatch()), Substitution: rx.GetRewrite()}
	} else if uri := rw.GetUri(); uri != "" {
		a.PrefixRewrite = uri
	}
	if rw.GetAuthority() != "" {
		authority = rw.GetAuthority()
	}
	if authority != "" {
		a.HostRewriteSpecifier = &route.RouteAction_HostRewriteLiteral{HostRewriteLiteral: authority}
	}
}
