package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	maistrav1 "github.com/weft-mesh/weft/config/apis/maistra/v1"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
)

func newGetCmd(g *globals) *cobra.Command {
	var output string
	var all bool
	cmd := &cobra.Command{
		Use:   "get KIND|all [NAME] [-o yaml|json|wide|name] [-A]",
		Short: "List configuration objects",
		Long: `List objects of a kind, given as kubectl takes it: plural, singular, short
name (vs, dr, gw, se, we, pa, ra, ap, rl, smmr) or full name
(virtualservice.networking.istio.io); "all" lists every kind, each row named
KIND.GROUP/NAME. Without a kind, get lists the kinds.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				printKinds(os.Stdout)
				return fmt.Errorf("you must specify the kind to get: one of those above, or all")
			}
			ns, _ := g.ns()
			if all {
				ns = ""
			}
			kind := "all"
			if !strings.EqualFold(args[0], "all") {
				info, err := lookupKind(args[0])
				if err != nil {
					return err
				}
				kind = string(info.Kind)
			} else if len(args) == 2 {
				return fmt.Errorf("get all takes no NAME: name a kind to get one object")
			}
			format := ""
			switch output {
			case "", "wide", "name":
			case "yaml", "json":
				format = output
			default:
				return fmt.Errorf("-o %q: want yaml, json, wide or name", output)
			}
			c := g.client()
			var objs []*config.Object
			var raw []byte
			if len(args) == 2 {
				o, b, err := c.Get(cmd.Context(), kind, ns, args[1], format)
				if err != nil {
					return explainAPIError(err)
				}
				objs, raw = []*config.Object{o}, b
			} else {
				list, err := c.List(cmd.Context(), kind, ns, format)
				if err != nil {
					return explainAPIError(err)
				}
				objs, raw = list.Items, list.Raw
			}
			if format != "" {
				os.Stdout.Write(raw)
				return nil
			}
			if output == "name" {
				for _, o := range objs {
					fmt.Println(resourceName(string(o.Kind), o.Meta.Name))
				}
				return nil
			}
			if len(objs) == 0 {
				if ns == "" {
					fmt.Fprintln(os.Stderr, "No resources found")
				} else {
					fmt.Fprintf(os.Stderr, "No resources found in %s namespace.\n", ns)
				}
				return nil
			}
			printTable(os.Stdout, objs, tableOptions{wide: output == "wide", withNS: ns == "", withKind: kind == "all"})
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: yaml, json, wide or name")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	return cmd
}

func newAPIResourcesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "api-resources",
		Short: "List the kinds weft stores, with their short names (as `kubectl api-resources`)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			printKinds(os.Stdout)
			return nil
		},
	}
}

// printKinds prints the kinds as `kubectl api-resources` does.
func printKinds(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND")
	for _, k := range config.Kinds {
		fmt.Fprintf(tw, "%s\t%s\t%s\ttrue\t%s\n", k.Plural, strings.Join(k.Short, ","), k.PreferredAPIVersion(), k.Kind)
	}
	tw.Flush()
}

type tableOptions struct {
	wide     bool // kubectl's -o wide: labels, generation, resource version too
	withNS   bool // a NAMESPACE column first (-A)
	withKind bool // names as KIND.GROUP/NAME (get all)
}

// printTable prints objects like kubectl: one table per kind, separated by
// a blank line.
func printTable(w io.Writer, objs []*config.Object, opt tableOptions) {
	byKind := map[config.Kind][]*config.Object{}
	var kinds []config.Kind
	for _, o := range objs {
		if _, ok := byKind[o.Kind]; !ok {
			kinds = append(kinds, o.Kind)
		}
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	for i, k := range kinds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		head := columns(k, opt.wide)
		if opt.withNS {
			head = append([]string{"NAMESPACE"}, head...)
		}
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for _, o := range byKind[k] {
			row := cells(o, opt.wide)
			if opt.withKind {
				row[0] = resourceName(string(o.Kind), row[0])
			}
			if opt.withNS {
				row = append([]string{o.Meta.Namespace}, row...)
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	}
}

// columns are the printer columns of Istio's CRDs (and the like for
// weft's and Maistra's kinds), as kubectl shows them.
func columns(k config.Kind, wide bool) []string {
	var c []string
	switch k {
	case config.KindVirtualService:
		c = []string{"NAME", "GATEWAYS", "HOSTS", "AGE"}
	case config.KindDestinationRule:
		c = []string{"NAME", "HOST", "AGE"}
	case config.KindServiceEntry:
		c = []string{"NAME", "HOSTS", "LOCATION", "RESOLUTION", "AGE"}
	case config.KindWorkloadEntry:
		c = []string{"NAME", "AGE", "ADDRESS"}
	case config.KindPeerAuthentication:
		c = []string{"NAME", "MODE", "AGE"}
	case config.KindAuthorizationPolicy:
		c = []string{"NAME", "ACTION", "AGE"}
	case config.KindRateLimit:
		c = []string{"NAME", "LIMIT", "ROUTES", "AGE"}
	case config.KindServiceMeshMemberRoll:
		c = []string{"NAME", "MEMBERS", "AGE"}
	case config.KindCanary, config.KindMetricTemplate:
		c = canaryColumns(k, wide)
	default:
		c = []string{"NAME", "AGE"}
	}
	if wide {
		c = append(c, "LABELS", "GENERATION", "RESOURCE-VERSION")
	}
	return c
}

// jsonList renders a list column as kubectl renders a JSONPath that
// selects an array: ["a","b"]; an empty list is an empty cell.
func jsonList(s []string) string {
	if len(s) == 0 {
		return ""
	}
	b, err := json.Marshal(s)
	if err != nil {
		return strings.Join(s, ",")
	}
	return string(b)
}

func cells(o *config.Object, wide bool) []string {
	age := humanAge(o.Meta.CreationTimestamp)
	var c []string
	switch spec := o.Spec.(type) {
	case *networking.VirtualService:
		c = []string{o.Meta.Name, jsonList(spec.GetGateways()), jsonList(spec.GetHosts()), age}
	case *networking.DestinationRule:
		c = []string{o.Meta.Name, spec.GetHost(), age}
	case *networking.ServiceEntry:
		c = []string{o.Meta.Name, jsonList(spec.GetHosts()), spec.GetLocation().String(), spec.GetResolution().String(), age}
	case *networking.WorkloadEntry:
		c = []string{o.Meta.Name, age, spec.GetAddress()}
	case *security.PeerAuthentication:
		mode := spec.GetMtls().GetMode().String()
		if spec.GetMtls() == nil {
			mode = "" // kubectl prints nothing for an absent field
		}
		c = []string{o.Meta.Name, mode, age}
	case *security.AuthorizationPolicy:
		c = []string{o.Meta.Name, spec.GetAction().String(), age}
	case *weftv1alpha1.RateLimit:
		c = []string{o.Meta.Name, limitString(spec.GetLimit()), jsonList(spec.GetRoutes()), age}
	case *maistrav1.ServiceMeshMemberRoll:
		c = []string{o.Meta.Name, jsonList(spec.GetMembers()), age}
	case *flaggerv1beta1.Canary, *flaggerv1beta1.MetricTemplate:
		c = canaryCells(o, wide)
	default:
		c = []string{o.Meta.Name, age}
	}
	if wide {
		var labels []string
		for k, v := range o.Meta.Labels {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		l := strings.Join(labels, ",")
		if l == "" {
			l = "<none>"
		}
		c = append(c, l, fmt.Sprint(o.Meta.Generation), o.Meta.ResourceVersion)
	}
	return c
}

// limitString renders a RateLimit's limit as "100/1s burst 200".
func limitString(l *weftv1alpha1.Limit) string {
	if l == nil {
		return ""
	}
	s := fmt.Sprintf("%d/%s", l.GetRequests(), l.GetPer().AsDuration())
	if b := l.GetBurst(); b != 0 && b != l.GetRequests() {
		s += fmt.Sprintf(" burst %d", b)
	}
	return s
}

func humanAge(t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func newDescribeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show one object in detail, with analysis messages about it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, _ := g.ns()
			info, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			c := g.client()
			o, _, err := c.Get(cmd.Context(), string(info.Kind), ns, args[1], "")
			if err != nil {
				return explainAPIError(err)
			}
			msgs, err := c.Analyze(cmd.Context(), ns, nil)
			if err != nil {
				return explainAPIError(err)
			}
			if info.Kind == config.KindCanary {
				cr, err := c.Canary(cmd.Context(), ns, args[1])
				if err != nil {
					fmt.Fprintln(os.Stderr, "canary analysis:", err)
				}
				describeCanary(os.Stdout, o, info, msgs, cr)
				return nil
			}
			describe(os.Stdout, o, info, msgs)
			return nil
		},
	}
}

func describe(w io.Writer, o *config.Object, info config.KindInfo, msgs []analyze.Message) {
	kv := func(m map[string]string) string {
		if len(m) == 0 {
			return "<none>"
		}
		var s []string
		for k, v := range m {
			s = append(s, k+"="+v)
		}
		sort.Strings(s)
		return strings.Join(s, "\n              ")
	}
	fmt.Fprintf(w, "Name:         %s\nNamespace:    %s\nLabels:       %s\nAnnotations:  %s\n", o.Meta.Name, o.Meta.Namespace, kv(o.Meta.Labels), kv(o.Meta.Annotations))
	fmt.Fprintf(w, "API Version:  %s\nKind:         %s\n", info.PreferredAPIVersion(), o.Kind)
	fmt.Fprintf(w, "Metadata:\n  Creation Timestamp:  %s\n  Generation:          %d\n  Resource Version:    %s\n",
		o.Meta.CreationTimestamp.Format(time.RFC3339), o.Meta.Generation, o.Meta.ResourceVersion)
	full, err := config.Marshal(o, "yaml")
	if err == nil {
		if _, spec, ok := strings.Cut(string(full), "\nspec:\n"); ok {
			fmt.Fprintf(w, "Spec:\n%s", spec)
		}
	}
	fmt.Fprintln(w, "Analysis:")
	n := 0
	for _, m := range msgs {
		if m.Object == o.Key() {
			fmt.Fprintf(w, "  %s\n", m.String())
			n++
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "  <none>")
	}
}
