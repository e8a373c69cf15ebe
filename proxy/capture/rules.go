package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/weft-mesh/weft/xds/node"
)

// TableName is the nftables table weft owns; nothing else is touched.
const TableName = "weft"

// InboundPassthroughSource is the address the sidecar connects to its own
// pod from (Istio's 127.0.0.6): traffic from it on lo is never captured,
// which is what keeps the sidecar's connections to the app, made to the
// pod IP, from being redirected back to the sidecar.
var InboundPassthroughSource = netip.MustParseAddr("127.0.0.6")

// inboundPassthroughSource6 is the IPv6 counterpart (Istio's ::6).
var inboundPassthroughSource6 = netip.MustParseAddr("::6")

// StatusPorts are the sidecar's own ports inbound capture always leaves
// alone: admin, status (app probes, merged metrics), readiness and stats.
// A kubelet probing 15021 must reach the sidecar, not the app.
var StatusPorts = []uint16{node.AdminPort, node.StatusPort, node.HealthPort, node.StatsPort}

// Ports is an include list in Istio's annotation syntax: "*" (All), or
// comma-separated ports; empty means none.
type Ports struct {
	All  bool
	List []uint16
}

// CIDRs is an include list of address ranges: "*" (All), or
// comma-separated CIDRs (a bare address is a /32 or /128); empty means none.
type CIDRs struct {
	All  bool
	List []netip.Prefix
}

// Config is what the capture rules redirect, in the terms of Istio's
// traffic.sidecar.istio.io annotations and istio-iptables flags.
type Config struct {
	// OutboundPort receives redirected outbound TCP (15001).
	OutboundPort uint16
	// InboundPort receives redirected inbound TCP (15006).
	InboundPort uint16
	// ProxyUID and ProxyGID are the sidecar's user and group (1337): its
	// own connections are never captured.
	ProxyUID, ProxyGID uint32
	// InboundPorts is includeInboundPorts ("*" by default).
	InboundPorts Ports
	// ExcludeInboundPorts is excludeInboundPorts (StatusPorts are added).
	ExcludeInboundPorts []uint16
	// OutboundCIDRs is includeOutboundIPRanges ("*" by default).
	OutboundCIDRs CIDRs
	// ExcludeOutboundCIDRs is excludeOutboundIPRanges.
	ExcludeOutboundCIDRs []netip.Prefix
	// OutboundPorts is includeOutboundPorts: captured whatever the ranges say.
	OutboundPorts []uint16
	// ExcludeOutboundPorts is excludeOutboundPorts.
	ExcludeOutboundPorts []uint16
	// IPv6 adds the same rules for IPv6 in a table of family ip6.
	IPv6 bool
}

// DefaultConfig captures all TCP both ways, with Istio's ports and user.
func DefaultConfig() Config {
	return Config{
		OutboundPort:  node.OutboundCapturePort,
		InboundPort:   node.InboundCapturePort,
		ProxyUID:      node.ProxyUID,
		ProxyGID:      node.ProxyUID,
		InboundPorts:  Ports{All: true},
		OutboundCIDRs: CIDRs{All: true},
	}
}

// ParsePorts reads a port list: "*", "" or "80,8080". Spaces are ignored.
func ParsePorts(s string) (Ports, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return Ports{All: true}, nil
	}
	list, err := ParsePortList(s)
	return Ports{List: list}, err
}

// ParsePortList reads a comma-separated list of ports (no "*").
func ParsePortList(s string) ([]uint16, error) {
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("port %q: want a number from 1 to 65535", f)
		}
		if !slices.Contains(out, uint16(n)) {
			out = append(out, uint16(n))
		}
	}
	return out, nil
}

// ParseCIDRs reads an address range list: "*", "" or "10.96.0.0/12,10.1.2.3".
func ParseCIDRs(s string) (CIDRs, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return CIDRs{All: true}, nil
	}
	list, err := ParseCIDRList(s)
	return CIDRs{List: list}, err
}

// ParseCIDRList reads a comma-separated list of CIDRs or addresses (no "*").
func ParseCIDRList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(f, "/") {
			var err error
			if p, err = netip.ParsePrefix(f); err != nil {
				return nil, fmt.Errorf("range %q: want an address or CIDR such as 10.96.0.0/12", f)
			}
		} else {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("range %q: want an address or CIDR such as 10.96.0.0/12", f)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		p = p.Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// Validate checks the ports are usable and distinct where they must be.
func (c *Config) Validate() error {
	switch {
	case c.OutboundPort == 0:
		return fmt.Errorf("outbound capture port: required")
	case c.InboundPort == 0:
		return fmt.Errorf("inbound capture port: required")
	case c.OutboundPort == c.InboundPort:
		return fmt.Errorf("inbound and outbound capture ports are both %d", c.InboundPort)
	}
	for _, p := range c.ExcludeOutboundCIDRs {
		if p.Bits() == 0 {
			return fmt.Errorf("excluded outbound range %s: excludes everything; use an empty include list instead", p)
		}
	}
	return nil
}

// Family is an nftables table family weft writes rules for.
type Family uint8

// Families.
const (
	IPv4 Family = iota
	IPv6
)

// String is the family's nft keyword.
func (f Family) String() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

// Hook is where a base chain is attached; HookNone is a regular chain.
type Hook uint8

// Hooks of the nat chains.
const (
	HookNone Hook = iota
	HookPrerouting
	HookOutput
)

// Ruleset is one table of rules, in the order they are evaluated.
type Ruleset struct {
	Family Family
	Table  string
	Chains []*Chain
}

// Chain is one chain of a Ruleset.
type Chain struct {
	Name  string
	Hook  Hook // base chains: type nat, priority -100 (dstnat)
	Rules []Rule
}

// Rule is a conjunction of matches and a verdict.
type Rule struct {
	Matches []Match
	Verdict Verdict
	// Comment says why the rule exists; it is kept in the kernel as the
	// rule's comment, so `nft list table ip weft` shows it too.
	Comment string
}

// MatchKind is what a Match compares.
type MatchKind uint8

// Match kinds.
const (
	MatchTCP     MatchKind = iota + 1 // meta l4proto tcp
	MatchOIFName                      // oifname
	MatchSAddr                        // ip saddr / ip6 saddr
	MatchDAddr                        // ip daddr / ip6 daddr
	MatchDPort                        // tcp dport
	MatchUID                          // meta skuid
	MatchGID                          // meta skgid
)

// Match is one comparison; Not negates it.
type Match struct {
	Kind   MatchKind
	Not    bool
	Iface  string
	Prefix netip.Prefix
	Port   uint16
	ID     uint32
}

// VerdictKind is what a rule does with a matching packet.
type VerdictKind uint8

// Verdicts.
const (
	Return   VerdictKind = iota + 1 // leave the packet alone
	Jump                            // continue in Verdict.Chain
	Redirect                        // rewrite the destination to a local port
)

// Verdict is a rule's action.
type Verdict struct {
	Kind  VerdictKind
	Chain string // Jump
	Port  uint16 // Redirect
}

// Chain names inside the weft table.
const (
	ChainPrerouting = "prerouting"
	ChainOutput     = "output"
	ChainInbound    = "inbound"     // inbound exclusions, then the jump to in_redirect
	ChainInRedirect = "in_redirect" // REDIRECT to the inbound capture port
	ChainOutbound   = "outbound"    // the sidecar's, loopback and excluded traffic, then redirect
	ChainRedirect   = "redirect"    // REDIRECT to the outbound capture port
)

// Rulesets returns the rules c asks for: one table for IPv4 and, with
// c.IPv6, one for IPv6. They follow istio-iptables' nat rules (same order,
// same effect) with nft's vocabulary.
func (c *Config) Rulesets() ([]*Ruleset, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	out := []*Ruleset{c.ruleset(IPv4)}
	if c.IPv6 {
		out = append(out, c.ruleset(IPv6))
	}
	return out, nil
}

func (c *Config) ruleset(f Family) *Ruleset {
	loopback, passthroughSrc := netip.MustParsePrefix("127.0.0.1/32"), netip.PrefixFrom(InboundPassthroughSource, 32)
	if f == IPv6 {
		loopback, passthroughSrc = netip.MustParsePrefix("::1/128"), netip.PrefixFrom(inboundPassthroughSource6, 128)
	}
	tcp := Match{Kind: MatchTCP}
	dport := func(p uint16) Match { return Match{Kind: MatchDPort, Port: p} }
	daddr := func(p netip.Prefix) Match { return Match{Kind: MatchDAddr, Prefix: p} }
	jump := func(chain string) Verdict { return Verdict{Kind: Jump, Chain: chain} }
	ret := Verdict{Kind: Return}
	lo := Match{Kind: MatchOIFName, Iface: "lo"}

	rs := &Ruleset{Family: f, Table: TableName}
	pre := &Chain{Name: ChainPrerouting, Hook: HookPrerouting}
	in := &Chain{Name: ChainInbound}
	inRedirect := &Chain{Name: ChainInRedirect, Rules: []Rule{{
		Matches: []Match{tcp}, Verdict: Verdict{Kind: Redirect, Port: c.InboundPort},
		Comment: "inbound: to the sidecar's inbound capture port",
	}}}
	if c.InboundPorts.All || len(c.InboundPorts.List) > 0 {
		pre.Rules = append(pre.Rules, Rule{Matches: []Match{tcp}, Verdict: jump(ChainInbound)})
		excluded := append(slices.Clone(StatusPorts), c.ExcludeInboundPorts...)
		if c.InboundPorts.All {
			for _, p := range dedupe(excluded) {
				in.Rules = append(in.Rules, Rule{Matches: []Match{dport(p)}, Verdict: ret, Comment: "inbound: excluded port"})
			}
			in.Rules = append(in.Rules, Rule{Verdict: jump(ChainInRedirect), Comment: "inbound: every other port"})
		} else {
			for _, p := range c.InboundPorts.List {
				if !slices.Contains(excluded, p) {
					in.Rules = append(in.Rules, Rule{Matches: []Match{dport(p)}, Verdict: jump(ChainInRedirect), Comment: "inbound: included port"})
				}
			}
		}
	}

	out := &Chain{Name: ChainOutput, Hook: HookOutput, Rules: []Rule{{Matches: []Match{tcp}, Verdict: jump(ChainOutbound)}}}
	ob := &Chain{Name: ChainOutbound}
	add := func(comment string, v Verdict, ms ...Match) {
		ob.Rules = append(ob.Rules, Rule{Matches: ms, Verdict: v, Comment: comment})
	}
	for _, p := range c.ExcludeOutboundPorts {
		add("outbound: excluded port", ret, dport(p))
	}
	add("the sidecar's connections to its own app", ret, lo, Match{Kind: MatchSAddr, Prefix: passthroughSrc})
	loopbackIncluded := slices.ContainsFunc(c.OutboundCIDRs.List, func(p netip.Prefix) bool { return p.Addr().IsLoopback() })
	owners := []Match{{Kind: MatchUID, ID: c.ProxyUID}}
	if c.ProxyGID != 0 {
		owners = append(owners, Match{Kind: MatchGID, ID: c.ProxyGID})
	}
	for _, owner := range owners {
		notOwner := owner
		notOwner.Not = true
		add("the sidecar calling its own pod's address: inbound capture", jump(ChainInRedirect),
			lo, Match{Kind: MatchDAddr, Not: true, Prefix: loopback}, owner)
		if !loopbackIncluded {
			add("the app calling itself over lo", ret, lo, notOwner)
		}
		add("the sidecar's own connections", ret, owner)
	}
	add("loopback", ret, daddr(loopback))
	for _, p := range c.ExcludeOutboundCIDRs {
		if familyOf(p) == f {
			add("outbound: excluded range", ret, daddr(p))
		}
	}
	for _, p := range c.OutboundPorts {
		add("outbound: included port", jump(ChainRedirect), dport(p))
	}
	if c.OutboundCIDRs.All {
		add("outbound: everything else", jump(ChainRedirect))
	} else {
		for _, p := range c.OutboundCIDRs.List {
			if familyOf(p) == f {
				add("outbound: included range", jump(ChainRedirect), daddr(p))
			}
		}
	}
	redirect := &Chain{Name: ChainRedirect, Rules: []Rule{{
		Matches: []Match{tcp}, Verdict: Verdict{Kind: Redirect, Port: c.OutboundPort},
		Comment: "outbound: to the sidecar's outbound capture port",
	}}}
	rs.Chains = []*Chain{pre, out, in, inRedirect, ob, redirect}
	return rs
}

func familyOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return IPv4
	}
	return IPv6
}

func dedupe(ps []uint16) []uint16 {
	var out []uint16
	for _, p := range ps {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
