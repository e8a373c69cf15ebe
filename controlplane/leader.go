package controlplane

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseName is the Lease, in the control plane's namespace, that elects
// the replica which writes to the cluster.
const LeaseName = "weft-controlplane"

// Default election timings: a leader that stops renewing is replaced
// within LeaseDuration + RetryPeriod; one that shuts down releases the
// Lease at once.
const (
	DefaultLeaseDuration = 10 * time.Second
	DefaultRenewDeadline = 7 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// leadership tracks whether this replica leads and runs the writers
// registered with OnLeader for each term.
type leadership struct {
	mu    sync.Mutex
	term  context.Context // the current term; nil when not leading
	hooks []func(context.Context)
}

// IsLeader reports whether this replica is the leader: the only one that
// writes to the cluster (status, root certificate ConfigMaps, the canary
// controller). A local control plane always leads.
func (c *ControlPlane) IsLeader() bool {
	c.leader.mu.Lock()
	defer c.leader.mu.Unlock()
	return c.leader.term != nil && c.leader.term.Err() == nil
}

// OnLeader registers a writer: f runs in its own goroutine at the start of
// every term this replica leads (at once if it leads now) and must return
// when its context ends, which is when the term does (the Lease is lost or
// the control plane stops). A local control plane has one term, its life.
func (c *ControlPlane) OnLeader(f func(ctx context.Context)) {
	c.leader.mu.Lock()
	defer c.leader.mu.Unlock()
	c.leader.hooks = append(c.leader.hooks, f)
	if c.leader.term != nil && c.leader.term.Err() == nil {
		go f(c.leader.term)
	}
}

// startTerm starts a term: every registered writer runs until term ends.
func (c *ControlPlane) startTerm(term context.Context) {
	c.leader.mu.Lock()
	defer c.leader.mu.Unlock()
	c.leader.term = term
	for _, f := range c.leader.hooks {
		go f(term)
	}
}

// endTerm ends the term (its context is already cancelled).
func (c *ControlPlane) endTerm() {
	c.leader.mu.Lock()
	defer c.leader.mu.Unlock()
	c.leader.term = nil
}

// elect campaigns for the Lease until ctx ends, and again each time a term
// ends while the control plane runs; it releases the Lease on shutdown so
// another replica takes over without waiting for it to expire.
func (c *ControlPlane) elect(ctx context.Context) {
	defer close(c.electDone)
	k := c.kube
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: k.Namespace},
				Client:     k.Clients.Kube.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: k.Identity},
			},
			LeaseDuration:   k.LeaseDuration,
			RenewDeadline:   k.RenewDeadline,
			RetryPeriod:     k.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(term context.Context) {
					c.log.Info("leading: this replica writes to the cluster", "identity", k.Identity, "lease", k.Namespace+"/"+LeaseName)
					c.startTerm(term)
				},
				OnStoppedLeading: func() {
					c.endTerm()
					if ctx.Err() == nil {
						c.log.Warn("lost the lease; following", "identity", k.Identity)
					}
				},
				OnNewLeader: func(id string) {
					if id != k.Identity {
						c.log.Info("following", "leader", id)
					}
				},
			},
		})
		if err != nil {
			c.log.Error("leader election", "err", err)
			return
		}
		le.Run(ctx)
	}
}
