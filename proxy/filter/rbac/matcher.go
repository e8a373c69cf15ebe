package rbac

import (
	"crypto/x509"
	"fmt"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
)

// maxDepth bounds the nesting of and/or/not rules, so a hostile config
// cannot exhaust the stack of every request evaluating it.
const maxDepth = 64

type kind uint8

const (
	kAny kind = iota
	kAnd
	kOr
	kNot
	kHeader         // header matcher on the request
	kPath           // url_path on the normalized request path
	kDestIP         // destination_ip: the listener's address
	kDestPort       // destination_port
	kDestPortRange  // destination_port_range [lo, hi)
	kMetadata       // dynamic metadata matcher
	kSNI            // requested_server_name
	kAuthenticated  // authenticated (principal_name in str, nil = any)
	kDirectRemoteIP // direct_remote_ip, source_ip: the connection's peer
	kRemoteIP       // remote_ip: the client as x-forwarded-for tells
)

// node is one compiled permission or principal. A tree of concrete nodes
// (not interfaces) keeps evaluation free of dynamic dispatch and lets the
// input stay on the stack.
type node struct {
	kind   kind
	kids   []node
	str    *filter.StringMatcher
	prefix netip.Prefix
	lo, hi uint32
	hdr    *filter.HeaderMatcher
	meta   *metadataMatcher
}

// input is what a request or connection offers the matchers.
type input struct {
	x         *filter.Exchange // nil for a TCP connection
	conn      *filter.ConnInfo
	useRemote bool
}

func (n *node) match(in *input) bool {
	switch n.kind {
	case kAny:
		return true
	case kAnd:
		for i := range n.kids {
			if !n.kids[i].match(in) {
				return false
			}
		}
		return true
	case kOr:
		for i := range n.kids {
			if n.kids[i].match(in) {
				return true
			}
		}
		return false
	case kNot:
		return !n.kids[0].match(in)
	case kHeader:
		return in.x != nil && n.hdr.Match(in.x.R, nil)
	case kPath:
		return in.x != nil && n.str.Match(in.x.Path())
	case kDestIP:
		return n.prefix.Contains(in.conn.Local.Addr())
	case kDestPort:
		return uint32(in.conn.Local.Port()) == n.lo
	case kDestPortRange:
		p := uint32(in.conn.Local.Port())
		return p >= n.lo && p < n.hi
	case kMetadata:
		if in.x == nil {
			return n.meta.match(nil)
		}
		return n.meta.match(in.x.Metadata)
	case kSNI:
		return n.str.Match(in.conn.SNI)
	case kAuthenticated:
		return authenticated(in.conn, n.str)
	case kDirectRemoteIP:
		return n.prefix.Contains(in.conn.Source.Addr())
	case kRemoteIP:
		if in.x == nil {
			return n.prefix.Contains(in.conn.Source.Addr())
		}
		return n.prefix.Contains(in.x.RemoteIP(in.useRemote))
	}
	return false
}

// authenticated matches the verified client certificate as Envoy does: any
// URI SAN, else any DNS SAN, else the subject. Without a client certificate
// nothing is authenticated.
func authenticated(c *filter.ConnInfo, sm *filter.StringMatcher) bool {
	cert := c.Cert
	if cert == nil {
		return false
	}
	if sm == nil {
		return true
	}
	switch {
	case len(cert.URIs) == 1:
		return sm.Match(c.Principal) // already formatted once per exchange
	case len(cert.URIs) > 1:
		for _, u := range cert.URIs {
			if sm.Match(u.String()) {
				return true
			}
		}
		return false
	case len(cert.DNSNames) > 0:
		for _, d := range cert.DNSNames {
			if sm.Match(d) {
				return true
			}
		}
		return false
	}
	return sm.Match(subject(cert))
}

func subject(cert *x509.Certificate) string { return cert.Subject.String() }

// compiler turns permission and principal messages into nodes.
type compiler struct {
	network bool // HTTP attributes are errors
}

func (c compiler) httpOnly(field string) error {
	if c.network {
		return fmt.Errorf("%s: an HTTP attribute, unsupported in %s", field, NetworkName)
	}
	return nil
}

func (c compiler) permission(p *rbacv3.Permission, depth int) (node, error) {
	var n node
	if depth > maxDepth {
		return n, fmt.Errorf("rule: nested deeper than %d", maxDepth)
	}
	if p == nil {
		return n, fmt.Errorf("rule: required")
	}
	if err := contract.CheckFields(p, "and_rules", "or_rules", "any", "header", "url_path", "destination_ip",
		"destination_port", "destination_port_range", "metadata", "not_rule", "requested_server_name"); err != nil {
		return n, err
	}
	var err error
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_AndRules:
		n.kind = kAnd
		n.kids, err = c.permissions("and_rules", r.AndRules, depth)
	case *rbacv3.Permission_OrRules:
		n.kind = kOr
		n.kids, err = c.permissions("or_rules", r.OrRules, depth)
	case *rbacv3.Permission_NotRule:
		var k node
		if k, err = c.permission(r.NotRule, depth+1); err != nil {
			return n, fmt.Errorf("not_rule.%w", err)
		}
		n.kind, n.kids = kNot, []node{k}
	case *rbacv3.Permission_Any:
		if !r.Any {
			return n, fmt.Errorf("any: must be true")
		}
		n.kind = kAny
	case *rbacv3.Permission_Header:
		if err = c.httpOnly("header"); err == nil {
			n.kind = kHeader
			n.hdr, err = compileHeader(r.Header)
			err = prefixed("header.", err)
		}
	case *rbacv3.Permission_UrlPath:
		if err = c.httpOnly("url_path"); err == nil {
			n.kind = kPath
			n.str, err = compilePath(r.UrlPath)
			err = prefixed("url_path.", err)
		}
	case *rbacv3.Permission_DestinationIp:
		n.kind = kDestIP
		n.prefix, err = compileCIDR(r.DestinationIp)
		err = prefixed("destination_ip.", err)
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort > 65535 {
			return n, fmt.Errorf("destination_port: %d is not a port", r.DestinationPort)
		}
		n.kind, n.lo = kDestPort, r.DestinationPort
	case *rbacv3.Permission_DestinationPortRange:
		rg := r.DestinationPortRange
		if err := contract.CheckFields(rg, "start", "end"); err != nil {
			return n, fmt.Errorf("destination_port_range.%w", err)
		}
		if rg.GetStart() < 0 || rg.GetEnd() > 65536 || rg.GetStart() >= rg.GetEnd() {
			return n, fmt.Errorf("destination_port_range: [%d, %d) is not a port range", rg.GetStart(), rg.GetEnd())
		}
		n.kind, n.lo, n.hi = kDestPortRange, uint32(rg.GetStart()), uint32(rg.GetEnd())
	case *rbacv3.Permission_Metadata:
		if err = c.httpOnly("metadata"); err == nil {
			n.kind = kMetadata
			n.meta, err = compileMetadata(r.Metadata)
			err = prefixed("metadata.", err)
		}
	case *rbacv3.Permission_RequestedServerName:
		n.kind = kSNI
		n.str, err = compileString(r.RequestedServerName)
		err = prefixed("requested_server_name.", err)
	default:
		return n, fmt.Errorf("rule: required")
	}
	return n, err
}

func (c compiler) permissions(field string, s *rbacv3.Permission_Set, depth int) ([]node, error) {
	if err := contract.CheckFields(s, "rules"); err != nil {
		return nil, fmt.Errorf("%s.%w", field, err)
	}
	if len(s.GetRules()) == 0 {
		return nil, fmt.Errorf("%s.rules: at least one required", field)
	}
	out := make([]node, 0, len(s.GetRules()))
	for i, p := range s.GetRules() {
		n, err := c.permission(p, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s.rules[%d].%w", field, i, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c compiler) principal(p *rbacv3.Principal, depth int) (node, error) {
	var n node
	if depth > maxDepth {
		return n, fmt.Errorf("identifier: nested deeper than %d", maxDepth)
	}
	if p == nil {
		return n, fmt.Errorf("identifier: required")
	}
	if err := contract.CheckFields(p, "and_ids", "or_ids", "any", "authenticated", "source_ip", "direct_remote_ip",
		"remote_ip", "header", "url_path", "metadata", "not_id"); err != nil {
		return n, err
	}
	var err error
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_AndIds:
		n.kind = kAnd
		n.kids, err = c.principals("and_ids", id.AndIds, depth)
	case *rbacv3.Principal_OrIds:
		n.kind = kOr
		n.kids, err = c.principals("or_ids", id.OrIds, depth)
	case *rbacv3.Principal_NotId:
		var k node
		if k, err = c.principal(id.NotId, depth+1); err != nil {
			return n, fmt.Errorf("not_id.%w", err)
		}
		n.kind, n.kids = kNot, []node{k}
	case *rbacv3.Principal_Any:
		if !id.Any {
			return n, fmt.Errorf("any: must be true")
		}
		n.kind = kAny
	case *rbacv3.Principal_Authenticated_:
		n.kind = kAuthenticated
		if err := contract.CheckFields(id.Authenticated, "principal_name"); err != nil {
			return n, fmt.Errorf("authenticated.%w", err)
		}
		if pn := id.Authenticated.GetPrincipalName(); pn != nil {
			n.str, err = compileString(pn)
			err = prefixed("authenticated.principal_name.", err)
		}
	case *rbacv3.Principal_SourceIp:
		n.kind = kDirectRemoteIP
		n.prefix, err = compileCIDR(id.SourceIp)
		err = prefixed("source_ip.", err)
	case *rbacv3.Principal_DirectRemoteIp:
		n.kind = kDirectRemoteIP
		n.prefix, err = compileCIDR(id.DirectRemoteIp)
		err = prefixed("direct_remote_ip.", err)
	case *rbacv3.Principal_RemoteIp:
		n.kind = kRemoteIP
		n.prefix, err = compileCIDR(id.RemoteIp)
		err = prefixed("remote_ip.", err)
	case *rbacv3.Principal_Header:
		if err = c.httpOnly("header"); err == nil {
			n.kind = kHeader
			n.hdr, err = compileHeader(id.Header)
			err = prefixed("header.", err)
		}
	case *rbacv3.Principal_UrlPath:
		if err = c.httpOnly("url_path"); err == nil {
			n.kind = kPath
			n.str, err = compilePath(id.UrlPath)
			err = prefixed("url_path.", err)
		}
	case *rbacv3.Principal_Metadata:
		if err = c.httpOnly("metadata"); err == nil {
			n.kind = kMetadata
			n.meta, err = compileMetadata(id.Metadata)
			err = prefixed("metadata.", err)
		}
	default:
		return n, fmt.Errorf("identifier: required")
	}
	return n, err
}

func (c compiler) principals(field string, s *rbacv3.Principal_Set, depth int) ([]node, error) {
	if err := contract.CheckFields(s, "ids"); err != nil {
		return nil, fmt.Errorf("%s.%w", field, err)
	}
	if len(s.GetIds()) == 0 {
		return nil, fmt.Errorf("%s.ids: at least one required", field)
	}
	out := make([]node, 0, len(s.GetIds()))
	for i, p := range s.GetIds() {
		n, err := c.principal(p, depth+1)
		if err != nil {
			return nil, fmt.Errorf("%s.ids[%d].%w", field, i, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// prefixed puts the field path p in front of err (nil stays nil).
func prefixed(p string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s%w", p, err)
}

func compileString(sm *matcherv3.StringMatcher) (*filter.StringMatcher, error) {
	m, err := filter.CompileStringMatcher(sm)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func compileHeader(h *routev3.HeaderMatcher) (*filter.HeaderMatcher, error) {
	m, err := filter.CompileHeaderMatcher(h)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func compilePath(pm *matcherv3.PathMatcher) (*filter.StringMatcher, error) {
	if err := contract.CheckFields(pm, "path"); err != nil {
		return nil, err
	}
	if pm.GetPath() == nil {
		return nil, fmt.Errorf("path: required")
	}
	m, err := compileString(pm.GetPath())
	return m, prefixed("path.", err)
}

// compileCIDR compiles a CidrRange; the address is masked to the prefix, as
// Envoy does. An absent prefix_len is 0 (every address of the family).
func compileCIDR(r *corev3.CidrRange) (netip.Prefix, error) {
	if err := contract.CheckFields(r, "address_prefix", "prefix_len"); err != nil {
		return netip.Prefix{}, err
	}
	a, err := netip.ParseAddr(r.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address_prefix: %w", err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("address_prefix: %q has a zone", r.GetAddressPrefix())
	}
	a = a.Unmap()
	bits := uint32(0)
	if r.GetPrefixLen() != nil {
		bits = r.GetPrefixLen().GetValue()
	}
	if int(bits) > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("prefix_len: %d exceeds %d bits of %s", bits, a.BitLen(), a)
	}
	return netip.PrefixFrom(a, int(bits)).Masked(), nil
}
