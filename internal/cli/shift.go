package cli

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
)

func newShiftCmd(g *globals) *cobra.Command {
	var from, to, vsName string
	var steps []int
	var interval time.Duration
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "shift SERVICE --from SUBSET --to SUBSET [--steps 10,25,50,75,90,100] [--interval 10s]",
		Short: "Move a service's traffic from one subset to another, step by step",
		Long: `Shift rewrites the weights of the VirtualService (default: the one named
SERVICE) so that, at each step, that percentage of the traffic its routes send
to subset --from goes to subset --to instead: step 10 is 90% --from, 10% --to.
The --to destination is added to a route that lacks it. Both subsets must be
defined by the host's DestinationRule: otherwise nothing is applied and shift
exits non-zero. Each step is one apply, and shift waits until every connected
proxy has ACKed it (--wait, default on; --timeout per step) before it reports
the step and starts the next interval; Ctrl-C stops between steps and leaves
the last applied weights.`,
		Example: `  weft shift service-b --from vm --to v1 --steps 10,25,50,75,90,100 --interval 10s
  weft shift reviews --from v1 --to v3 --steps 50 -n default`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if vsName == "" {
				vsName = args[0]
			}
			return runShift(cmd.Context(), g, g.client(), shiftOptions{service: args[0], vs: vsName, from: from, to: to, steps: steps, interval: interval, wait: wf})
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "subset the traffic leaves (required)")
	f.StringVar(&to, "to", "", "subset the traffic moves to (required)")
	f.IntSliceVar(&steps, "steps", []int{10, 25, 50, 75, 90, 100}, "percentages of the traffic sent to --to, one apply each")
	f.DurationVar(&interval, "interval", 10*time.Second, "wait between steps")
	f.StringVar(&vsName, "vs", "", "VirtualService to rewrite (default: SERVICE)")
	wf.register(cmd, true, "weights of each step before going on")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	return cmd
}

type shiftOptions struct {
	service, vs, from, to string
	steps                 []int
	interval              time.Duration
	wait                  waitFlags
}

func runShift(ctx context.Context, g *globals, c *client.Client, o shiftOptions) error {
	if o.from == o.to {
		return fmt.Errorf("--from and --to are both %q", o.from)
	}
	if len(o.steps) == 0 {
		return fmt.Errorf("--steps: give at least one percentage")
	}
	for _, s := range o.steps {
		if s < 0 || s > 100 {
			return fmt.Errorf("--steps: %d is not a percentage between 0 and 100", s)
		}
	}
	if o.interval < 0 {
		return fmt.Errorf("--interval must not be negative")
	}
	ns, explicit := g.ns()
	// A step, once started, completes: Ctrl-C only stops between steps.
	stepCtx := context.WithoutCancel(ctx)

	obj0, vs, err := getVirtualService(stepCtx, c, ns, o.vs)
	if err != nil {
		return err
	}
	// Refuse a VirtualService shift cannot rewrite before changing anything.
	first, err := shiftWeights(vs, o.service, o.from, o.to, o.steps[0])
	if err != nil {
		return fmt.Errorf("virtualservice %s/%s: %w", ns, o.vs, err)
	}
	if err := checkSubsets(stepCtx, c, obj0, first, o); err != nil {
		return err
	}
	fromW, toW, _ := currentSplit(vs, o.service, o.from, o.to)
	fmt.Println(describeSplit(o.from, o.to, fromW, toW))
	last := describeSplit(o.from, o.to, fromW, toW)

	for i, step := range o.steps {
		if i > 0 {
			select {
			case <-ctx.Done():
				fmt.Fprintf(os.Stderr, "interrupted: %s stays as applied: %s\n", resourceName(string(config.KindVirtualService), o.vs), last)
				return exitError{code: 130}
			case <-time.After(o.interval):
			}
		}
		// Re-read, so changes others made in between are kept.
		obj, vs, err := getVirtualService(stepCtx, c, ns, o.vs)
		if err != nil {
			return err
		}
		next, err := shiftWeights(vs, o.service, o.from, o.to, step)
		if err != nil {
			return fmt.Errorf("virtualservice %s/%s: %w", ns, o.vs, err)
		}
		src, err := shiftSource(obj, next)
		if err != nil {
			return err
		}
		resp, err := c.Apply(stepCtx, []client.Source{src}, client.ApplyOptions{Namespace: ns, NamespaceExplicit: explicit})
		if err != nil {
			return explainAPIError(err)
		}
		for _, r := range resp.Results {
			fmt.Printf("%s %s\n", resourceName(r.Kind, r.Name), r.Action)
		}
		printMessages(os.Stderr, resp.Messages)
		if o.wait.wait {
			if err := waitSynced(stepCtx, c, resp.Revision, o.wait.timeout); err != nil {
				return err
			}
		}
		last = describeSplit(o.from, o.to, 100-step, step)
		fmt.Println(last)
	}
	return nil
}

// shiftSource is obj with spec next, as the source of an apply or analysis.
func shiftSource(obj *config.Object, next *networking.VirtualService) (client.Source, error) {
	out := &config.Object{APIVersion: obj.APIVersion, Kind: obj.Kind, Spec: next, Meta: config.Meta{
		Name: obj.Meta.Name, Namespace: obj.Meta.Namespace, Labels: obj.Meta.Labels, Annotations: obj.Meta.Annotations,
	}}
	y, err := config.Marshal(out, config.FormatYAML)
	if err != nil {
		return client.Source{}, err
	}
	return client.Source{Name: "weft shift " + obj.Meta.Name, Content: string(y)}, nil
}

// checkSubsets refuses, before anything is applied, a shift to or from a
// subset no DestinationRule defines: every request sent there would fail
// with 503 (NC). The control plane's analyzer decides, on the mesh as it
// would be with the first step applied, so hosts and DestinationRules
// resolve exactly as they will for the proxies.
func checkSubsets(ctx context.Context, c *client.Client, obj *config.Object, next *networking.VirtualService, o shiftOptions) error {
	src, err := shiftSource(obj, next)
	if err != nil {
		return err
	}
	msgs, err := c.Analyze(ctx, obj.Meta.Namespace, []client.Source{src})
	if err != nil {
		return explainAPIError(err)
	}
	return undefinedSubsets(msgs, obj.Key(), subsetFields(next, o.service, o.from, o.to), o)
}

// subsetFields maps the field path of every subset in vs's HTTP routes that
// names subset from or to of service to that subset.
func subsetFields(vs *networking.VirtualService, service, from, to string) map[string]string {
	out := map[string]string{}
	for ri, r := range vs.GetHttp() {
		for di, d := range r.GetRoute() {
			dest := d.GetDestination()
			if ss := dest.GetSubset(); hostIsService(dest.GetHost(), service) && (ss == from || ss == to) {
				out[fmt.Sprintf("spec.http[%d].route[%d].destination.subset", ri, di)] = ss
			}
		}
	}
	return out
}

// undefinedSubsets turns the analyzer's undefined-subset findings (WEFT0101)
// about the shifted destinations of VirtualService key into one error,
// saying which subset, which DestinationRule or host, and where.
func undefinedSubsets(msgs []analyze.Message, key config.Key, fields map[string]string, o shiftOptions) error {
	var lines []string
	seen := map[string]bool{}
	for _, m := range msgs {
		subset, ok := fields[m.Field]
		if m.Code != analyze.CodeUndefinedSubset || m.Object != key || !ok || seen[subset] {
			continue
		}
		seen[subset] = true
		flag := "--to"
		if subset == o.from {
			flag = "--from"
		}
		text := strings.TrimSuffix(m.Text, "; requests will fail with 503")
		lines = append(lines, fmt.Sprintf("%s %s: %s (%s %s/%s %s)", flag, subset, text, strings.ToLower(string(key.Kind)), key.Namespace, key.Name, m.Field))
	}
	if len(lines) == 0 {
		return nil
	}
	sort.Strings(lines)
	return fmt.Errorf("nothing applied: every request shift %s sends to an undefined subset would fail with 503:\n  %s\ndefine the subset in the host's DestinationRule, then shift again",
		o.service, strings.Join(lines, "\n  "))
}

func getVirtualService(ctx context.Context, c *client.Client, ns, name string) (*config.Object, *networking.VirtualService, error) {
	obj, _, err := c.Get(ctx, string(config.KindVirtualService), ns, name, "")
	if err != nil {
		if client.IsNotFound(err) {
			return nil, nil, fmt.Errorf("virtualservice %s/%s not found (name another with --vs, or another namespace with -n)", ns, name)
		}
		return nil, nil, explainAPIError(err)
	}
	vs, ok := obj.Spec.(*networking.VirtualService)
	if !ok {
		return nil, nil, fmt.Errorf("virtualservice %s/%s: unexpected spec %T", ns, name, obj.Spec)
	}
	return obj, vs, nil
}

// describeSplit says where the traffic goes, as the seed's rollout script
// does: "90% traffic is routed to vm 10% to v1".
func describeSplit(from, to string, fromW, toW int) string {
	switch {
	case toW == 0:
		return "all traffic is routed to " + from
	case fromW == 0:
		return "all traffic is routed to " + to
	}
	return fmt.Sprintf("%d%% traffic is routed to %s %d%% to %s", fromW, from, toW, to)
}

// hostIsService reports whether a destination host names service: its
// short name, or a longer name starting with it ("service-b.default...").
func hostIsService(host, service string) bool {
	return host == service || strings.HasPrefix(host, service+".")
}

// routeWeight is a destination's effective weight: a lone destination
// without a weight takes all the route's traffic.
func routeWeight(route []*networking.HTTPRouteDestination, i int) int {
	if len(route) == 1 && route[0].GetWeight() == 0 {
		return 100
	}
	return int(route[i].GetWeight())
}

// currentSplit returns the weights of subsets from and to in the first
// HTTP route that sends to from.
func currentSplit(vs *networking.VirtualService, service, from, to string) (fromW, toW int, ok bool) {
	for _, r := range vs.GetHttp() {
		fi, ti := -1, -1
		for i, d := range r.GetRoute() {
			if !hostIsService(d.GetDestination().GetHost(), service) {
				continue
			}
			switch d.GetDestination().GetSubset() {
			case from:
				fi = i
			case to:
				ti = i
			}
		}
		if fi < 0 {
			continue
		}
		fromW = routeWeight(r.GetRoute(), fi)
		if ti >= 0 {
			toW = routeWeight(r.GetRoute(), ti)
		}
		return fromW, toW, true
	}
	return 0, 0, false
}

// shiftWeights returns a copy of vs in which every HTTP route that sends
// to subset from of service splits that traffic: 100-pct to from, pct to
// to (a destination added, copied from from's, when the route lacks it).
// A route that also sends traffic elsewhere is refused: its weights would
// no longer add up.
func shiftWeights(vs *networking.VirtualService, service, from, to string, pct int) (*networking.VirtualService, error) {
	if pct < 0 || pct > 100 {
		return nil, fmt.Errorf("step %d is not a percentage between 0 and 100", pct)
	}
	out := proto.Clone(vs).(*networking.VirtualService)
	changed := 0
	var seen []string
	for ri, r := range out.GetHttp() {
		fi, ti := -1, -1
		for i, d := range r.GetRoute() {
			dest := d.GetDestination()
			subset := dest.GetSubset()
			seen = append(seen, destName(dest))
			if hostIsService(dest.GetHost(), service) && (subset == from || subset == to) {
				idx := &fi
				if subset == to {
					idx = &ti
				}
				if *idx >= 0 {
					return nil, fmt.Errorf("http[%d] sends to subset %s of %s twice", ri, subset, service)
				}
				*idx = i
			}
		}
		if fi < 0 {
			continue
		}
		for i, d := range r.GetRoute() {
			if i != fi && i != ti && routeWeight(r.GetRoute(), i) > 0 {
				return nil, fmt.Errorf("http[%d] also sends %d%% to %s: shift moves traffic only in routes split between %s and %s",
					ri, d.GetWeight(), destName(d.GetDestination()), from, to)
			}
		}
		if ti < 0 {
			d := proto.Clone(r.Route[fi]).(*networking.HTTPRouteDestination)
			d.Destination.Subset = to
			r.Route = append(r.Route, d)
			ti = len(r.Route) - 1
		}
		r.Route[fi].Weight = int32(100 - pct)
		r.Route[ti].Weight = int32(pct)
		changed++
	}
	if changed == 0 {
		has := "it has no HTTP routes"
		if len(out.GetHttp()) > 0 {
			has = "its HTTP routes send to " + strings.Join(uniq(seen), ", ")
		}
		return nil, fmt.Errorf("no HTTP route sends to subset %s of %s (%s)", from, service, has)
	}
	return out, nil
}

func destName(d *networking.Destination) string {
	if d.GetSubset() == "" {
		return d.GetHost()
	}
	return d.GetHost() + " subset " + d.GetSubset()
}

func uniq(s []string) []string {
	sort.Strings(s)
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
