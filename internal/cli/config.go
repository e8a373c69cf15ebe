package cli

import (
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
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
	maistrav1 "github.com/weft-mesh/weft/config/apis/maistra/v1"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
)

// apiClient returns a client for the API at url carrying the API token
// found the CLI's way (client.FindToken): tokenFile (--token-file), else
// $WEFT_TOKEN, else STATE_DIR/api-token. A token that cannot be read is no
// token: reads still work, and a refused write names the file and why it
// could not be read.
func apiClient(url, stateDir, tokenFile string) *client.Client {
	tok, origin, err := client.FindToken(stateDir, tokenFile, os.Getenv)
	if err != nil {
		origin = err.Error()
	}
	return client.New(url, client.WithToken(tok), client.WithTokenOrigin(origin))
}

// readSources reads every -f argument: a file, a directory (its .yaml,
// .yml and .json files) or "-" for stdin.
func readSources(files []string) ([]client.Source, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("no input: give -f FILE, -f DIR or -f -")
	}
	return client.LoadSources(os.Stdin, files...)
}

// resourceName is how kubectl names an object in its output:
// "virtualservice.networking.istio.io/catalog".
func resourceName(kind, name string) string {
	info, ok := config.LookupKind(kind)
	if !ok {
		return strings.ToLower(kind) + "/" + name
	}
	return strings.ToLower(string(info.Kind)) + "." + info.Group + "/" + name
}

func printMessages(w io.Writer, msgs []analyze.Message) {
	for _, m := range msgs {
		fmt.Fprintln(w, m.String())
	}
}

func newApplyCmd(g *globals) *cobra.Command {
	var files []string
	var strict, dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...]",
		Short: "Create or replace configuration; one apply is one transaction",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sources, err := readSources(files)
			if err != nil {
				return err
			}
			ns, explicit := g.ns()
			resp, err := g.client().Apply(cmd.Context(), sources, client.ApplyOptions{Namespace: ns, NamespaceExplicit: explicit, Strict: strict, DryRun: dryRun})
			if err != nil {
				return explainAPIError(err)
			}
			suffix := ""
			if dryRun {
				suffix = " (dry run)"
			}
			for _, r := range resp.Results {
				fmt.Printf("%s %s%s\n", resourceName(r.Kind, r.Name), r.Action, suffix)
			}
			printMessages(os.Stderr, resp.Messages)
			if resp.OmittedMessages > 0 {
				fmt.Fprintf(os.Stderr, "... and %d more findings (weft analyze lists them all)\n", resp.OmittedMessages)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - (repeatable)")
	cmd.Flags().BoolVar(&strict, "strict", false, "refuse the whole apply if analysis finds any warning")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and analyze only; change nothing")
	return cmd
}

// explainAPIError prints field errors and analysis messages one per line.
func explainAPIError(err error) error {
	ae, ok := err.(*client.APIError)
	if !ok {
		return err
	}
	if len(ae.Messages) > 0 {
		printMessages(os.Stderr, ae.Messages)
	}
	return fmt.Errorf("%s", strings.TrimSpace(ae.Message))
}

func newDeleteCmd(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILE)",
		Short: "Delete configuration objects",
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, explicit := g.ns()
			c := g.client()
			if len(files) > 0 {
				sources, err := readSources(files)
				if err != nil {
					return err
				}
				results, err := c.DeleteSources(cmd.Context(), sources, client.DeleteOptions{Namespace: ns, NamespaceExplicit: explicit})
				if err != nil {
					return explainAPIError(err)
				}
				for _, r := range results {
					fmt.Printf("%s deleted\n", resourceName(r.Kind, r.Name))
				}
				return nil
			}
			if len(args) < 2 {
				return fmt.Errorf("give KIND and NAME, or -f FILE")
			}
			info, ok := config.LookupKind(args[0])
			if !ok {
				return fmt.Errorf("unknown kind %q", args[0])
			}
			for _, name := range args[1:] {
				if _, err := c.Delete(cmd.Context(), string(info.Kind), ns, name); err != nil {
					return explainAPIError(err)
				}
				fmt.Printf("%s deleted\n", resourceName(string(info.Kind), name))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "delete the objects these files name")
	return cmd
}

func newGetCmd(g *globals) *cobra.Command {
	var output string
	var all bool
	cmd := &cobra.Command{
		Use:   "get KIND [NAME] [-o yaml|json|wide]",
		Short: "List configuration objects",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, _ := g.ns()
			if all {
				ns = ""
			}
			kind := "all"
			if args[0] != "all" {
				info, ok := config.LookupKind(args[0])
				if !ok {
					return fmt.Errorf("unknown kind %q: want one of %s", args[0], kindPlurals())
				}
				kind = string(info.Kind)
			}
			if output != "" && output != "wide" && output != "yaml" && output != "json" {
				return fmt.Errorf("-o %q: want yaml, json or wide", output)
			}
			format := ""
			if output == "yaml" || output == "json" {
				format = output
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
			if len(objs) == 0 {
				if ns == "" {
					fmt.Fprintln(os.Stderr, "No resources found")
				} else {
					fmt.Fprintf(os.Stderr, "No resources found in %s namespace.\n", ns)
				}
				return nil
			}
			printTable(os.Stdout, objs, output == "wide", ns == "")
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: yaml, json or wide")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	return cmd
}

// printTable prints objects like kubectl: one table per kind.
func printTable(w io.Writer, objs []*config.Object, wide, withNS bool) {
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
		cols := columns(k, wide)
		head := cols
		if withNS {
			head = append([]string{"NAMESPACE"}, cols...)
		}
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for _, o := range byKind[k] {
			row := cells(o, wide)
			if withNS {
				row = append([]string{o.Meta.Namespace}, row...)
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	}
}

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
	// kubectl's columns for Istio's security kinds (their CRDs' printer
	// columns), and the like for weft's and Maistra's.
	case config.KindPeerAuthentication:
		c = []string{"NAME", "MODE", "AGE"}
	case config.KindAuthorizationPolicy:
		c = []string{"NAME", "ACTION", "AGE"}
	case config.KindRateLimit:
		c = []string{"NAME", "LIMIT", "ROUTES", "AGE"}
	case config.KindServiceMeshMemberRoll:
		c = []string{"NAME", "MEMBERS", "AGE"}
	default:
		c = []string{"NAME", "AGE"}
	}
	if wide {
		c = append(c, "LABELS", "GENERATION", "RESOURCE-VERSION")
	}
	return c
}

func cells(o *config.Object, wide bool) []string {
	age := humanAge(o.Meta.CreationTimestamp)
	list := func(s []string) string { return "[" + strings.Join(s, ",") + "]" }
	var c []string
	switch spec := o.Spec.(type) {
	case *networking.VirtualService:
		c = []string{o.Meta.Name, list(spec.GetGateways()), list(spec.GetHosts()), age}
	case *networking.DestinationRule:
		c = []string{o.Meta.Name, spec.GetHost(), age}
	case *networking.ServiceEntry:
		c = []string{o.Meta.Name, list(spec.GetHosts()), spec.GetLocation().String(), spec.GetResolution().String(), age}
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
		c = []string{o.Meta.Name, limitString(spec.GetLimit()), list(spec.GetRoutes()), age}
	case *maistrav1.ServiceMeshMemberRoll:
		c = []string{o.Meta.Name, list(spec.GetMembers()), age}
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

// kindPlurals lists the kinds as `weft get` takes them.
func kindPlurals() string {
	names := make([]string, len(config.Kinds))
	for i, k := range config.Kinds {
		names[i] = k.Plural
	}
	return strings.Join(names, ", ")
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
			info, ok := config.LookupKind(args[0])
			if !ok {
				return fmt.Errorf("unknown kind %q", args[0])
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

func newAnalyzeCmd(g *globals) *cobra.Command {
	var files []string
	var all bool
	cmd := &cobra.Command{
		Use:   "analyze [-f FILE]",
		Short: "Check the mesh configuration (plus any files given) for problems",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, _ := g.ns()
			if all {
				ns = ""
			}
			var sources []client.Source
			if len(files) > 0 {
				var err error
				if sources, err = readSources(files); err != nil {
					return err
				}
			}
			msgs, err := g.client().Analyze(cmd.Context(), ns, sources)
			if err != nil {
				return explainAPIError(err)
			}
			if len(msgs) == 0 {
				fmt.Println("✔ No validation issues found when analyzing namespace: " + orAll(ns) + ".")
				return nil
			}
			printMessages(os.Stdout, msgs)
			for _, m := range msgs {
				if m.Level == analyze.Error || m.Level == analyze.Warning {
					return exitError{code: 79} // istioctl analyze's exit code for findings
				}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "also analyze these files, as if applied")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "analyze every namespace")
	return cmd
}

func orAll(ns string) string {
	if ns == "" {
		return "all"
	}
	return ns
}
