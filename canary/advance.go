package canary

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/store"
)

// run is one advance of one Canary: what it read and what it changes.
type run struct {
	c   *Controller
	ctx context.Context
	obj *config.Object
	cd  *flaggerv1beta1.Canary
	a   *flaggerv1beta1.CanaryAnalysis
	st  *flaggerv1beta1.CanaryStatus // the status being written
	r   *runtime
	now time.Time
	obs Observation
	msg string // the condition's message, when not the phase's own
}

// Advance runs one step of a Canary's analysis, Flagger's scheduler step
// for step: initialize, detect a new revision, pass the confirm gates, run
// the checks, move the weight, promote or roll back. The Canary's status
// is written through the store when it changed.
func (c *Controller) Advance(ctx context.Context, k config.Key) {
	start := time.Now()
	obj, err := c.opts.Store.Get(ctx, k)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.log.Error("canary: read", "canary", k.Namespace+"/"+k.Name, "err", err)
		}
		return
	}
	rn := &run{c: c, ctx: ctx, obj: obj, cd: obj.Spec.(*flaggerv1beta1.Canary), r: c.runtime(k), now: c.clock.Now()}
	rn.a = rn.cd.GetAnalysis()
	if rn.a == nil {
		rn.a = &flaggerv1beta1.CanaryAnalysis{}
	}
	old, _ := obj.Status.(*flaggerv1beta1.CanaryStatus)
	if old == nil {
		old = &flaggerv1beta1.CanaryStatus{}
	}
	rn.st = proto.Clone(old).(*flaggerv1beta1.CanaryStatus)
	rn.step()
	rn.finish(old)
	c.mu.Lock()
	rn.r.observeDuration(time.Since(start))
	c.mu.Unlock()
}

func (rn *run) step() {
	if rn.cd.GetSuspend() {
		rn.msg = "suspended: spec.suspend is set"
		return
	}
	obs, err := rn.c.opts.Target.Observe(rn.ctx, rn.obj)
	if err != nil {
		rn.warn("%v", err)
		return
	}
	rn.obs = obs
	rn.summarize()
	st, h := rn.st, obs.Hosts
	phase := st.GetPhase()

	// Initialization: create the primary and canary services, take the
	// routing over with all traffic on the primary.
	if phase == "" || phase == PhaseInitializing {
		if obs.Problem != "" || obs.Primary == "" {
			rn.setPhase(PhaseInitializing)
			rn.msg = firstOf(obs.Problem, "waiting for the target's primary")
			rn.warn("Halt %s initialization: %s", rn.id(), rn.msg)
			return
		}
		if err := rn.c.opts.Target.Sync(rn.ctx, rn.obj, obs.Primary, obs.Primary); err != nil {
			rn.warn("%v", err)
			return
		}
		// No traffic moves to a primary before it serves (in Kubernetes,
		// Sync has just created NAME-primary: the next run takes over).
		if p := obs.Revisions[obs.Primary]; !p.Ready {
			rn.setPhase(PhaseInitializing)
			rn.msg = "waiting for the primary: " + firstOf(p.NotReady, "not ready")
			rn.warn("Halt %s initialization: primary not ready: %s", rn.id(), firstOf(p.NotReady, "not ready"))
			return
		}
		if err := rn.c.router.SetRoutes(rn.ctx, rn.obj, h, totalWeight, 0, false); err != nil {
			rn.warn("%v", err)
			return
		}
		rn.setPhase(PhaseInitialized)
		st.LastAppliedSpec = obs.Primary
		st.LastPromotedSpec = obs.Primary
		rn.setWeight(0)
		rn.info("Initialization done! %s: %s %s is the primary", rn.id(), rn.app(), obs.Primary)
		return
	}
	if obs.Problem != "" {
		rn.msg = obs.Problem
		rn.warn("Halt %s advancement: %s", rn.id(), obs.Problem)
		return
	}
	if rn.r.resume && phase == PhaseFailed {
		rn.r.resume = false
		rn.info("Resuming %s: analysing %s again", rn.id(), st.GetLastAppliedSpec())
		st.LastAppliedSpec = ""
	}

	// Keep the services and the routing as the spec says (the spec may
	// have changed), at the weights in place.
	canary := st.GetLastAppliedSpec()
	if canary == "" {
		canary = obs.Primary
	}
	if err := rn.c.opts.Target.Sync(rn.ctx, rn.obj, obs.Primary, canary); err != nil {
		rn.warn("%v", err)
		return
	}
	pw, cw, mirrored, err := rn.c.router.Routes(rn.ctx, rn.obj, h)
	if err == nil {
		err = rn.c.router.SetRoutes(rn.ctx, rn.obj, h, pw, cw, mirrored)
	}
	if err != nil {
		rn.warn("%v", err)
		return
	}

	newRevision := obs.Candidate != "" && obs.Candidate != st.GetLastAppliedSpec() && obs.Candidate != obs.Primary
	active := phase == PhaseProgressing || phase == PhaseWaiting || phase == PhaseWaitingPromotion || phase == PhasePromoting || phase == PhaseFinalising
	if !active && !newRevision {
		// Between releases the canary takes no traffic and runs nothing
		// (Kubernetes: NAME at 0 replicas), level-triggered. Scaling it
		// down a run after the traffic left it (initialization, rollback)
		// gives every proxy an interval to get the routes first.
		if phase == PhaseInitialized || phase == PhaseSucceeded || phase == PhaseFailed {
			if err := rn.c.opts.Target.ScaleToZero(rn.ctx, rn.obj); err != nil {
				rn.warn("%v", err)
			}
		}
		if obs.CandidateProblem != "" {
			rn.msg = obs.CandidateProblem
			rn.warn("Halt %s: %s", rn.id(), obs.CandidateProblem)
		}
		return
	}
	if !rn.cd.GetSkipAnalysis() {
		if p := obs.Revisions[obs.Primary]; !p.Ready {
			rn.warn("Halt %s advancement: primary not ready: %s", rn.id(), p.NotReady)
			return
		}
	}

	// A new revision starts a release, once the confirm-rollout gate
	// lets it.
	if phase == PhaseInitialized || phase == PhaseSucceeded || phase == PhaseFailed || phase == PhaseWaiting {
		if obs.Candidate == "" {
			return // waiting for a revision that has since gone
		}
		if !rn.confirm(config.WebhookConfirmRollout) {
			if phase != PhaseWaiting {
				rn.setPhase(PhaseWaiting)
				rn.warn("Halt %s advancement waiting for approval (confirm-rollout)", rn.id())
			}
			return
		}
		if err := rn.c.opts.Target.ScaleFromZero(rn.ctx, rn.obj); err != nil {
			rn.warn("%v", err)
			return
		}
		rn.restart(obs.Candidate)
		rn.info("New revision detected! Progressing %s: %s %s is the canary", rn.id(), rn.app(), obs.Candidate)
		return
	}
	if (phase == PhaseProgressing || phase == PhaseWaitingPromotion) && newRevision {
		if err := rn.c.router.SetRoutes(rn.ctx, rn.obj, h, totalWeight, 0, false); err != nil {
			rn.warn("%v", err)
			return
		}
		rn.restart(obs.Candidate)
		rn.info("New revision detected! Restarting analysis for %s: %s %s is the canary", rn.id(), rn.app(), obs.Candidate)
		return
	}

	// The canary must get ready within the progress deadline.
	retriable, notReady := true, ""
	if cr := obs.Revisions[st.GetLastAppliedSpec()]; !cr.Ready {
		notReady = firstOf(cr.NotReady, fmt.Sprintf("no instance of %s %s is registered", rn.app(), st.GetLastAppliedSpec()))
		if rn.now.Sub(st.GetLastTransitionTime().AsTime()) < rn.deadline() {
			rn.warn("Halt %s advancement: canary not ready: %s", rn.id(), notReady)
			return
		}
		retriable = false
	}

	if rn.cd.GetSkipAnalysis() {
		if !retriable {
			rn.warn("Rolling back %s progress deadline exceeded: %s", rn.id(), notReady)
			rn.rollback(h)
			return
		}
		if err := rn.c.router.SetRoutes(rn.ctx, rn.obj, h, totalWeight, 0, false); err != nil {
			rn.warn("%v", err)
			return
		}
		if !rn.promote() {
			return
		}
		rn.succeed("Promotion completed! Canary analysis was skipped for %s", rn.id())
		return
	}

	if phase == PhaseProgressing || phase == PhaseWaiting || phase == PhaseWaitingPromotion {
		if rn.r.abort {
			rn.r.abort = false
			rn.warn("Rolling back %s: aborted (weft canary abort)", rn.id())
			rn.rollback(h)
			return
		}
		if rn.rollbackHook() {
			rn.rollback(h)
			return
		}
	}
	if phase == PhasePromoting {
		rn.promotionShift(h, pw, cw)
		return
	}
	if phase == PhaseFinalising {
		if err := rn.c.opts.Target.ScaleToZero(rn.ctx, rn.obj); err != nil {
			rn.warn("%v", err)
			return
		}
		rn.succeed("Promotion completed! %s: %s %s is the primary", rn.id(), rn.app(), st.GetLastAppliedSpec())
		return
	}
	if (phase == PhaseProgressing || phase == PhaseWaitingPromotion) && (!retriable || st.GetFailedChecks() >= rn.threshold()) {
		if !retriable {
			rn.warn("Rolling back %s progress deadline exceeded: %s", rn.id(), notReady)
		} else {
			rn.warn("Rolling back %s failed checks threshold reached %d", rn.id(), st.GetFailedChecks())
		}
		rn.rollback(h)
		return
	}
	if rn.r.promoteNow {
		rn.r.promoteNow = false
		rn.info("Promoting %s now (weft canary promote), at canary weight %d", rn.id(), cw)
		if rn.promote() {
			rn.setPhase(PhasePromoting)
		}
		return
	}

	// The checks: pre-rollout webhooks before any traffic reaches the
	// canary, then at every interval the rollout webhooks and metrics.
	if cw == 0 && st.GetIterations() == 0 && !(rn.a.GetMirror() && mirrored) {
		rn.info("Starting canary analysis for %s", rn.id())
		if !rn.runHooks(config.WebhookPreRollout, PhaseProgressing) {
			rn.failCheck()
			return
		}
	} else if !rn.analyse() {
		rn.failCheck()
		return
	}

	switch {
	case len(rn.a.GetMatch()) > 0 && rn.a.GetIterations() > 0:
		rn.abTest(h)
	case rn.a.GetIterations() > 0:
		rn.blueGreen(h, mirrored)
	case nextStepWeight(rn.a, cw) > 0:
		if !mirrored && !rn.confirm(config.WebhookConfirmTrafficIncrease) {
			rn.warn("Halt %s advancement waiting for traffic increase approval (confirm-traffic-increase)", rn.id())
			return
		}
		rn.stepCanary(h, pw, cw, mirrored)
	}
}

// restart begins the analysis of revision, all traffic on the primary.
func (rn *run) restart(revision string) {
	st := rn.st
	st.LastAppliedSpec = revision
	st.FailedChecks, st.Iterations = proto.Int32(0), proto.Int32(0)
	rn.setWeight(0)
	rn.setPhase(PhaseProgressing)
	if err := rn.c.opts.Target.Sync(rn.ctx, rn.obj, rn.obs.Primary, revision); err != nil {
		rn.warn("%v", err)
	}
}

// stepCanary moves the canary's weight one step (or, with mirror, first
// mirrors for one interval), or promotes at the maximum weight.
func (rn *run) stepCanary(h Hosts, pw, cw int, mirrored bool) {
	if maxW := maxWeight(rn.a); cw < maxW {
		step := nextStepWeight(rn.a, cw)
		if rn.a.GetMirror() && cw == 0 && !mirrored {
			mirrored = true
			pw, cw = totalWeight, 0
		} else {
			mirrored = false
			pw, cw = max(pw-step, 0), min(cw+step, totalWeight)
			if pw+cw != totalWeight {
				pw = totalWeight - cw
			}
		}
		if err := rn.c.router.SetRoutes(rn.ctx, rn.obj, h, pw, cw, mirrored); err != nil {
			rn.warn("%v", err)
			return
		}
		rn.setWeight(cw)
		if mirrored {
			rn.info("Advance %s: mirroring traffic to the canary", rn.id())
		} else {
			rn.info("Advance %s canary weight %d", rn.id(), cw)
		}
		return
	}
	if rn.promotionGate() && rn.promote() {
		rn.setPhase(PhasePromoting)
	}
}

// promotionGate runs the confirm-promotion gate; a no holds the canary in
// WaitingPromotion.
func (rn *run) promotionGate() bool {
	if rn.confirm(config.WebhookConfirmPromotion) {
		return true
	}
	rn.setPhase(PhaseWaitingPromotion)
	rn.warn("Halt %s advancement waiting for promotion approval (confirm-promotion)", rn.id())
	return false
}

// abTest routes the matched requests to the canary for the iterations,
// then promotes.
func (rn *run) abTest(h Hosts) {
	st := rn.st
	if rn.a.GetIterations() > st.GetIterations() {
		if err := rn.c.router.SetRoutes(rn.ctx, rn.obj, h, 0, totalWeight, false); err != nil {
			rn.warn("%v", err)
			return
		}
		rn.setIterations(st.GetIterations() + 1)
		rn.info("Advance %s canary iteration %d/%d", rn.id(), st.GetIterations(), rn.a.GetIterations())
		return
	}
	if !rn.promotionGate() {
		return
	}
	if rn.promote() {
		rn.setPhase(PhasePromoting)
	}
}

// blueGreen analyses the canary for the iterations with traffic only from
// load tests (or mirrored), then switches all traffic to it and promotes.
func (rn *run) blueGreen(h Hosts, mirrored bool) {
	st := rn.st
	if rn.a.GetIterations() > st.GetIterations() {
		if rn.a.GetMirror() && !mirrored {
			if err := rn.c.router.SetRoutes(rn.ctx, rn.obj, h, totalWeight, 0, true); err != nil {
				rn.warn("%v", err)
				return
			}
			rn.info("Advance %s: mirroring traffic to the canary", rn.id())
		}
		rn.setIterations(st.GetIterations() + 1)
		rn.info("Advance %s canary iteration %d/%d", rn.id(), st.GetIterations(), rn.a.GetIterations())
		return
	}
	if !rn.promotionGate() {
		return
	}
	if rn.a.GetIterations() == st.GetIterations() {
		if err := rn.c.router.SetRoutes(rn.ctx, rn.obj, h, 0, totalWeight, false); err != nil {
			rn.warn("%v", err)
			return
		}
		rn.setWeight(totalWeight)
		rn.setIterations(st.GetIterations() + 1)
		rn.info("Routing all traffic to canary %s", rn.id())
		return
	}
	if rn.promote() {
		rn.setPhase(PhasePromoting)
	}
}

// promote makes the canary revision the primary (Flagger's "copying the
// template spec to the primary").
func (rn *run) promote() bool {
	rev := rn.st.GetLastAppliedSpec()
	rn.info("Promoting %s: %s %s becomes the primary", rn.id(), rn.app(), rev)
	if err := rn.c.opts.Target.Promote(rn.ctx, rn.obj, rev); err != nil {
		rn.warn("%v", err)
		return false
	}
	rn.obs.Primary = rev
	return true
}

// promotionShift routes the traffic back to the primary, which now runs
// the promoted revision: at once, or by stepWeightPromotion per interval.
func (rn *run) promotionShift(h Hosts, pw, cw int) {
	step := int(rn.a.GetStepWeightPromotion())
	if step == 0 || cw == 0 {
		pw, cw = totalWeight, 0
	} else {
		pw, cw = min(pw+step, totalWeight), max(cw-step, 0)
		pw = totalWeight - cw
	}
	if err := rn.c.router.SetRoutes(rn.ctx, rn.obj, h, pw, cw, false); err != nil {
		rn.warn("%v", err)
		return
	}
	rn.setWeight(cw)
	if cw == 0 {
		rn.info("Routing all traffic to primary %s", rn.id())
		rn.setPhase(PhaseFinalising)
		return
	}
	rn.info("Advance %s primary weight %d", rn.id(), pw)
}

// rollback sends all traffic to the primary and fails the release.
func (rn *run) rollback(h Hosts) {
	if err := rn.c.router.SetRoutes(rn.ctx, rn.obj, h, totalWeight, 0, false); err != nil {
		rn.warn("%v", err)
		return
	}
	rn.setWeight(0)
	rn.setPhase(PhaseFailed) // the next run scales the canary to zero
	rn.warn("Canary failed! %s: all traffic back to %s %s", rn.id(), rn.app(), rn.obs.Primary)
	rn.runHooks(config.WebhookPostRollout, PhaseFailed)
}

func (rn *run) succeed(format string, args ...any) {
	rn.st.LastPromotedSpec = rn.st.GetLastAppliedSpec()
	rn.setWeight(0)
	rn.setPhase(PhaseSucceeded)
	rn.info(format, args...)
	rn.runHooks(config.WebhookPostRollout, PhaseSucceeded)
}

func (rn *run) failCheck() {
	rn.st.FailedChecks = proto.Int32(rn.st.GetFailedChecks() + 1)
}

// confirm runs a confirm gate: a manual approval passes it once, else
// every webhook of the type must say yes.
func (rn *run) confirm(typ string) bool {
	rn.c.mu.Lock()
	approved := rn.r.approved[typ]
	delete(rn.r.approved, typ)
	rn.c.mu.Unlock()
	if approved {
		rn.info("%s approved by weft canary promote", typ)
		return true
	}
	for _, w := range hooks(rn.cd, typ) {
		err := rn.c.call(rn.ctx, rn.obj, checksum(rn.st), w, PhaseProgressing, nil)
		rn.check(Check{Kind: "webhook", Name: w.GetName(), OK: err == nil, Message: errString(err)})
		if err != nil {
			return false
		}
		rn.info("%s check %s passed", typ, w.GetName())
	}
	return true
}

// rollbackHook reports whether a rollback webhook asks for a rollback (it
// answers yes).
func (rn *run) rollbackHook() bool {
	for _, w := range hooks(rn.cd, config.WebhookRollback) {
		if err := rn.c.call(rn.ctx, rn.obj, checksum(rn.st), w, rn.st.GetPhase(), nil); err == nil {
			rn.warn("Rolling back %s manual webhook invoked (%s)", rn.id(), w.GetName())
			return true
		}
	}
	return false
}

// runHooks calls the webhooks of a type, stopping at the first that fails.
func (rn *run) runHooks(typ, phase string) bool {
	for _, w := range hooks(rn.cd, typ) {
		err := rn.c.call(rn.ctx, rn.obj, checksum(rn.st), w, phase, nil)
		rn.check(Check{Kind: "webhook", Name: w.GetName(), OK: err == nil, Message: errString(err)})
		if err != nil {
			rn.warn("Halt %s advancement %s check %s failed %v", rn.id(), typ, w.GetName(), err)
			return false
		}
		if typ != config.WebhookRollout { // those run at every interval; their failures are news
			rn.info("%s check %s passed", typ, w.GetName())
		}
	}
	return true
}

// analyse runs the rollout webhooks, then every metric; any failure fails
// the run's one check.
func (rn *run) analyse() bool {
	if !rn.runHooks(config.WebhookRollout, PhaseProgressing) {
		return false
	}
	ok := true
	rev := rn.obs.Revisions[rn.st.GetLastAppliedSpec()]
	for _, m := range rn.a.GetMetrics() {
		lo, hi := metricRange(m)
		ch := Check{Kind: "metric", Name: m.GetName(), Min: lo, Max: hi}
		v, err := rn.metric(m, rev)
		switch {
		case errors.Is(err, ErrNoValues):
			ch.Message = err.Error()
			rn.warn("Halt %s advancement no values found for metric %s: %s is not receiving traffic? (%v)", rn.id(), m.GetName(), rn.app()+" "+rev.ID, err)
		case err != nil:
			ch.Message = err.Error()
			rn.warn("Halt %s advancement: metric %s: %v", rn.id(), m.GetName(), err)
		default:
			ch.Value = &v
			ch.OK = (lo == nil || v >= *lo) && (hi == nil || v <= *hi)
			switch {
			case lo != nil && v < *lo:
				ch.Message = fmt.Sprintf("%.2f < %v", v, *lo)
			case hi != nil && v > *hi:
				ch.Message = fmt.Sprintf("%.2f > %v", v, *hi)
			}
			if !ch.OK {
				rn.warn("Halt %s advancement %s %s", rn.id(), m.GetName(), ch.Message)
			}
		}
		rn.check(ch)
		ok = ok && ch.OK
	}
	return ok
}

// metric computes one metric: a builtin from telemetry, or a
// MetricTemplate's query against its Prometheus.
func (rn *run) metric(m *flaggerv1beta1.CanaryMetric, rev Revision) (float64, error) {
	ivs, iv := metricInterval(m)
	ref := m.GetTemplateRef()
	if ref == nil {
		return builtin(rn.c.opts.Telemetry, m.GetName(), rev, iv, rn.now)
	}
	ns := firstOf(ref.GetNamespace(), rn.obj.Meta.Namespace)
	o, err := rn.c.opts.Store.Get(rn.ctx, config.Key{Kind: config.KindMetricTemplate, Namespace: ns, Name: ref.GetName()})
	if err != nil {
		return 0, fmt.Errorf("MetricTemplate %s/%s: %w", ns, ref.GetName(), err)
	}
	mt := o.Spec.(*flaggerv1beta1.MetricTemplate)
	address := firstOf(mt.GetProvider().GetAddress(), rn.cd.GetMetricsServer())
	if address == "" {
		return 0, fmt.Errorf("MetricTemplate %s/%s names no provider address and the Canary no metricsServer", ns, ref.GetName())
	}
	tmpl, err := config.ParseMetricQuery(mt.GetQuery())
	if err != nil {
		return 0, fmt.Errorf("MetricTemplate %s/%s: %w", ns, ref.GetName(), err)
	}
	target := ""
	for i, w := range rev.Workloads {
		if i > 0 {
			target += "|"
		}
		target += w
	}
	q, err := config.RenderMetricQuery(tmpl, config.MetricQueryVars{Name: rn.obj.Meta.Name, Namespace: rn.obj.Meta.Namespace,
		Target: target, Service: rn.obs.Hosts.Apex, Interval: ivs, Variables: m.GetTemplateVariables()})
	if err != nil {
		return 0, fmt.Errorf("MetricTemplate %s/%s: %w", ns, ref.GetName(), err)
	}
	ctx, cancel := context.WithTimeout(rn.ctx, 30*time.Second)
	defer cancel()
	return queryPrometheus(ctx, rn.c.http, address, q)
}

// maxWeight is the weight at which the canary is promoted.
func maxWeight(a *flaggerv1beta1.CanaryAnalysis) int {
	if n := len(a.GetStepWeights()); n > 0 {
		return min(totalWeight, int(a.GetStepWeights()[n-1]))
	}
	if a.GetMaxWeight() > 0 {
		return int(a.GetMaxWeight())
	}
	return totalWeight
}

// nextStepWeight is the weight the next step adds, as Flagger computes it.
func nextStepWeight(a *flaggerv1beta1.CanaryAnalysis, cw int) int {
	steps := a.GetStepWeights()
	if a.GetStepWeight() > 0 || len(steps) == 0 {
		return int(a.GetStepWeight())
	}
	room := totalWeight - cw
	if room == 0 {
		return 1
	}
	if cw == 0 {
		return min(room, int(steps[0]))
	}
	for i := 0; i < len(steps)-1; i++ {
		if int(steps[i]) == cw {
			return min(room, int(steps[i+1])-cw)
		}
	}
	return room
}

func (rn *run) threshold() int32 {
	if t := rn.a.GetThreshold(); t > 0 {
		return t
	}
	return 1
}

func (rn *run) deadline() time.Duration {
	if rn.cd.ProgressDeadlineSeconds != nil {
		return time.Duration(rn.cd.GetProgressDeadlineSeconds()) * time.Second
	}
	return DefaultProgressDeadline
}

func (rn *run) setPhase(p string) {
	if rn.st.GetPhase() != p {
		rn.st.Phase = p
		rn.st.LastTransitionTime = stamp(rn.now)
	}
	rn.msg = ""
}

func (rn *run) setWeight(w int) {
	if rn.st.CanaryWeight == nil || int(rn.st.GetCanaryWeight()) != w {
		rn.st.LastTransitionTime = stamp(rn.now)
	}
	rn.st.CanaryWeight = proto.Int32(int32(w))
}

func (rn *run) setIterations(n int32) {
	rn.st.Iterations = proto.Int32(n)
	rn.st.LastTransitionTime = stamp(rn.now)
}

func (rn *run) id() string              { return rn.obj.Meta.Name + "." + rn.obj.Meta.Namespace }
func (rn *run) app() string             { return rn.cd.GetTargetRef().GetName() }
func (rn *run) info(f string, a ...any) { rn.c.event(rn, "Normal", fmt.Sprintf(f, a...)) }
func (rn *run) warn(f string, a ...any) { rn.c.event(rn, "Warning", fmt.Sprintf(f, a...)) }

func (rn *run) check(ch Check) {
	ch.Time = rn.now
	rn.c.mu.Lock()
	rn.r.addCheck(ch)
	rn.c.mu.Unlock()
}

// summarize records the observation for Info.
func (rn *run) summarize() {
	s := Summary{Primary: rn.obs.Primary, Candidate: rn.obs.Candidate, Problem: firstOf(rn.obs.Problem, rn.obs.CandidateProblem),
		Hosts: rn.obs.Hosts, Canary: rn.st.GetLastAppliedSpec()}
	for _, r := range rn.obs.Revisions {
		s.Revisions = append(s.Revisions, r)
	}
	sort.Slice(s.Revisions, func(i, j int) bool { return s.Revisions[i].ID < s.Revisions[j].ID })
	rn.c.mu.Lock()
	rn.r.info.Target = s
	rn.c.mu.Unlock()
}

// event records an event: the control plane's log, the canary's events,
// the metrics and the event webhooks. A repeat of the last event is only
// counted.
func (c *Controller) event(rn *run, typ, msg string) {
	c.mu.Lock()
	ev, isNew := rn.r.addEvent(rn.now, typ, msg)
	c.mu.Unlock()
	if !isNew {
		return
	}
	log := c.log.Info
	if typ == "Warning" {
		log = c.log.Warn
	}
	log("canary event", "canary", rn.obj.Meta.Namespace+"/"+rn.obj.Meta.Name, "type", typ, "message", msg)
	c.sendEvent(rn.obj, rn.st, ev)
}

// finish writes the status if it changed, with its condition, and updates
// the metrics.
func (rn *run) finish(old *flaggerv1beta1.CanaryStatus) {
	st := rn.st
	if st.GetPhase() != "" {
		if st.FailedChecks == nil {
			st.FailedChecks = proto.Int32(0)
		}
		if st.CanaryWeight == nil {
			st.CanaryWeight = proto.Int32(0)
		}
		if st.Iterations == nil {
			st.Iterations = proto.Int32(0)
		}
		setCondition(st, rn.msg, rn.now)
	}
	st.ObservedGeneration = int32(rn.obj.Meta.Generation)
	if !proto.Equal(old, st) {
		if err := store.UpdateStatus(rn.ctx, rn.c.opts.Store, rn.obj.Key(), st); err != nil && rn.ctx.Err() == nil {
			rn.c.log.Error("canary: write status", "canary", rn.obj.Meta.Namespace+"/"+rn.obj.Meta.Name, "err", err)
		}
	}
	h := rn.obs.Hosts
	rn.c.mu.Lock()
	defer rn.c.mu.Unlock()
	r := rn.r
	r.phase, r.weight, r.failed, r.iterations = st.GetPhase(), int(st.GetCanaryWeight()), int(st.GetFailedChecks()), int(st.GetIterations())
	r.primaryWorkload, r.canaryWorkload = firstOf(h.Primary, rn.app()+"-primary"), firstOf(h.Apex, rn.app())
	switch st.GetPhase() {
	case PhaseSucceeded:
		r.statusCode = 1
	case PhaseFailed:
		r.statusCode = 2
	default:
		r.statusCode = 0
	}
	r.info.Target.Canary = st.GetLastAppliedSpec()
	if st.GetPhase() != "" {
		r.addPoint(Point{Time: rn.now, Phase: st.GetPhase(), Weight: r.weight, FailedChecks: r.failed})
	}
}

// setCondition keeps Flagger's one condition, Promoted, in step with the
// phase: True once promoted, False once failed, Unknown in between.
func setCondition(st *flaggerv1beta1.CanaryStatus, msg string, now time.Time) {
	status, text := "Unknown", ""
	switch st.GetPhase() {
	case PhaseInitializing:
		text = "New target detected, initializing."
	case PhaseInitialized:
		status, text = "True", "Initialization completed: all traffic to the primary."
	case PhaseWaiting, PhaseWaitingPromotion:
		text = "Waiting for approval."
	case PhaseProgressing:
		text = "New revision detected, progressing canary analysis."
	case PhasePromoting:
		text = "Canary analysis completed, promoting the canary to primary."
	case PhaseFinalising:
		text = "Canary analysis completed, routing all traffic to the primary."
	case PhaseSucceeded:
		status, text = "True", "Canary analysis completed successfully, promotion finished."
	case PhaseFailed:
		status, text = "False", "Canary analysis failed, all traffic back to the primary."
	}
	if msg != "" {
		text = msg
	}
	var c *flaggerv1beta1.CanaryCondition
	for _, x := range st.GetConditions() {
		if x.GetType() == "Promoted" {
			c = x
		}
	}
	if c == nil {
		c = &flaggerv1beta1.CanaryCondition{Type: "Promoted"}
		st.Conditions = append(st.Conditions, c)
	}
	if c.GetStatus() != status {
		c.LastTransitionTime = stamp(now)
	}
	if c.GetStatus() != status || c.GetReason() != st.GetPhase() || c.GetMessage() != text {
		c.LastUpdateTime = stamp(now)
	}
	c.Status, c.Reason, c.Message = status, st.GetPhase(), text
}

// stamp is a status time: seconds, as Kubernetes writes metav1.Time.
func stamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t.Truncate(time.Second)) }

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
