package canary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/store"
)

// Options configure a Controller.
type Options struct {
	// Store holds the Canaries and MetricTemplates and takes the routing
	// objects and statuses the controller writes. It must be a
	// store.StatusWriter.
	Store store.Store
	// Target reads and drives the workloads (Local in local mode).
	Target Target
	// Telemetry feeds the builtin metrics; nil fails them.
	Telemetry Telemetry
	// HTTP calls webhooks and Prometheus; nil means a default client.
	HTTP *http.Client
	// Log receives events and errors; nil discards them.
	Log *slog.Logger
	// Clock tells the time; nil means the wall clock.
	Clock Clock
	// Resync is how often the list of Canaries is read again even when
	// the store did not change (default 5s).
	Resync time.Duration
}

// Controller runs the analysis of every Canary in the store: one job per
// Canary, advancing it at its analysis interval. Only one controller may
// write a store's canaries at a time (in Kubernetes, the leader runs it).
type Controller struct {
	opts   Options
	log    *slog.Logger
	clock  Clock
	router *Router
	http   *http.Client

	eventQueue chan func(context.Context)

	mu       sync.Mutex
	jobs     map[config.Key]*job
	runtimes map[config.Key]*runtime
}

// job runs one Canary: an advance at every tick, and the manual commands
// in between, one at a time.
type job struct {
	interval time.Duration
	cmds     chan command
	stop     chan struct{}
	done     chan struct{}
}

type command struct {
	action string
	reply  chan error
}

// Manual commands (`weft canary ACTION NAME`).
const (
	ActionPromote = "promote"
	ActionAbort   = "abort"
	ActionResume  = "resume"
)

// New returns a Controller; Run starts it.
func New(opts Options) *Controller {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Transport: &http.Transport{Proxy: nil}}
	}
	if opts.Resync <= 0 {
		opts.Resync = 5 * time.Second
	}
	return &Controller{opts: opts, log: opts.Log, clock: opts.Clock, router: &Router{Store: opts.Store}, http: opts.HTTP,
		eventQueue: make(chan func(context.Context), 256),
		jobs:       map[config.Key]*job{}, runtimes: map[config.Key]*runtime{}}
}

// Run runs the jobs until ctx ends: it starts one for every Canary in the
// store, restarts it when the analysis interval changes, and stops it when
// the Canary is deleted.
func (c *Controller) Run(ctx context.Context) {
	go c.runEvents(ctx)
	defer c.stopAll()
	for {
		changed := c.opts.Store.Changed()
		if err := c.schedule(ctx); err != nil && ctx.Err() == nil {
			c.log.Error("canary: list canaries", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-time.After(c.opts.Resync):
		}
	}
}

func (c *Controller) runEvents(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-c.eventQueue:
			f(ctx)
		}
	}
}

func (c *Controller) schedule(ctx context.Context) error {
	objs, _, err := c.opts.Store.List(ctx, config.KindCanary, "")
	if err != nil {
		return err
	}
	seen := map[config.Key]bool{}
	var stop []*job
	c.mu.Lock()
	for _, o := range objs {
		k := o.Key()
		seen[k] = true
		interval := analysisInterval(o.Spec.(*flaggerv1beta1.Canary))
		if j := c.jobs[k]; j != nil {
			if j.interval == interval {
				continue
			}
			stop = append(stop, j)
		}
		if c.runtimes[k] == nil {
			c.runtimes[k] = newRuntime(k)
		}
		j := &job{interval: interval, cmds: make(chan command), stop: make(chan struct{}), done: make(chan struct{})}
		c.jobs[k] = j
		go c.runJob(ctx, k, j, stop)
	}
	for k, j := range c.jobs {
		if !seen[k] {
			stop = append(stop, j)
			delete(c.jobs, k)
			delete(c.runtimes, k)
			c.log.Info("canary deleted; its analysis stopped", "canary", k.Namespace+"/"+k.Name)
		}
	}
	c.mu.Unlock()
	// Outside the lock: a job being stopped may be in an advance, which
	// takes the lock.
	for _, j := range stop {
		close(j.stop)
		<-j.done
	}
	return nil
}

func (c *Controller) stopAll() {
	c.mu.Lock()
	jobs := c.jobs
	c.jobs = map[config.Key]*job{}
	c.mu.Unlock()
	for _, j := range jobs {
		close(j.stop)
		<-j.done
	}
}

// runJob advances at once (as Flagger does on a new Canary), then at
// every interval and after every command. A job replacing another (the
// interval changed) waits for those in replaced to stop first.
func (c *Controller) runJob(ctx context.Context, k config.Key, j *job, replaced []*job) {
	defer close(j.done)
	for _, old := range replaced {
		if old != j {
			<-old.done
		}
	}
	t := time.NewTicker(j.interval)
	defer t.Stop()
	advance := true
	for {
		if advance {
			c.Advance(ctx, k)
		}
		advance = true
		select {
		case <-ctx.Done():
			return
		case <-j.stop:
			return
		case <-t.C:
		case cmd := <-j.cmds:
			err := c.command(ctx, k, cmd.action)
			if err == nil {
				c.Advance(ctx, k)
			}
			cmd.reply <- err
			advance = false
		}
	}
}

// Command hands a manual command to the Canary's job and waits for it to
// be taken: promote passes the pending confirm gate (or, while
// progressing, promotes at once), abort rolls back now, resume starts a
// failed release again. The run that follows is done by the time Command
// returns.
func (c *Controller) Command(ctx context.Context, namespace, name, action string) error {
	switch action {
	case ActionPromote, ActionAbort, ActionResume:
	default:
		return fmt.Errorf("unknown action %q: want %s, %s or %s", action, ActionPromote, ActionAbort, ActionResume)
	}
	k := config.Key{Kind: config.KindCanary, Namespace: namespace, Name: name}
	c.mu.Lock()
	j := c.jobs[k]
	c.mu.Unlock()
	if j == nil {
		return fmt.Errorf("canary %s/%s: %w", namespace, name, store.ErrNotFound)
	}
	cmd := command{action: action, reply: make(chan error, 1)}
	select {
	case j.cmds <- cmd:
	case <-j.done:
		return fmt.Errorf("canary %s/%s: its analysis stopped", namespace, name)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-cmd.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrWrongPhase is returned for a command that does not apply to the
// canary's phase.
var ErrWrongPhase = errors.New("not possible in this phase")

// command records a manual command for the next advance.
func (c *Controller) command(ctx context.Context, k config.Key, action string) error {
	o, err := c.opts.Store.Get(ctx, k)
	if err != nil {
		return err
	}
	phase := ""
	if st, ok := o.Status.(*flaggerv1beta1.CanaryStatus); ok {
		phase = st.GetPhase()
	}
	r := c.runtime(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case action == ActionPromote && phase == PhaseWaiting:
		r.approved[config.WebhookConfirmRollout] = true
	case action == ActionPromote && phase == PhaseWaitingPromotion:
		r.approved[config.WebhookConfirmPromotion] = true
	case action == ActionPromote && phase == PhaseProgressing:
		r.promoteNow = true
	case action == ActionAbort && (phase == PhaseProgressing || phase == PhaseWaiting || phase == PhaseWaitingPromotion):
		r.abort = true
	case action == ActionResume && phase == PhaseFailed:
		r.resume = true
	default:
		return fmt.Errorf("%s %s/%s: %w (%s): promote applies to Waiting, WaitingPromotion and Progressing, abort to Progressing and the waiting phases, resume to Failed",
			action, k.Namespace, k.Name, ErrWrongPhase, phaseOrNone(phase))
	}
	c.log.Info("canary command", "canary", k.Namespace+"/"+k.Name, "action", action, "phase", phase)
	return nil
}

func phaseOrNone(p string) string {
	if p == "" {
		return "no phase yet"
	}
	return "phase " + p
}

func (c *Controller) runtime(k config.Key) *runtime {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.runtimes[k]
	if r == nil {
		r = newRuntime(k)
		c.runtimes[k] = r
	}
	return r
}

// Info returns what the controller knows of a canary beyond its status.
func (c *Controller) Info(namespace, name string) (Info, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.runtimes[config.Key{Kind: config.KindCanary, Namespace: namespace, Name: name}]
	if r == nil {
		return Info{}, false
	}
	return r.copyInfo(), true
}

// analysisInterval is the Canary's interval, Flagger's 60s by default.
func analysisInterval(cd *flaggerv1beta1.Canary) time.Duration {
	d, err := time.ParseDuration(cd.GetAnalysis().GetInterval())
	if err != nil || d < config.MinAnalysisInterval {
		return DefaultInterval
	}
	return d
}
