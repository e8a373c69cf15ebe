package controlplane

import (
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/config"
)

// proxyHealth is what the control plane knows of its proxies' xDS streams:
// which are connected, and since when the others have been gone. A
// sidecar's endpoints leave load balancing (EDS health_status UNHEALTHY)
// as soon as its stream drops, and come back if it reconnects before the
// reaper removes its WorkloadEntry. A proxy not seen since this control
// plane started counts as connected until the reaper's grace ends: after a
// restart, every proxy gets time to reconnect.
type proxyHealth struct {
	mu     sync.Mutex
	states map[string]streamState // by node ID
	// down is a copy of the gone node IDs, read lock-free by every
	// generation.
	down atomic.Pointer[map[string]bool]
	// downs counts the changes of down, for translate.Options.DownEpoch.
	downs atomic.Uint64
}

type streamState struct {
	connected bool
	since     time.Time // when it connected or its last stream ended
}

func newProxyHealth() *proxyHealth {
	h := &proxyHealth{states: map[string]streamState{}}
	h.down.Store(&map[string]bool{})
	return h
}

// set records a node's first stream starting or last one ending.
func (h *proxyHealth) set(id string, connected bool, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.states[id] = streamState{connected: connected, since: now}
	h.publish()
}

// publish refreshes the lock-free copy; callers hold h.mu.
func (h *proxyHealth) publish() {
	down := map[string]bool{}
	for id, st := range h.states {
		if !st.connected {
			down[id] = true
		}
	}
	if !maps.Equal(down, *h.down.Load()) {
		h.down.Store(&down)
		h.downs.Add(1)
	}
}

// epoch changes whenever isDown's answers may have: the translator
// regenerates the endpoints it made with the previous answers.
func (h *proxyHealth) epoch() uint64 { return h.downs.Load() }

// isDown reports whether node id's stream dropped and it has not
// reconnected. It is translate.Options.ProxyDown.
func (h *proxyHealth) isDown(id string) bool { return (*h.down.Load())[id] }

// state returns what is known of node id; ok is false when it has not
// been seen since the control plane started.
func (h *proxyHealth) state(id string) (streamState, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.states[id]
	return st, ok
}

// forget drops the gone nodes not in keep (their WorkloadEntries are
// gone too), so node IDs of past instances do not pile up.
func (h *proxyHealth) forget(keep map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.states)
	for id, st := range h.states {
		if !st.connected && !keep[id] {
			delete(h.states, id)
		}
	}
	if len(h.states) != n {
		h.publish()
	}
}

// onStream is the xDS server's OnStream: a registered sidecar's endpoints
// change health with its stream, so every proxy gets new endpoints.
func (c *ControlPlane) onStream(id string, connected bool) {
	c.health.set(id, connected, time.Now())
	if !c.registered(id) {
		return
	}
	what := "lost its xDS stream: its endpoints are unhealthy"
	if connected {
		what = "is connected: its endpoints are healthy"
	}
	c.log.Info("sidecar "+what, "node", id)
	c.xds.Push(fmt.Sprintf("sidecar %s connected=%v", id, connected))
}

// registered reports whether a WorkloadEntry names node id as the sidecar
// that registered it.
func (c *ControlPlane) registered(id string) bool {
	snap := c.snap.Load()
	if snap == nil {
		return false
	}
	for _, o := range snap.Objects(config.KindWorkloadEntry) {
		if o.Meta.Annotations[config.AnnotationProxy] == id {
			return true
		}
	}
	return false
}
