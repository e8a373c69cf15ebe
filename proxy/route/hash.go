package route

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
)

type hashKind uint8

const (
	hashHeader hashKind = iota
	hashCookie
	hashSourceIP
	hashQuery
)

// hashPolicy is one compiled RouteAction.HashPolicy.
type hashPolicy struct {
	kind     hashKind
	name     string        // canonical header key, cookie name or query parameter
	pseudo   filter.Pseudo // for headers: PseudoNone, PseudoMethod, PseudoAuthority or PseudoPath
	ttl      time.Duration
	hasTTL   bool
	path     string
	terminal bool
}

func compileHashPolicy(p *routev3.RouteAction_HashPolicy) (hashPolicy, error) {
	out := hashPolicy{terminal: p.GetTerminal()}
	if err := contract.CheckFields(p, "header", "cookie", "connection_properties", "query_parameter", "terminal"); err != nil {
		return out, err
	}
	switch s := p.GetPolicySpecifier().(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		if err := contract.CheckFields(s.Header, "header_name"); err != nil {
			return out, fmt.Errorf("header.%w", err)
		}
		hn, err := filter.ParseHeaderName(s.Header.GetHeaderName())
		if err == nil && hn.Pseudo == filter.PseudoScheme {
			err = fmt.Errorf("unsupported pseudo-header %q", ":scheme")
		}
		if err != nil {
			return out, fmt.Errorf("header.header_name: %w", err)
		}
		out.kind, out.pseudo, out.name = hashHeader, hn.Pseudo, hn.Key
	case *routev3.RouteAction_HashPolicy_Cookie_:
		c := s.Cookie
		if err := contract.CheckFields(c, "name", "ttl", "path"); err != nil {
			return out, fmt.Errorf("cookie.%w", err)
		}
		if c.GetName() == "" || !validCookieToken(c.GetName()) {
			return out, fmt.Errorf("cookie.name: invalid %q", c.GetName())
		}
		if strings.ContainsAny(c.GetPath(), ";\r\n") || !validValue(c.GetPath()) {
			return out, fmt.Errorf("cookie.path: invalid %q", c.GetPath())
		}
		out.kind, out.name, out.path = hashCookie, c.GetName(), c.GetPath()
		if d := c.GetTtl(); d != nil {
			if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
				return out, fmt.Errorf("cookie.ttl: invalid duration")
			}
			out.ttl, out.hasTTL = d.AsDuration(), true
		}
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		if err := contract.CheckFields(s.ConnectionProperties, "source_ip"); err != nil {
			return out, fmt.Errorf("connection_properties.%w", err)
		}
		if !s.ConnectionProperties.GetSourceIp() {
			return out, fmt.Errorf("connection_properties.source_ip: must be true")
		}
		out.kind = hashSourceIP
	case *routev3.RouteAction_HashPolicy_QueryParameter_:
		if err := contract.CheckFields(s.QueryParameter, "name"); err != nil {
			return out, fmt.Errorf("query_parameter.%w", err)
		}
		if s.QueryParameter.GetName() == "" {
			return out, fmt.Errorf("query_parameter.name: empty")
		}
		out.kind, out.name = hashQuery, s.QueryParameter.GetName()
	default:
		return out, fmt.Errorf("policy_specifier: one of header, cookie, connection_properties, query_parameter required")
	}
	return out, nil
}

func validCookieToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// HasHash reports whether the route has hash policies.
func (rt *Route) HasHash() bool { return len(rt.hash) > 0 }

// Hash computes the request's hash for consistent-hash load balancing from
// the route's hash policies, Envoy's way: every policy that yields a value is
// combined (rotate the running hash left by one bit, then xor), and a
// terminal policy that yielded a value ends the evaluation. ok is false when
// no policy yielded a value. When a cookie policy with a ttl finds no cookie,
// it generates a value, hashes it, and returns the Set-Cookie header value
// the response must carry: "NAME=VALUE[; Max-Age=TTL][; Path=PATH]; HttpOnly".
func (rt *Route) Hash(r *http.Request, authority string) (hash uint64, ok bool, setCookie string) {
	for i := range rt.hash {
		p := &rt.hash[i]
		h, got := uint64(0), false
		switch p.kind {
		case hashHeader:
			h, got = p.headerHash(r, authority)
		case hashCookie:
			if v, found := cookieValue(r.Header["Cookie"], p.name); found {
				h, got = fnv(fnvOffset, v), true
			} else if p.hasTTL {
				v := strconv.FormatUint(rand.Uint64(), 16)
				h, got = fnv(fnvOffset, v), true
				setCookie = p.setCookie(v)
			}
		case hashSourceIP:
			if ip := remoteIP(r.RemoteAddr); ip != "" {
				h, got = fnv(fnvOffset, ip), true
			}
		case hashQuery:
			if v, found := queryValue(r.URL.RawQuery, p.name); found {
				h, got = fnv(fnvOffset, v), true
			}
		}
		if got {
			h = mix(h)
			if ok {
				hash = (hash<<1 | hash>>63) ^ h
			} else {
				hash = h
			}
			ok = true
			if p.terminal {
				break
			}
		}
	}
	return hash, ok, setCookie
}

func (p *hashPolicy) headerHash(r *http.Request, authority string) (uint64, bool) {
	switch p.pseudo {
	case filter.PseudoAuthority:
		return fnv(fnvOffset, authority), true
	case filter.PseudoMethod:
		return fnv(fnvOffset, r.Method), true
	case filter.PseudoPath:
		return fnv(fnv(fnvOffset, r.URL.EscapedPath()), r.URL.RawQuery), true
	}
	vs := r.Header[p.name]
	switch len(vs) {
	case 0:
		return 0, false
	case 1:
		return fnv(fnvOffset, vs[0]), true
	}
	// Several values: hash them sorted, so their order does not matter.
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	h := uint64(fnvOffset)
	for _, v := range sorted {
		h = fnv(h, v)
		h = fnvByte(h, 0)
	}
	return h, true
}

func (p *hashPolicy) setCookie(v string) string {
	var b strings.Builder
	b.WriteString(p.name)
	b.WriteByte('=')
	b.WriteString(v)
	if secs := int64(p.ttl / time.Second); secs > 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(secs, 10))
	}
	if p.path != "" {
		b.WriteString("; Path=")
		b.WriteString(p.path)
	}
	b.WriteString("; HttpOnly")
	return b.String()
}

// cookieValue finds cookie name in Cookie header values without allocating;
// surrounding double quotes are removed.
func cookieValue(headers []string, name string) (string, bool) {
	for _, line := range headers {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

func remoteIP(remote string) string {
	i := strings.LastIndexByte(remote, ':')
	if i < 0 {
		return remote
	}
	return strings.TrimSuffix(strings.TrimPrefix(remote[:i], "["), "]")
}

// 64-bit FNV-1a, then mix: stable across processes, so every proxy hashes a
// key alike.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnv(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix is a 64-bit finalizer (xor-shift-multiply): FNV-1a alone barely
// changes the high bits for keys that differ in their last bytes, and ring
// hash and maglev place hosts by the high bits.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func fnvByte(h uint64, b byte) uint64 {
	h ^= uint64(b)
	return h * fnvPrime
}
