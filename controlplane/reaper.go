package controlplane

import (
	"context"
	"time"

	"github.com/weft-mesh/weft/config"
)

// reap removes WorkloadEntries registered by a sidecar (config.AnnotationProxy)
// whose xDS stream has been gone longer than ReapAfter. Time starts at
// control-plane start, so a restart gives every proxy a full grace period
// to reconnect.
func (c *ControlPlane) reap(ctx context.Context) {
	start := time.Now()
	lastSeen := map[string]time.Time{}
	tick := time.NewTicker(c.opts.ReapAfter / 6)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		for _, ci := range c.xds.Connections() {
			lastSeen[ci.ID] = now
		}
		var gone []config.Key
		for _, o := range c.snap.Load().Objects(config.KindWorkloadEntry) {
			id := o.Meta.Annotations[config.AnnotationProxy]
			if id == "" {
				continue
			}
			seen, ok := lastSeen[id]
			if !ok {
				seen = start
			}
			if now.Sub(seen) > c.opts.ReapAfter {
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
	}
}
