package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"
)

// This file validates AuthorizationPolicy as Istio's validation does, and
// rejects what weft's RBAC filter cannot enforce (CUSTOM, trust domains):
// a policy weft enforces differently from how it reads would be worse than
// one refused.

func (v *validator) authorizationPolicy(ap *security.AuthorizationPolicy) {
	spec := path("spec")
	v.istioSelector(spec, ap.GetSelector(), ap.GetTargetRef(), ap.GetTargetRefs())
	switch ap.GetAction() {
	case security.AuthorizationPolicy_CUSTOM:
		v.errorf(spec.field("action"), "CUSTOM (external authorization) is not supported by weft; use ALLOW, DENY or AUDIT")
	case security.AuthorizationPolicy_ALLOW, security.AuthorizationPolicy_DENY, security.AuthorizationPolicy_AUDIT:
		if ap.GetProvider() != nil {
			v.errorf(spec.field("provider"), "only used with action CUSTOM, not %s", ap.GetAction())
		}
	default:
		v.errorf(spec.field("action"), "unknown action %d; use ALLOW, DENY or AUDIT", ap.GetAction())
	}
	for i, r := range ap.GetRules() {
		rp := spec.field("rules").index(i)
		for j, f := range r.GetFrom() {
			v.source(rp.field("from").index(j).field("source"), f.GetSource())
		}
		for j, t := range r.GetTo() {
			v.operation(rp.field("to").index(j).field("operation"), t.GetOperation())
		}
		for j, c := range r.GetWhen() {
			v.condition(rp.field("when").index(j), c)
		}
	}
}

func (v *validator) source(p path, s *security.Source) {
	if s == nil {
		v.errorf(p, "required")
		return
	}
	if len(s.GetServiceAccounts())+len(s.GetNotServiceAccounts()) > 0 {
		// Istio's CRD refuses the mix: the fields say the same thing.
		for _, f := range []struct {
			name string
			n    int
		}{{"principals", len(s.GetPrincipals())}, {"notPrincipals", len(s.GetNotPrincipals())},
			{"namespaces", len(s.GetNamespaces())}, {"notNamespaces", len(s.GetNotNamespaces())}} {
			if f.n > 0 {
				v.errorf(p.field(f.name), "cannot be set together with serviceAccounts or notServiceAccounts")
			}
		}
	}
	for _, f := range []struct {
		name   string
		values []string
	}{{"serviceAccounts", s.GetServiceAccounts()}, {"notServiceAccounts", s.GetNotServiceAccounts()}} {
		if len(f.values) > maxServiceAccounts {
			v.errorf(p.field(f.name), "at most %d service accounts, got %d", maxServiceAccounts, len(f.values))
		}
		v.values(p.field(f.name), f.values, checkServiceAccount)
	}
	if len(s.GetTrustDomains()) > 0 || len(s.GetNotTrustDomains()) > 0 {
		v.errorf(p, "trustDomains and notTrustDomains are not supported by weft; use principals such as TRUST_DOMAIN/*")
	}
	lists := []struct {
		name   string
		values []string
		check  func(string) string
	}{
		{"principals", s.GetPrincipals(), checkPrincipal},
		{"notPrincipals", s.GetNotPrincipals(), checkPrincipal},
		{"requestPrincipals", s.GetRequestPrincipals(), checkWildcard},
		{"notRequestPrincipals", s.GetNotRequestPrincipals(), checkWildcard},
		{"namespaces", s.GetNamespaces(), checkNamespacePattern},
		{"notNamespaces", s.GetNotNamespaces(), checkNamespacePattern},
		{"ipBlocks", s.GetIpBlocks(), checkIPBlock},
		{"notIpBlocks", s.GetNotIpBlocks(), checkIPBlock},
		{"remoteIpBlocks", s.GetRemoteIpBlocks(), checkIPBlock},
		{"notRemoteIpBlocks", s.GetNotRemoteIpBlocks(), checkIPBlock},
	}
	empty := true
	for _, l := range lists {
		empty = empty && len(l.values) == 0
		v.values(p.field(l.name), l.values, l.check)
	}
	if empty && len(s.GetServiceAccounts())+len(s.GetNotServiceAccounts())+len(s.GetTrustDomains())+len(s.GetNotTrustDomains()) == 0 {
		v.errorf(p, "must set at least one field, e.g. principals, namespaces or serviceAccounts; leave out the from entry to match any source")
	}
}

func (v *validator) operation(p path, op *security.Operation) {
	if op == nil {
		v.errorf(p, "required")
		return
	}
	lists := []struct {
		name   string
		values []string
		check  func(string) string
	}{
		{"hosts", op.GetHosts(), checkWildcard},
		{"notHosts", op.GetNotHosts(), checkWildcard},
		{"ports", op.GetPorts(), checkPortString},
		{"notPorts", op.GetNotPorts(), checkPortString},
		{"methods", op.GetMethods(), checkWildcard},
		{"notMethods", op.GetNotMethods(), checkWildcard},
		{"paths", op.GetPaths(), checkPath},
		{"notPaths", op.GetNotPaths(), checkPath},
	}
	empty := true
	for _, l := range lists {
		empty = empty && len(l.values) == 0
		v.values(p.field(l.name), l.values, l.check)
	}
	if empty {
		v.errorf(p, "must set at least one field, e.g. methods or paths; leave out the to entry to match any request")
	}
}

func (v *validator) values(p path, values []string, check func(string) string) {
	for i, val := range values {
		if msg := check(val); msg != "" {
			v.errorf(p.index(i), "%s", msg)
		}
	}
}

// checkWildcard accepts Istio's string forms: exact, "x*" (prefix), "*x"
// (suffix) and "*" (present); a "*" anywhere else would be taken literally,
// which is never what was meant.
func checkWildcard(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case s == "*":
		return ""
	}
	inner := s
	if strings.HasPrefix(inner, "*") {
		inner = inner[1:]
	} else {
		inner = strings.TrimSuffix(inner, "*")
	}
	if strings.Contains(inner, "*") {
		return fmt.Sprintf("invalid value %q: a wildcard is allowed only as the first or the last character (*x or x*), or alone", s)
	}
	return ""
}

// checkPrincipal checks a SPIFFE identity as Istio writes it, without the
// scheme: TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT.
func checkPrincipal(s string) string {
	if strings.HasPrefix(s, "spiffe://") {
		return fmt.Sprintf("invalid principal %q: leave out spiffe://, e.g. cluster.local/ns/default/sa/sleep", s)
	}
	return checkWildcard(s)
}

// maxServiceAccounts is the most (not)serviceAccounts Istio's CRD admits.
const maxServiceAccounts = 16

// checkServiceAccount checks a serviceAccounts value as Istio takes it:
// NAMESPACE/ACCOUNT, or ACCOUNT alone for one in the policy's namespace,
// without wildcards. It matches that account in any trust domain.
func checkServiceAccount(s string) string {
	const form = "use NAMESPACE/SERVICE_ACCOUNT (e.g. default/sleep), or SERVICE_ACCOUNT for one in the policy's namespace"
	switch {
	case s == "":
		return "must not be empty; " + form
	case len(s) > 320:
		return fmt.Sprintf("invalid service account %q: at most 320 characters", s)
	case strings.Contains(s, "*"):
		return fmt.Sprintf("invalid service account %q: wildcards are not allowed; %s", s, form)
	}
	ns, sa, qualified := strings.Cut(s, "/")
	if !qualified {
		ns, sa = "", s
	}
	switch {
	case qualified && !isDNS1123Label(ns):
		return fmt.Sprintf("invalid service account %q: namespace %q must be lower-case letters, digits and '-', starting and ending with a letter or digit; %s", s, ns, form)
	case !isDNS1123Subdomain(sa):
		return fmt.Sprintf("invalid service account %q: name %q must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit; %s", s, sa, form)
	}
	return ""
}

func checkNamespacePattern(s string) string {
	if msg := checkWildcard(s); msg != "" {
		return msg
	}
	if name := strings.Trim(s, "*"); name != "" && strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return fmt.Sprintf("invalid namespace %q: use lower-case letters, digits and '-', with an optional * at the start or end", s)
	}
	return ""
}

// checkIPBlock accepts an IP address or a CIDR block.
func checkIPBlock(s string) string {
	if _, err := netip.ParsePrefix(s); err == nil {
		return ""
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	return fmt.Sprintf("invalid IP address or CIDR block %q, e.g. 10.0.0.1 or 10.0.0.0/16", s)
}

func checkPortString(s string) string {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("invalid port %q: must be a number between 1 and 65535", s)
	}
	return ""
}

// checkPath accepts exact, prefix, suffix and presence forms, and Istio's
// path templates: a value with {*} (one path segment) or {**} (any rest)
// is a template, whose operators are whole segments, {**} the last of
// them, with no other '*', '{' or '}'.
func checkPath(s string) string {
	if !strings.ContainsAny(s, "{}") {
		return checkWildcard(s)
	}
	if !strings.HasPrefix(s, "/") {
		return fmt.Sprintf("invalid path template %q: must start with /", s)
	}
	textGlob := false
	for _, seg := range strings.Split(s, "/") {
		switch {
		case (seg == "{*}" || seg == "{**}") && textGlob:
			return fmt.Sprintf("invalid path template %q: {**} must be the last operator", s)
		case seg == "{**}":
			textGlob = true
		case seg == "{*}":
		case strings.ContainsAny(seg, "{}"):
			return fmt.Sprintf("invalid path template %q: {*} and {**} must be whole path segments, e.g. /api/{*}/items", s)
		case strings.Contains(seg, "*"):
			return fmt.Sprintf("invalid path template %q: '*' cannot be used with {*} or {**}; a template matches segments, not prefixes", s)
		}
	}
	return ""
}

// conditionKeys are the `when` keys weft enforces (Istio's, less the
// experimental ones); bracketed keys are handled in conditionCheck.
var conditionKeys = map[string]func(string) string{
	"source.ip": checkIPBlock, "remote.ip": checkIPBlock, "destination.ip": checkIPBlock,
	"destination.port":       checkPortString,
	"source.namespace":       checkNamespacePattern,
	"source.principal":       checkPrincipal,
	"request.auth.principal": checkWildcard, "request.auth.audiences": checkWildcard,
	"request.auth.presenter": checkWildcard, "connection.sni": checkWildcard,
}

const conditionKeyList = "request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, " +
	"request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[NAME], " +
	"destination.ip, destination.port, connection.sni"

// conditionCheck returns how to check the values of key, or why the key is refused.
func conditionCheck(key string) (check func(string) string, msg string) {
	if c, ok := conditionKeys[key]; ok {
		return c, ""
	}
	switch {
	case strings.HasPrefix(key, "experimental."):
		return nil, fmt.Sprintf("experimental key %q is not supported by weft", key)
	case strings.HasPrefix(key, "request.headers["):
		name, ok := bracketed(key[len("request.headers"):])
		if !ok || len(name) != 1 || !isHeaderName(name[0]) {
			return nil, fmt.Sprintf("invalid key %q: write request.headers[NAME] with one header name", key)
		}
		return checkWildcard, ""
	case strings.HasPrefix(key, "request.auth.claims["):
		if _, ok := bracketed(key[len("request.auth.claims"):]); !ok {
			return nil, fmt.Sprintf("invalid key %q: write request.auth.claims[NAME], or [A][B] for a nested claim", key)
		}
		return checkWildcard, ""
	}
	return nil, fmt.Sprintf("unknown key %q; use one of %s", key, conditionKeyList)
}

// bracketed splits "[a][b]" into its non-empty parts.
func bracketed(s string) ([]string, bool) {
	var parts []string
	for s != "" {
		if s[0] != '[' {
			return nil, false
		}
		end := strings.IndexByte(s, ']')
		if end < 2 || strings.ContainsAny(s[1:end], "[") {
			return nil, false
		}
		parts = append(parts, s[1:end])
		s = s[end+1:]
	}
	return parts, len(parts) > 0
}

func (v *validator) condition(p path, c *security.Condition) {
	key := c.GetKey()
	if key == "" {
		v.errorf(p.field("key"), "required")
		return
	}
	check, msg := conditionCheck(key)
	if msg != "" {
		v.errorf(p.field("key"), "%s", msg)
		return
	}
	if len(c.GetValues()) == 0 && len(c.GetNotValues()) == 0 {
		v.errorf(p, "at least one of values or notValues is required for key %s", key)
	}
	v.values(p.field("values"), c.GetValues(), check)
	v.values(p.field("notValues"), c.GetNotValues(), check)
}
