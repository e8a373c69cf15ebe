package controlplane

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/config"
	kstore "github.com/weft-mesh/weft/store/kube"
)

// statusRetry is how soon statuses that failed to write are tried again;
// statusResync is how often every status is checked even without a
// model change (someone may have edited one by hand).
const (
	statusRetry  = 5 * time.Second
	statusResync = 5 * time.Minute
)

// writeStatuses keeps each custom resource's status.validationMessages
// equal to what the control plane finds about it: the analysis of the
// current model, or why the store refused it. Level-triggered: every pass
// compares every object's desired status with the cluster's and writes
// the differences. It runs while this replica leads.
func (c *ControlPlane) writeStatuses(term context.Context) {
	resync := time.NewTicker(statusResync)
	defer resync.Stop()
	warned := map[string]bool{} // CRDs without a status subresource, reported once
	for {
		changed := c.snapshotChanged()
		failed := c.syncStatuses(term, warned)
		var retry <-chan time.Time
		if failed {
			retry = time.After(statusRetry)
		}
		select {
		case <-term.Done():
			return
		case <-changed:
		case <-retry:
		case <-resync.C:
		}
	}
}

// syncStatuses makes one pass over every custom resource and reports
// whether a write failed.
func (c *ControlPlane) syncStatuses(ctx context.Context, warned map[string]bool) (failed bool) {
	snap := c.snap.Load()
	found := map[config.Key][]kstore.StatusMessage{}
	for _, m := range analyze.Analyze(snap) {
		found[m.Object] = append(found[m.Object], statusMessage(m))
	}
	for _, r := range c.kstore.Resources() {
		if ctx.Err() != nil {
			return false
		}
		var msgs []kstore.StatusMessage
		gen := r.Generation
		switch {
		case r.Refused != nil:
			code := analyze.CodeInvalidObject
			if r.Shadowed {
				code = analyze.CodeShadowedServiceEntry
			}
			msgs = []kstore.StatusMessage{{Level: "ERROR", Code: code, Name: analyze.Name(code), Description: r.Refused.Error()}}
		default:
			o := snap.Object(r.Key.Kind, r.Key.Namespace, r.Key.Name)
			if o == nil {
				continue // not in this model yet: the next rebuild brings it
			}
			gen, msgs = o.Meta.Generation, found[r.Key]
		}
		_, err := c.kstore.WriteStatus(ctx, r.Key, gen, msgs)
		switch {
		case errors.Is(err, kstore.ErrNoStatusSubresource):
			if crd := string(r.Key.Kind); !warned[crd] {
				warned[crd] = true
				c.log.Warn("analysis is not written to status: the CRD has no status subresource", "kind", r.Key.Kind, "err", err)
			}
		case err != nil && ctx.Err() == nil:
			failed = true
			c.log.Debug("write status; will retry", "object", r.Key.String(), "err", err)
		}
	}
	return failed
}

// statusMessage is an analysis finding in status.validationMessages form.
func statusMessage(m analyze.Message) kstore.StatusMessage {
	desc := m.Text
	if m.Field != "" {
		desc = m.Field + ": " + m.Text
	}
	return kstore.StatusMessage{Level: strings.ToUpper(string(m.Level)), Code: m.Code, Name: analyze.Name(m.Code), Description: desc}
}
