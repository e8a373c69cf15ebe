package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
)

// waitFlags are --wait and --timeout, as apply, delete and shift take
// them.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) register(cmd *cobra.Command, wait bool, what string) {
	cmd.Flags().BoolVar(&w.wait, "wait", wait, "wait until every connected proxy has ACKed the "+what)
	cmd.Flags().DurationVar(&w.timeout, "timeout", 30*time.Second, "how long --wait waits before failing")
}

// waitSynced polls the control plane until every connected proxy has
// ACKed the configuration of store revision rev (0: the current one,
// pinned at the first answer), as `kubectl rollout status` waits for a
// rollout. It fails when a proxy NACKs that configuration, or after
// timeout, naming the proxies that have not ACKed and why.
func waitSynced(ctx context.Context, c *client.Client, rev int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *client.SyncResponse
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		resp, err := c.Sync(ctx, rev)
		switch {
		case err == nil:
			last, rev = resp, resp.Revision
		case ctx.Err() == nil:
			return explainAPIError(err)
		}
		if err == nil {
			if nacked := proxiesIn(resp, api.SyncNACKed); len(nacked) > 0 {
				return fmt.Errorf("revision %d was rejected by %s", rev, strings.Join(nacked, "; "))
			}
			if resp.Synced {
				fmt.Printf("revision %d in effect: %s ACKed it\n", rev, countOf(len(resp.Proxies), "proxy", "proxies"))
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && last != nil {
				pending := proxiesIn(last, api.SyncPending)
				return fmt.Errorf("timed out after %v waiting for revision %d: not ACKed by %d of %s: %s",
					timeout, rev, len(pending), countOf(len(last.Proxies), "proxy", "proxies"), strings.Join(pending, "; "))
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %v waiting for revision %d: %v", timeout, rev, err)
			}
			return fmt.Errorf("interrupted while waiting for revision %d", rev)
		case <-time.After(delay):
		}
	}
}

// proxiesIn names the proxies in state, with what they are at.
func proxiesIn(r *client.SyncResponse, state string) []string {
	var out []string
	for _, p := range r.Proxies {
		if p.State != state {
			continue
		}
		s := p.Name + "." + p.Namespace
		if p.Detail != "" {
			s += " (" + p.Detail + ")"
		}
		out = append(out, s)
	}
	return out
}

// countOf renders n with the word's singular or plural.
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
