package capture

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Apply installs rulesets in the kernel through netlink (nf_tables), each
// replacing its table whole in one transaction: the table is created if
// missing, deleted and written anew, so running Apply again (a restarted
// init container) leaves exactly one copy of the rules, and a failure
// leaves what was there before. netnsFd, when not negative, is a network
// namespace to write to instead of the caller's.
func Apply(rulesets []*Ruleset, netnsFd int) error {
	c, err := conn(netnsFd)
	if err != nil {
		return err
	}
	for _, rs := range rulesets {
		t := &nftables.Table{Name: rs.Table, Family: rs.Family.nft()}
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		chains := map[string]*nftables.Chain{}
		// Chains first: a jump names a chain that must exist already.
		for _, ch := range rs.Chains {
			nc := &nftables.Chain{Name: ch.Name, Table: t}
			switch ch.Hook {
			case HookPrerouting:
				nc.Type, nc.Hooknum, nc.Priority = nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest
			case HookOutput:
				nc.Type, nc.Hooknum, nc.Priority = nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest
			}
			chains[ch.Name] = c.AddChain(nc)
		}
		for _, ch := range rs.Chains {
			for i, r := range ch.Rules {
				exprs, err := r.Exprs(rs.Family)
				if err != nil {
					return fmt.Errorf("capture: table %s %s: chain %s: rule %d: %w", rs.Family, rs.Table, ch.Name, i, err)
				}
				nr := &nftables.Rule{Table: t, Chain: chains[ch.Name], Exprs: exprs}
				if r.Comment != "" {
					nr.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
				}
				c.AddRule(nr)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("capture: write nftables rules: %w", err)
	}
	return nil
}

// Cleanup deletes weft's tables (both families), if present.
func Cleanup(netnsFd int) error {
	c, err := conn(netnsFd)
	if err != nil {
		return err
	}
	for _, f := range []Family{IPv4, IPv6} {
		t := &nftables.Table{Name: TableName, Family: f.nft()}
		c.AddTable(t) // so the delete cannot fail on a missing table
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("capture: delete nftables table %s: %w", TableName, err)
	}
	return nil
}

// Installed returns the number of rules in each chain of weft's table of
// family f, nil when the table does not exist.
func Installed(f Family, netnsFd int) (map[string]int, error) {
	c, err := conn(netnsFd)
	if err != nil {
		return nil, err
	}
	chains, err := c.ListChainsOfTableFamily(f.nft())
	if err != nil {
		return nil, fmt.Errorf("capture: list chains: %w", err)
	}
	var out map[string]int
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("capture: list rules of chain %s: %w", ch.Name, err)
		}
		if out == nil {
			out = map[string]int{}
		}
		out[ch.Name] = len(rules)
	}
	return out, nil
}

func conn(netnsFd int) (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if netnsFd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("capture: nftables: %w", err)
	}
	return c, nil
}

func (f Family) nft() nftables.TableFamily {
	if f == IPv6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

// Exprs compiles r into nf_tables expressions, as nft itself would: each
// match loads a field into register 1 and compares it.
func (r Rule) Exprs(f Family) ([]expr.Any, error) {
	var out []expr.Any
	for _, m := range r.Matches {
		e, err := m.exprs(f)
		if err != nil {
			return nil, err
		}
		out = append(out, e...)
	}
	switch r.Verdict.Kind {
	case Return:
		out = append(out, &expr.Verdict{Kind: expr.VerdictReturn})
	case Jump:
		out = append(out, &expr.Verdict{Kind: expr.VerdictJump, Chain: r.Verdict.Chain})
	case Redirect:
		out = append(out,
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.Verdict.Port)},
			&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED})
	default:
		return nil, fmt.Errorf("unknown verdict %d", r.Verdict.Kind)
	}
	return out, nil
}

func (m Match) exprs(f Family) ([]expr.Any, error) {
	op := expr.CmpOpEq
	if m.Not {
		op = expr.CmpOpNeq
	}
	cmp := func(data []byte) *expr.Cmp { return &expr.Cmp{Op: op, Register: 1, Data: data} }
	switch m.Kind {
	case MatchTCP:
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmp([]byte{unix.IPPROTO_TCP})}, nil
	case MatchOIFName:
		if len(m.Iface) >= unix.IFNAMSIZ {
			return nil, fmt.Errorf("interface name %q too long", m.Iface)
		}
		name := make([]byte, unix.IFNAMSIZ)
		copy(name, m.Iface)
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, cmp(name)}, nil
	case MatchSAddr, MatchDAddr:
		return addrExprs(f, m.Kind == MatchDAddr, m.Prefix, op)
	case MatchDPort:
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			cmp(binaryutil.BigEndian.PutUint16(m.Port)),
		}, nil
	case MatchUID:
		return []expr.Any{&expr.Meta{Key: expr.MetaKeySKUID, Register: 1}, cmp(binaryutil.NativeEndian.PutUint32(m.ID))}, nil
	case MatchGID:
		return []expr.Any{&expr.Meta{Key: expr.MetaKeySKGID, Register: 1}, cmp(binaryutil.NativeEndian.PutUint32(m.ID))}, nil
	}
	return nil, fmt.Errorf("unknown match %d", m.Kind)
}

// addrExprs loads the source or destination address and compares its
// first p.Bits() bits with p.
func addrExprs(f Family, dst bool, p netip.Prefix, op expr.CmpOp) ([]expr.Any, error) {
	if familyOf(p) != f {
		return nil, fmt.Errorf("address %s in a table of family %s", p, f)
	}
	size, offset := uint32(4), uint32(12) // IPv4 saddr
	if f == IPv6 {
		size, offset = 16, 8
	}
	if dst {
		offset += size
	}
	out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size}}
	if p.Bits() < int(size*8) {
		mask := make([]byte, size)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)})
	}
	return append(out, &expr.Cmp{Op: op, Register: 1, Data: p.Masked().Addr().AsSlice()}), nil
}
