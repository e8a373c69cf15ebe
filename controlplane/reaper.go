package controlplane

import (
	"context"
	"time"

	"github.com/weft-mesh/weft/config"
)

// reapTick bounds how late after its grace period an orphaned workload is
// removed.
func reapTick(reapAfter time.Duration) time.Duration {
	return min(max(reapAfter/10, 100*time.Millisecond), time.Second)
}

// reap removes WorkloadEntries registered by a sidecar (config.AnnotationProxy)
// whose xDS stream has been gone for ReapAfter. A sidecar not seen since
// the control plane started is timed from the start, so a restart gives
// every proxy a full grace period to reconnect. (Its endpoints left load
// balancing when the stream dropped; see proxyHealth.)
func (c *ControlPlane) reap(ctx context.Context) {
	start := time.Now()
	tick := time.NewTicker(reapTick(c.opts.ReapAfter))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		var gone []config.Key
		keep := map[string]bool{}
		for _, o := range c.snap.Load().Objects(config.KindWorkloadEntry) {
			id := o.Meta.Annotations[config.AnnotationProxy]
			if id == "" {
				continue
			}
			keep[id] = true
			since := start
			if st, ok := c.health.state(id); ok {
				if st.connected {
					continue
				}
				since = st.since
			}
			if now.Sub(since) >= c.opts.ReapAfter {
				gone = append(gone, o.Key())
			}
		}
		for _, k := range gone {
			// One at a time: another writer (weft run's own deregistration)
			// may have removed some already.
			if _, err := c.store.Delete(ctx, []config.Key{k}); err != nil {
				c.log.Debug("reap workload", "key", k, "err", err)
				continue
			}
			c.log.Info("removed workload whose sidecar is gone", "workload", k.String(), "after", c.opts.ReapAfter)
		}
		c.health.forget(keep)
	}
}
