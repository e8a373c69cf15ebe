package capture

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func TestDefaultRules(t *testing.T) {
	c := DefaultConfig()
	rs, err := c.Rulesets()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d rulesets, want IPv4 only", len(rs))
	}
	want := `table ip weft {
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		meta l4proto tcp jump inbound
	}

	chain output {
		type nat hook output priority -100; policy accept;
		meta l4proto tcp jump outbound
	}

	chain inbound {
		tcp dport 15000 return comment "inbound: excluded port"
		tcp dport 15020 return comment "inbound: excluded port"
		tcp dport 15021 return comment "inbound: excluded port"
		tcp dport 15090 return comment "inbound: excluded port"
		jump in_redirect comment "inbound: every other port"
	}

	chain in_redirect {
		meta l4proto tcp redirect to :15006 comment "inbound: to the sidecar's inbound capture port"
	}

	chain outbound {
		oifname "lo" ip saddr 127.0.0.6 return comment "the sidecar's connections to its own app"
		oifname "lo" ip daddr != 127.0.0.1 meta skuid 1337 jump in_redirect comment "the sidecar calling its own pod's address: inbound capture"
		oifname "lo" meta skuid != 1337 return comment "the app calling itself over lo"
		meta skuid 1337 return comment "the sidecar's own connections"
		oifname "lo" ip daddr != 127.0.0.1 meta skgid 1337 jump in_redirect comment "the sidecar calling its own pod's address: inbound capture"
		oifname "lo" meta skgid != 1337 return comment "the app calling itself over lo"
		meta skgid 1337 return comment "the sidecar's own connections"
		ip daddr 127.0.0.1 return comment "loopback"
		jump redirect comment "outbound: everything else"
	}

	chain redirect {
		meta l4proto tcp redirect to :15001 comment "outbound: to the sidecar's outbound capture port"
	}
}
`
	if got := rs[0].String(); got != want {
		t.Errorf("rules:\n%s\nwant:\n%s", got, want)
	}
}

// The include and exclude lists, as Istio's annotations write them.
func TestIncludeExclude(t *testing.T) {
	c := DefaultConfig()
	var err error
	must := func(e error) {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
	}
	c.InboundPorts, err = ParsePorts("9080, 8080,15021")
	must(err)
	c.OutboundCIDRs, err = ParseCIDRs("10.96.0.0/12,fd00::/8")
	must(err)
	c.ExcludeOutboundCIDRs, err = ParseCIDRList("10.96.0.1,169.254.0.0/16")
	must(err)
	c.ExcludeOutboundPorts, err = ParsePortList("5432")
	must(err)
	c.OutboundPorts, err = ParsePortList("443")
	must(err)
	c.ProxyGID = 0
	c.IPv6 = true
	rs, err := c.Rulesets()
	must(err)
	if len(rs) != 2 || rs[1].Family != IPv6 {
		t.Fatalf("want an ip and an ip6 table, got %d", len(rs))
	}
	v4 := rs[0].String()
	for _, want := range []string{
		"tcp dport 9080 jump in_redirect", "tcp dport 8080 jump in_redirect",
		"tcp dport 5432 return", "ip daddr 10.96.0.1 return", "ip daddr 169.254.0.0/16 return",
		"tcp dport 443 jump redirect", "ip daddr 10.96.0.0/12 jump redirect",
	} {
		if !strings.Contains(v4, want) {
			t.Errorf("ip table lacks %q:\n%s", want, v4)
		}
	}
	for _, unwanted := range []string{"tcp dport 15021 jump", "fd00::/8", "skgid", "jump redirect comment \"outbound: everything else\""} {
		if strings.Contains(v4, unwanted) {
			t.Errorf("ip table has %q:\n%s", unwanted, v4)
		}
	}
	// Exclusions come before the inclusions they override.
	if strings.Index(v4, "ip daddr 10.96.0.1 return") > strings.Index(v4, "ip daddr 10.96.0.0/12 jump redirect") {
		t.Errorf("excluded range after the included one:\n%s", v4)
	}
	v6 := rs[1].String()
	for _, want := range []string{"table ip6 weft", "ip6 daddr fd00::/8 jump redirect", "ip6 daddr != ::1", "ip6 saddr ::6 return"} {
		if !strings.Contains(v6, want) {
			t.Errorf("ip6 table lacks %q:\n%s", want, v6)
		}
	}
	if strings.Contains(v6, "10.96") {
		t.Errorf("ip6 table has IPv4 ranges:\n%s", v6)
	}

	// No inbound capture at all: no jump from prerouting.
	c = DefaultConfig()
	c.InboundPorts = Ports{}
	rs, err = c.Rulesets()
	must(err)
	if len(rs[0].Chains[0].Rules) != 0 {
		t.Errorf("prerouting with inbound capture off: %v", rs[0].Chains[0].Rules)
	}
	// Loopback explicitly included: the app's calls over lo are captured too.
	c = DefaultConfig()
	c.OutboundCIDRs, err = ParseCIDRs("127.0.0.1/32,10.0.0.0/8")
	must(err)
	rs, err = c.Rulesets()
	must(err)
	if s := rs[0].String(); strings.Contains(s, "the app calling itself over lo") {
		t.Errorf("loopback included, yet the app's lo traffic returns:\n%s", s)
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"0", "70000", "http", "80,-1"} {
		if _, err := ParsePorts(s); err == nil {
			t.Errorf("ParsePorts(%q): no error", s)
		}
	}
	for _, s := range []string{"10.0.0.0/33", "not-an-ip", "*,10.0.0.0/8"} {
		if _, err := ParseCIDRs(s); err == nil {
			t.Errorf("ParseCIDRs(%q): no error", s)
		}
	}
	if p, _ := ParsePorts(""); p.All || len(p.List) != 0 {
		t.Errorf("empty list parsed as %+v", p)
	}
	c := DefaultConfig()
	c.InboundPort = c.OutboundPort
	if _, err := c.Rulesets(); err == nil {
		t.Error("same inbound and outbound port accepted")
	}
	c = DefaultConfig()
	c.ExcludeOutboundCIDRs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	if _, err := c.Rulesets(); err == nil {
		t.Error("excluding 0.0.0.0/0 accepted")
	}
}

// The expressions are those nft writes for the same rule text.
func TestExprs(t *testing.T) {
	r := Rule{
		Matches: []Match{
			{Kind: MatchOIFName, Iface: "lo"},
			{Kind: MatchDAddr, Not: true, Prefix: netip.MustParsePrefix("10.96.0.0/12")},
			{Kind: MatchUID, ID: 1337},
			{Kind: MatchDPort, Port: 15008, Not: true},
		},
		Verdict: Verdict{Kind: Redirect, Port: 15006},
	}
	got, err := r.Exprs(IPv4)
	if err != nil {
		t.Fatal(err)
	}
	uid := binary.NativeEndian.AppendUint32(nil, 1337)
	want := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{'l', 'o', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 240, 0, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{10, 96, 0, 0}},
		&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: uid},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0x3a, 0xa0}},
		&expr.Immediate{Register: 1, Data: []byte{0x3a, 0x9e}},
		&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
	}
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w expr.Any
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("expr %d: got %#v, want %#v", i, g, w)
			}
		}
	}
	v6 := Rule{Matches: []Match{{Kind: MatchSAddr, Prefix: netip.MustParsePrefix("::6/128")}}, Verdict: Verdict{Kind: Return}}
	got, err = v6.Exprs(IPv6)
	if err != nil {
		t.Fatal(err)
	}
	if p := got[0].(*expr.Payload); p.Offset != 8 || p.Len != 16 || len(got) != 3 {
		t.Errorf("ip6 saddr: %#v", got)
	}
	if _, err := v6.Exprs(IPv4); err == nil {
		t.Error("an IPv6 address compiled into an ip table")
	}
}
