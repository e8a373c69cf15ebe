package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/controlplane"
)

// summaryLine is one "what  where" line of `weft up`'s summary.
type summaryLine struct{ what, value string }

// printUpSummary prints what `weft up` started and where, the mesh's
// doors (where the credentials are, never what they are) and where the
// log goes, instead of the start-up log lines.
func printUpSummary(w io.Writer, g *globals, lines []summaryLine, cp *controlplane.ControlPlane) {
	lines = append(lines,
		summaryLine{"identity", fmt.Sprintf("trust domain %s, CA root %s", cp.TrustDomain(), cp.CA().RootFile())},
		summaryLine{"tokens", fmt.Sprintf("proxies join with %s; API writes need %s",
			joinWith(g.stateDir, cp), filepath.Join(g.stateDir, controlplane.APITokenFile))},
		summaryLine{"log", logSummary(g)},
	)
	fmt.Fprintln(w, "weft is up")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range lines {
		fmt.Fprintf(tw, "  %s\t%s\n", l.what, l.value)
	}
	tw.Flush()
}

// logSummary says where the log goes.
func logSummary(g *globals) string {
	s := "level " + g.terminalLogLevel() + " here"
	if g.terminalLogLevel() == "warn" {
		s = "warnings only here (--log-level info or debug shows more)"
	}
	if g.logOut != nil {
		s += fmt.Sprintf("; level %s in %s", g.logLevel, g.logOut.Name())
	} else {
		s += "; --log-file FILE keeps it all"
	}
	return s
}

// waitDemoRegistered waits, up to timeout, until want workloads in
// namespace ns are registered by sidecars that are connected now (a
// registration left by an earlier run that stopped uncleanly does not
// count), and returns how many are.
func waitDemoRegistered(ctx context.Context, c *client.Client, ns string, want int, timeout time.Duration) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n := 0
	for n < want {
		n = registeredNow(ctx, c, ns)
		if n >= want {
			break
		}
		select {
		case <-ctx.Done():
			return n
		case <-time.After(100 * time.Millisecond):
		}
	}
	return n
}

// registeredNow counts the WorkloadEntries in ns whose sidecar is
// connected.
func registeredNow(ctx context.Context, c *client.Client, ns string) int {
	proxies, err := c.Proxies(ctx)
	if err != nil {
		return 0
	}
	connected := map[string]bool{}
	for _, p := range proxies {
		if p.Connected {
			connected[p.ID] = true
		}
	}
	list, err := c.List(ctx, string(config.KindWorkloadEntry), ns, "")
	if err != nil {
		return 0
	}
	n := 0
	for _, o := range list.Items {
		if connected[o.Meta.Annotations[config.AnnotationProxy]] {
			n++
		}
	}
	return n
}
