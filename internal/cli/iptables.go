package cli

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/weft-mesh/weft/proxy/capture"
)

// iptablesFlags are `weft iptables`' flags, named and lettered as
// istio-iptables' (the injector passes Istio's annotations through them).
type iptablesFlags struct {
	outboundPort, inboundPort uint16
	uid, gid                  string
	inboundInclude            string
	inboundExclude            string
	outboundCIDRInclude       string
	outboundCIDRExclude       string
	outboundPortInclude       string
	outboundPortExclude       string
	ipv6, dryRun, cleanup     bool
	netns                     string
}

func newIPTablesCmd() *cobra.Command {
	f := &iptablesFlags{}
	cmd := &cobra.Command{
		Use:   "iptables",
		Short: "Set up transparent capture: redirect this network namespace's TCP to the sidecar",
		Long: `Writes the netfilter rules of a captured workload (what Istio's istio-iptables
writes) into the nf_tables table "weft", through netlink: outbound TCP from
any user but the sidecar's goes to the outbound capture port (15001), inbound
TCP but the sidecar's own ports (15000, 15020, 15021, 15090) to the inbound
capture port (15006). Running it again replaces the table; --cleanup removes
it. Needs CAP_NET_ADMIN in the namespace (the injected init container has it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			nsFd, closeNS, err := openNetNS(f.netns)
			if err != nil {
				return err
			}
			defer closeNS()
			if f.cleanup {
				if f.dryRun {
					fmt.Fprintf(out, "delete table ip %s\ndelete table ip6 %s\n", capture.TableName, capture.TableName)
					return nil
				}
				if err := capture.Cleanup(nsFd); err != nil {
					return err
				}
				fmt.Fprintf(out, "weft iptables: table %s removed\n", capture.TableName)
				return nil
			}
			cfg, err := f.config()
			if err != nil {
				return err
			}
			rs, err := cfg.Rulesets()
			if err != nil {
				return err
			}
			if f.dryRun {
				return printRules(out, rs)
			}
			if err := capture.Apply(rs, nsFd); err != nil {
				return err
			}
			fmt.Fprintf(out, "weft iptables: capture rules applied\n")
			return printRules(out, rs)
		},
	}
	fl := cmd.Flags()
	fl.Uint16VarP(&f.outboundPort, "envoy-port", "p", 15001, "port outbound TCP is redirected to")
	fl.Uint16VarP(&f.inboundPort, "inbound-capture-port", "z", 15006, "port inbound TCP is redirected to")
	fl.StringVarP(&f.uid, "proxy-uid", "u", "1337", "user ID of the sidecar, whose traffic is never captured")
	fl.StringVarP(&f.gid, "proxy-gid", "g", "", "group ID of the sidecar, whose traffic is never captured (default: the user ID; \"-\": none)")
	fl.StringVarP(&f.inboundInclude, "inbound-ports", "b", "*", "inbound ports to capture, comma-separated, \"*\" for all, \"\" for none (includeInboundPorts)")
	fl.StringVarP(&f.inboundExclude, "local-exclude-ports", "d", "", "inbound ports not to capture, with \"*\" (excludeInboundPorts); 15000, 15020, 15021 and 15090 always are")
	fl.StringVarP(&f.outboundCIDRInclude, "outbound-ip-ranges-include", "i", "*", "destination ranges to capture, comma-separated CIDRs, \"*\" for all (includeOutboundIPRanges)")
	fl.StringVarP(&f.outboundCIDRExclude, "outbound-ip-ranges-exclude", "x", "", "destination ranges not to capture (excludeOutboundIPRanges)")
	fl.StringVarP(&f.outboundPortInclude, "outbound-ports", "q", "", "destination ports to capture whatever the ranges say (includeOutboundPorts)")
	fl.StringVarP(&f.outboundPortExclude, "local-outbound-ports-exclude", "o", "", "destination ports not to capture (excludeOutboundPorts)")
	fl.BoolVar(&f.ipv6, "ipv6", false, "also capture IPv6 (a table of family ip6)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the rules (nft syntax) instead of applying them")
	fl.BoolVar(&f.cleanup, "cleanup", false, "remove the rules instead")
	fl.StringVar(&f.netns, "netns", "", "network namespace to write to (a path such as /var/run/netns/NAME; default: this process's)")
	return cmd
}

// config reads the flags into a capture.Config, naming the flag at fault.
func (f *iptablesFlags) config() (capture.Config, error) {
	c := capture.DefaultConfig()
	c.OutboundPort, c.InboundPort, c.IPv6 = f.outboundPort, f.inboundPort, f.ipv6
	uid, err := strconv.ParseUint(f.uid, 10, 32)
	if err != nil {
		return c, fmt.Errorf("--proxy-uid %q: want a numeric user ID", f.uid)
	}
	c.ProxyUID, c.ProxyGID = uint32(uid), uint32(uid)
	switch f.gid {
	case "":
	case "-":
		c.ProxyGID = 0
	default:
		gid, err := strconv.ParseUint(f.gid, 10, 32)
		if err != nil || gid == 0 {
			return c, fmt.Errorf("--proxy-gid %q: want a numeric group ID other than 0, or \"-\"", f.gid)
		}
		c.ProxyGID = uint32(gid)
	}
	flagErr := func(name string, err error) error { return fmt.Errorf("--%s: %w", name, err) }
	if c.InboundPorts, err = capture.ParsePorts(f.inboundInclude); err != nil {
		return c, flagErr("inbound-ports", err)
	}
	if c.ExcludeInboundPorts, err = capture.ParsePortList(f.inboundExclude); err != nil {
		return c, flagErr("local-exclude-ports", err)
	}
	if c.OutboundCIDRs, err = capture.ParseCIDRs(f.outboundCIDRInclude); err != nil {
		return c, flagErr("outbound-ip-ranges-include", err)
	}
	if c.ExcludeOutboundCIDRs, err = capture.ParseCIDRList(f.outboundCIDRExclude); err != nil {
		return c, flagErr("outbound-ip-ranges-exclude", err)
	}
	if c.OutboundPorts, err = capture.ParsePortList(f.outboundPortInclude); err != nil {
		return c, flagErr("outbound-ports", err)
	}
	if c.ExcludeOutboundPorts, err = capture.ParsePortList(f.outboundPortExclude); err != nil {
		return c, flagErr("local-outbound-ports-exclude", err)
	}
	return c, nil
}

func printRules(w io.Writer, rs []*capture.Ruleset) error {
	for _, r := range rs {
		if _, err := io.WriteString(w, r.String()); err != nil {
			return err
		}
	}
	return nil
}

// openNetNS opens the namespace at path, or returns -1 for the caller's own.
func openNetNS(path string) (int, func(), error) {
	if path == "" {
		return -1, func() {}, nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("--netns: %w", err)
	}
	return fd, func() { unix.Close(fd) }, nil
}
