package capture

import (
	"fmt"
	"strings"
)

// String renders rs in nft's own syntax, as `nft list table` prints it and
// `nft -f` reads it: what `weft iptables --dry-run` shows.
func (rs *Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", rs.Family, rs.Table)
	for i, c := range rs.Chains {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		switch c.Hook {
		case HookPrerouting:
			b.WriteString("\t\ttype nat hook prerouting priority -100; policy accept;\n")
		case HookOutput:
			b.WriteString("\t\ttype nat hook output priority -100; policy accept;\n")
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.render(rs.Family))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func (r Rule) render(f Family) string {
	var parts []string
	for _, m := range r.Matches {
		parts = append(parts, m.render(f))
	}
	parts = append(parts, r.Verdict.String())
	if r.Comment != "" {
		parts = append(parts, fmt.Sprintf("comment %q", r.Comment))
	}
	return strings.Join(parts, " ")
}

func (m Match) render(f Family) string {
	op := " "
	if m.Not {
		op = " != "
	}
	switch m.Kind {
	case MatchTCP:
		return "meta l4proto" + op + "tcp"
	case MatchOIFName:
		return "oifname" + op + fmt.Sprintf("%q", m.Iface)
	case MatchSAddr, MatchDAddr:
		dir := "saddr"
		if m.Kind == MatchDAddr {
			dir = "daddr"
		}
		v := m.Prefix.String()
		if m.Prefix.IsSingleIP() {
			v = m.Prefix.Addr().String()
		}
		return f.String() + " " + dir + op + v
	case MatchDPort:
		return fmt.Sprintf("tcp dport%s%d", op, m.Port)
	case MatchUID:
		return fmt.Sprintf("meta skuid%s%d", op, m.ID)
	case MatchGID:
		return fmt.Sprintf("meta skgid%s%d", op, m.ID)
	}
	return fmt.Sprintf("<match %d>", m.Kind)
}

// String renders the verdict as nft does.
func (v Verdict) String() string {
	switch v.Kind {
	case Return:
		return "return"
	case Jump:
		return "jump " + v.Chain
	case Redirect:
		return fmt.Sprintf("redirect to :%d", v.Port)
	}
	return fmt.Sprintf("<verdict %d>", v.Kind)
}
