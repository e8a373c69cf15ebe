package canary

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/weft-mesh/weft/config"
)

// Bounds of what is kept per canary in memory (events, like Kubernetes
// events, do not survive a restart; the status does).
const (
	maxEvents  = 100
	maxChecks  = 60
	maxHistory = 500
)

// Event is something that happened to a canary, as Flagger records
// Kubernetes events: type Normal or Warning. Repeats of the last event
// are counted rather than stored again.
type Event struct {
	Time     time.Time `json:"time"`
	LastTime time.Time `json:"lastTime"`
	Type     string    `json:"type"`
	Message  string    `json:"message"`
	Count    int       `json:"count"`
}

// Check is the outcome of one metric or webhook check.
type Check struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // metric or webhook
	Name    string    `json:"name"`
	Value   *float64  `json:"value,omitempty"`
	Min     *float64  `json:"min,omitempty"`
	Max     *float64  `json:"max,omitempty"`
	OK      bool      `json:"ok"`
	Message string    `json:"message,omitempty"`
}

// Point is the canary's state at a change: the console's weight over time.
type Point struct {
	Time         time.Time `json:"time"`
	Phase        string    `json:"phase"`
	Weight       int       `json:"weight"`
	FailedChecks int       `json:"failedChecks"`
}

// Info is what the control plane knows about a canary beyond its status:
// what the target looks like, recent events, checks and weights.
type Info struct {
	Namespace string  `json:"namespace"`
	Name      string  `json:"name"`
	Target    Summary `json:"target"`
	Events    []Event `json:"events"`
	Checks    []Check `json:"checks"`
	History   []Point `json:"history"`
}

// Summary is the target as last observed.
type Summary struct {
	Primary   string     `json:"primary,omitempty"`
	Canary    string     `json:"canary,omitempty"`
	Candidate string     `json:"candidate,omitempty"`
	Problem   string     `json:"problem,omitempty"`
	Hosts     Hosts      `json:"hosts"`
	Revisions []Revision `json:"revisions,omitempty"`
}

// runtime is one canary's in-memory record and the manual commands it has
// been given; its job goroutine is the only writer of the commands.
type runtime struct {
	info Info
	// Manual approvals: one pass through a confirm gate of that type.
	approved   map[string]bool
	promoteNow bool
	abort      bool
	resume     bool
	// Metrics.
	phase                           string
	weight, failed, iterations      int
	events                          map[string]int // by type
	metricValues                    map[string]float64
	durCounts                       [len(durationBuckets) + 1]uint64 // per bucket, last is +Inf
	durSum                          float64
	statusCode                      int // flagger_canary_status: 0 running, 1 succeeded, 2 failed
	primaryWorkload, canaryWorkload string
}

func newRuntime(key config.Key) *runtime {
	return &runtime{info: Info{Namespace: key.Namespace, Name: key.Name}, approved: map[string]bool{},
		events: map[string]int{}, metricValues: map[string]float64{}}
}

func (r *runtime) addEvent(now time.Time, typ, msg string) (Event, bool) {
	r.events[typ]++
	if n := len(r.info.Events); n > 0 {
		last := &r.info.Events[n-1]
		if last.Type == typ && last.Message == msg {
			last.Count++
			last.LastTime = now
			return *last, false
		}
	}
	ev := Event{Time: now, LastTime: now, Type: typ, Message: msg, Count: 1}
	r.info.Events = append(r.info.Events, ev)
	if len(r.info.Events) > maxEvents {
		r.info.Events = r.info.Events[len(r.info.Events)-maxEvents:]
	}
	return ev, true
}

func (r *runtime) addCheck(c Check) {
	r.info.Checks = append(r.info.Checks, c)
	if len(r.info.Checks) > maxChecks {
		r.info.Checks = r.info.Checks[len(r.info.Checks)-maxChecks:]
	}
	if c.Kind == "metric" && c.Value != nil {
		r.metricValues[c.Name] = *c.Value
	}
}

func (r *runtime) addPoint(p Point) {
	if n := len(r.info.History); n > 0 {
		last := r.info.History[n-1]
		if last.Phase == p.Phase && last.Weight == p.Weight && last.FailedChecks == p.FailedChecks {
			return
		}
	}
	r.info.History = append(r.info.History, p)
	if len(r.info.History) > maxHistory {
		r.info.History = r.info.History[len(r.info.History)-maxHistory:]
	}
}

func (r *runtime) observeDuration(d time.Duration) {
	s := d.Seconds()
	r.durSum += s
	i := sort.SearchFloat64s(durationBuckets[:], s)
	r.durCounts[i]++
}

func (r *runtime) copyInfo() Info {
	i := r.info
	i.Events = append([]Event(nil), i.Events...)
	i.Checks = append([]Check(nil), i.Checks...)
	i.History = append([]Point(nil), i.History...)
	i.Target.Revisions = append([]Revision(nil), i.Target.Revisions...)
	return i
}

// durationBuckets bound flagger_canary_duration_seconds.
var durationBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// WriteMetrics writes the canaries' metrics in the Prometheus text format:
// Flagger's (flagger_canary_status, flagger_canary_weight,
// flagger_canary_total, flagger_canary_metric_analysis,
// flagger_canary_duration_seconds) and weft's (weft_canary_phase,
// weft_canary_failed_checks, weft_canary_iterations,
// weft_canary_events_total).
func (c *Controller) WriteMetrics(w io.Writer) {
	c.mu.Lock()
	keys := make([]config.Key, 0, len(c.runtimes))
	for k := range c.runtimes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	var b strings.Builder
	perNS := map[string]int{}
	section := func(name, typ, help string, each func(k config.Key, r *runtime)) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, k := range keys {
			each(k, c.runtimes[k])
		}
	}
	lbl := func(k config.Key) string { return fmt.Sprintf(`name=%q,namespace=%q`, k.Name, k.Namespace) }
	section("flagger_canary_status", "gauge", "Last canary outcome: 0 running, 1 successful, 2 failed.", func(k config.Key, r *runtime) {
		fmt.Fprintf(&b, "flagger_canary_status{%s} %d\n", lbl(k), r.statusCode)
		perNS[k.Namespace]++
	})
	section("flagger_canary_weight", "gauge", "Traffic weight of the primary and canary workloads.", func(k config.Key, r *runtime) {
		fmt.Fprintf(&b, "flagger_canary_weight{workload=%q,namespace=%q} %d\n", r.primaryWorkload, k.Namespace, totalWeight-r.weight)
		fmt.Fprintf(&b, "flagger_canary_weight{workload=%q,namespace=%q} %d\n", r.canaryWorkload, k.Namespace, r.weight)
	})
	fmt.Fprintf(&b, "# HELP flagger_canary_total Canaries per namespace.\n# TYPE flagger_canary_total gauge\n")
	nss := make([]string, 0, len(perNS))
	for ns := range perNS {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		fmt.Fprintf(&b, "flagger_canary_total{namespace=%q} %d\n", ns, perNS[ns])
	}
	section("flagger_canary_metric_analysis", "gauge", "Last value of each metric check.", func(k config.Key, r *runtime) {
		names := make([]string, 0, len(r.metricValues))
		for n := range r.metricValues {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "flagger_canary_metric_analysis{%s,metric=%q} %g\n", lbl(k), n, r.metricValues[n])
		}
	})
	section("flagger_canary_duration_seconds", "histogram", "Time one analysis run takes.", func(k config.Key, r *runtime) {
		var cum uint64
		for i, bound := range durationBuckets {
			cum += r.durCounts[i]
			fmt.Fprintf(&b, "flagger_canary_duration_seconds_bucket{%s,le=%q} %d\n", lbl(k), fmt.Sprint(bound), cum)
		}
		cum += r.durCounts[len(durationBuckets)]
		fmt.Fprintf(&b, "flagger_canary_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", lbl(k), cum)
		fmt.Fprintf(&b, "flagger_canary_duration_seconds_sum{%s} %g\nflagger_canary_duration_seconds_count{%s} %d\n", lbl(k), r.durSum, lbl(k), cum)
	})
	phases := []string{PhaseInitializing, PhaseInitialized, PhaseWaiting, PhaseProgressing, PhaseWaitingPromotion, PhasePromoting, PhaseFinalising, PhaseSucceeded, PhaseFailed}
	section("weft_canary_phase", "gauge", "1 for the canary's current phase, 0 for the others.", func(k config.Key, r *runtime) {
		for _, p := range phases {
			v := 0
			if p == r.phase {
				v = 1
			}
			fmt.Fprintf(&b, "weft_canary_phase{%s,phase=%q} %d\n", lbl(k), p, v)
		}
	})
	section("weft_canary_weight", "gauge", "Percent of the traffic routed to the canary.", func(k config.Key, r *runtime) {
		fmt.Fprintf(&b, "weft_canary_weight{%s} %d\n", lbl(k), r.weight)
	})
	section("weft_canary_failed_checks", "gauge", "Failed checks of the current analysis.", func(k config.Key, r *runtime) {
		fmt.Fprintf(&b, "weft_canary_failed_checks{%s} %d\n", lbl(k), r.failed)
	})
	section("weft_canary_iterations", "gauge", "Iterations of the current A/B or blue/green analysis.", func(k config.Key, r *runtime) {
		fmt.Fprintf(&b, "weft_canary_iterations{%s} %d\n", lbl(k), r.iterations)
	})
	section("weft_canary_events_total", "counter", "Events recorded, by type.", func(k config.Key, r *runtime) {
		for _, t := range []string{"Normal", "Warning"} {
			fmt.Fprintf(&b, "weft_canary_events_total{%s,type=%q} %d\n", lbl(k), t, r.events[t])
		}
	})
	c.mu.Unlock()
	io.WriteString(w, b.String())
}
