package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/canary"
	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
)

func newCanaryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "canary (promote|abort|resume) NAME",
		Short: "Act on a canary release: Flagger's manual gates",
		Long: `Canary gives a Canary's analysis a manual command, as Flagger's load tester
gates do:

  promote  pass the gate the canary waits at (Waiting: confirm-rollout,
           WaitingPromotion: confirm-promotion), or, while Progressing,
           promote the canary now without the remaining steps
  abort    roll back now: all traffic to the primary (phase Failed)
  resume   analyse a Failed canary's version again

The command runs the next analysis step at once and prints the phase it
left the canary in. See the progress with weft describe canary NAME.`,
	}
	for _, action := range []string{canary.ActionPromote, canary.ActionAbort, canary.ActionResume} {
		cmd.AddCommand(&cobra.Command{
			Use:   action + " NAME",
			Short: map[string]string{canary.ActionPromote: "Pass the pending confirm gate, or promote now", canary.ActionAbort: "Roll back now", canary.ActionResume: "Analyse a failed canary again"}[action],
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				ns, _ := g.ns()
				resp, err := g.client().CanaryCommand(cmd.Context(), ns, args[0], action)
				if err != nil {
					return explainAPIError(err)
				}
				fmt.Printf("canary.flagger.app/%s %s: phase %s\n", args[0], pastTense(action), resp.Phase)
				return nil
			},
		})
	}
	return cmd
}

func pastTense(action string) string {
	switch action {
	case canary.ActionPromote:
		return "promoted"
	case canary.ActionAbort:
		return "aborted"
	}
	return "resumed"
}

// canaryColumns are kubectl's columns for Flagger's kinds (their CRDs'
// printer columns).
func canaryColumns(k config.Kind, wide bool) []string {
	if k == config.KindMetricTemplate {
		return []string{"NAME", "PROVIDER", "AGE"}
	}
	c := []string{"NAME", "STATUS", "WEIGHT"}
	if wide {
		c = append(c, "FAILEDCHECKS", "INTERVAL", "MIRROR", "STEPWEIGHT", "STEPWEIGHTS", "MAXWEIGHT")
	}
	return append(c, "LASTTRANSITIONTIME")
}

func canaryCells(o *config.Object, wide bool) []string {
	if mt, ok := o.Spec.(*flaggerv1beta1.MetricTemplate); ok {
		return []string{o.Meta.Name, mt.GetProvider().GetType(), humanAge(o.Meta.CreationTimestamp)}
	}
	st, _ := o.Status.(*flaggerv1beta1.CanaryStatus)
	a := o.Spec.(*flaggerv1beta1.Canary).GetAnalysis()
	when := ""
	if t := st.GetLastTransitionTime(); t != nil {
		when = t.AsTime().UTC().Format(time.RFC3339)
	}
	c := []string{o.Meta.Name, st.GetPhase(), fmt.Sprint(st.GetCanaryWeight())}
	if wide {
		var steps []string
		for _, w := range a.GetStepWeights() {
			steps = append(steps, fmt.Sprint(w))
		}
		c = append(c, fmt.Sprint(st.GetFailedChecks()), a.GetInterval(), fmt.Sprint(a.GetMirror()), fmt.Sprint(a.GetStepWeight()),
			strings.Join(steps, ","), fmt.Sprint(a.GetMaxWeight()))
	}
	return append(c, when)
}

// describeCanary prints a Canary as `kubectl describe canary` does, with
// what the analysis knows beyond the status: the target's versions, the
// last checks and the events.
func describeCanary(w io.Writer, o *config.Object, info config.KindInfo, msgs []analyze.Message, cr *client.CanaryResponse) {
	describe(w, o, info, msgs)
	st, _ := o.Status.(*flaggerv1beta1.CanaryStatus)
	ts := func(t interface{ AsTime() time.Time }) string {
		if t == nil {
			return ""
		}
		return t.AsTime().UTC().Format(time.RFC3339)
	}
	fmt.Fprintln(w, "Status:")
	if st == nil {
		fmt.Fprintln(w, "  <none yet: the analysis has not run>")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, kv := range [][2]string{
			{"Phase", st.GetPhase()}, {"Canary Weight", fmt.Sprint(st.GetCanaryWeight())}, {"Failed Checks", fmt.Sprint(st.GetFailedChecks())},
			{"Iterations", fmt.Sprint(st.GetIterations())}, {"Last Applied Spec", st.GetLastAppliedSpec()}, {"Last Promoted Spec", st.GetLastPromotedSpec()},
			{"Last Transition Time", ts(st.GetLastTransitionTime())}, {"Observed Generation", fmt.Sprint(st.GetObservedGeneration())},
		} {
			fmt.Fprintf(tw, "  %s:\t%s\n", kv[0], kv[1])
		}
		tw.Flush()
		fmt.Fprintln(w, "  Conditions:")
		for _, c := range st.GetConditions() {
			fmt.Fprintf(w, "    Type: %s  Status: %s  Reason: %s  Last Transition: %s\n      Message: %s\n", c.GetType(), c.GetStatus(), c.GetReason(), ts(c.GetLastTransitionTime()), c.GetMessage())
		}
	}
	if cr == nil {
		return
	}
	t := cr.Info.Target
	fmt.Fprintln(w, "Target:")
	fmt.Fprintf(w, "  Services:  %s -> %s / %s, port %d\n", t.Hosts.Apex, t.Hosts.Primary, t.Hosts.Canary, t.Hosts.Port)
	fmt.Fprintf(w, "  Primary:   %s\n", orNone(t.Primary))
	if t.Canary != "" && t.Canary != t.Primary {
		fmt.Fprintf(w, "  Canary:    %s\n", t.Canary)
	}
	for _, r := range t.Revisions {
		state := "ready"
		if !r.Ready {
			state = "not ready: " + r.NotReady
		}
		fmt.Fprintf(w, "  Version %s: %d instance(s), %s\n", r.ID, r.Instances, state)
	}
	if t.Problem != "" {
		fmt.Fprintf(w, "  Problem:   %s\n", t.Problem)
	}
	fmt.Fprintln(w, "Checks:")
	if len(cr.Info.Checks) == 0 {
		fmt.Fprintln(w, "  <none>")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "  AGE\tCHECK\tVALUE\tRANGE\tRESULT")
		checks := cr.Info.Checks
		if len(checks) > 12 {
			checks = checks[len(checks)-12:]
		}
		for _, c := range checks {
			value, rng, result := "", "", "ok"
			if c.Value != nil {
				value = fmt.Sprintf("%.2f", *c.Value)
			}
			if c.Min != nil {
				rng = fmt.Sprintf(">= %v", *c.Min)
			}
			if c.Max != nil {
				rng = strings.TrimPrefix(rng+fmt.Sprintf(", <= %v", *c.Max), ", ")
			}
			if !c.OK {
				result = "failed"
				if c.Message != "" {
					result += ": " + c.Message
				}
			}
			fmt.Fprintf(tw, "  %s\t%s %s\t%s\t%s\t%s\n", humanAge(c.Time), c.Kind, c.Name, value, rng, result)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "Events:")
	if len(cr.Info.Events) == 0 {
		fmt.Fprintln(w, "  <none>")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  Type\tReason\tAge\tFrom\tMessage")
	fmt.Fprintln(tw, "  ----\t------\t----\t----\t-------")
	evs := append([]canary.Event(nil), cr.Info.Events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].LastTime.Before(evs[j].LastTime) })
	for _, e := range evs {
		age := humanAge(e.LastTime)
		if e.Count > 1 {
			age = fmt.Sprintf("%s (x%d over %s)", age, e.Count, humanAge(e.Time))
		}
		fmt.Fprintf(tw, "  %s\tSynced\t%s\tweft\t%s\n", e.Type, age, e.Message)
	}
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
