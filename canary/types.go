// Package canary is weft's progressive delivery: Flagger's Canary analysis
// run by the control plane. For each Canary it reads the target's revisions
// (a Target), routes traffic between the primary and the canary by writing
// Istio VirtualService and DestinationRule objects through store.Store (the
// Router), judges the canary with metric checks read from weft's own
// telemetry or a Prometheus, calls the Canary's webhooks, and records its
// progress in the Canary's status, also through the store. Nothing here
// depends on where the configuration lives: the local store and the
// Kubernetes source drive the same engine. README.md states the semantics.
package canary

import (
	"context"
	"time"

	"github.com/weft-mesh/weft/config"
)

// Phases of a Canary, as Flagger names them.
const (
	PhaseInitializing     = "Initializing"
	PhaseInitialized      = "Initialized"
	PhaseWaiting          = "Waiting"
	PhaseProgressing      = "Progressing"
	PhaseWaitingPromotion = "WaitingPromotion"
	PhasePromoting        = "Promoting"
	PhaseFinalising       = "Finalising"
	PhaseSucceeded        = "Succeeded"
	PhaseFailed           = "Failed"
)

// Defaults, Flagger's.
const (
	DefaultInterval         = 60 * time.Second
	DefaultMetricInterval   = "1m"
	DefaultProgressDeadline = 600 * time.Second
	DefaultWebhookTimeout   = 10 * time.Second
	totalWeight             = 100
)

// AnnotationOwner marks an object weft generated for a Canary (the value
// is the Canary's name, in the object's namespace). While that Canary
// exists, the object is the Canary's to write: the API refuses user
// changes to it (see Guard).
const AnnotationOwner = "weft.io/canary"

// Target is what a Canary's targetRef names, seen the way the analysis
// needs it: which revision is the primary, which one (if any) is a new
// canary, whether they are ready, and the services that select each. The
// local target (Local) reads instances from the registry, grouped by
// their version label; a Kubernetes target reads the Deployment and
// manages NAME-primary as Flagger does. Every method is idempotent and is
// called again at the next interval if it fails.
type Target interface {
	// Observe reads the target's current state; it writes nothing. st is
	// the Canary's recorded status.
	Observe(ctx context.Context, cd *config.Object) (Observation, error)
	// Sync creates or updates the primary and canary services so that
	// they select revisions primary and canary.
	Sync(ctx context.Context, cd *config.Object, primary, canary string) error
	// Promote makes revision the primary one: from now on the primary
	// service selects it, and the previous primary is retired (never taken
	// for a new canary again).
	Promote(ctx context.Context, cd *config.Object, revision string) error
	// ScaleToZero stops the canary's instances taking work after a release
	// ended (Kubernetes: replicas 0). Locally weft does not own the
	// processes: traffic to them is already 0, and it does nothing.
	ScaleToZero(ctx context.Context, cd *config.Object) error
	// ScaleFromZero brings the canary back for a new analysis.
	ScaleFromZero(ctx context.Context, cd *config.Object) error
}

// Observation is a Target's state.
type Observation struct {
	// Primary is the primary revision's ID, "" when there is none yet.
	Primary string
	// Candidate is the revision that would be the next canary: not the
	// primary, not retired; "" when there is none.
	Candidate string
	// Revisions are every revision seen, by ID.
	Revisions map[string]Revision
	// Problem says why the target cannot be used at all (no service, no
	// way to tell the primary); "" when it can.
	Problem string
	// CandidateProblem says why no new release can start although
	// something new runs (two new versions at once, ...).
	CandidateProblem string
	// Hosts are the services the Router routes between.
	Hosts Hosts
}

// Revision is one version of the target's workload.
type Revision struct {
	ID string `json:"id"`
	// Ready reports that enough of its instances are ready
	// (analysis.primaryReadyThreshold / canaryReadyThreshold); NotReady
	// says why not.
	Ready    bool   `json:"ready"`
	NotReady string `json:"notReady,omitempty"`
	// Instances is the number of instances seen.
	Instances int `json:"instances"`
	// Workloads are its destination_workload values in telemetry: what a
	// MetricTemplate's {{ target }} matches.
	Workloads []string `json:"workloads,omitempty"`
	// MetricLabels select the revision's traffic in weft's telemetry, as
	// Istio metric labels (destination_app, destination_version, ...).
	MetricLabels map[string]string `json:"metricLabels,omitempty"`
}

// Hosts names the services of a release.
type Hosts struct {
	// Short names, in the Canary's namespace.
	Apex    string `json:"apex"`
	Primary string `json:"primary"`
	Canary  string `json:"canary"`
	Port    uint32 `json:"port"`
}

// Clock tells the time; tests drive a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
