package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/model"
)

// exitFindings is istioctl analyze's exit status when analysis finds
// issues at or above --failure-threshold.
const exitFindings = 79

func newAnalyzeCmd(g *globals) *cobra.Command {
	var files []string
	var all, local bool
	var threshold string
	cmd := &cobra.Command{
		Use:   "analyze [-f FILE|DIR|- ...] [FILE ...] [--local] [-A]",
		Short: "Check the mesh configuration (plus any files given) for problems",
		Long: `Analyze checks the mesh's configuration as a whole and prints each finding
with a stable code (analyze/README.md). With files, it analyzes the mesh as it
would be with them applied.

--local analyzes the files alone, in this process, with no control plane
(istioctl's --use-kube=false): what a CI pipeline runs on a folder of YAML.
Hosts and gateways the files do not define are then unknown, and said so.
Files given while no control plane answers are analyzed the same way.

Exit status: 0 no finding at or above --failure-threshold; 79 some
(istioctl's code); 1 invalid input or no control plane to ask.`,
		Example: `  weft analyze -n coolapp
  weft analyze --local -f demo/bookinfo/   # in CI, no mesh running`,
		RunE: func(cmd *cobra.Command, args []string) error {
			min, err := analyze.ParseLevel(threshold)
			if err != nil {
				return fmt.Errorf("--failure-threshold: %w", err)
			}
			files = append(files, args...)
			ns, _ := g.ns()
			if all {
				ns = ""
			}
			var sources []client.Source
			if len(files) > 0 {
				if sources, err = readSources(files); err != nil {
					return err
				}
			} else if local {
				return fmt.Errorf("--local analyzes files: give -f FILE, -f DIR or -f -")
			}
			var msgs []analyze.Message
			if !local {
				msgs, err = g.client().Analyze(cmd.Context(), ns, sources)
				if client.IsUnreachable(err) && len(sources) > 0 {
					fmt.Fprintf(os.Stderr, "%v\nanalyzing the files alone, with no control plane (--local)\n", err)
					local = true
				} else if err != nil {
					return explainAPIError(err)
				}
			}
			what := "namespace: " + orAll(ns)
			if local {
				if msgs, err = analyzeLocally(sources, ns); err != nil {
					return err
				}
				what = "the files alone"
			}
			if len(msgs) == 0 {
				fmt.Println("✔ No validation issues found when analyzing " + what + ".")
				return nil
			}
			printMessages(os.Stdout, msgs)
			for _, m := range msgs {
				if m.Level.AtLeast(min) {
					return exitError{code: exitFindings}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "also analyze these files, as if applied (repeatable)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "analyze every namespace")
	cmd.Flags().BoolVar(&local, "local", false, "analyze the files alone, with no control plane (istioctl's --use-kube=false)")
	cmd.Flags().StringVar(&threshold, "failure-threshold", string(analyze.Warning), "the least serious finding that makes the exit status 79: Info, Warning or Error")
	return cmd
}

func orAll(ns string) string {
	if ns == "" {
		return "all"
	}
	return ns
}

// analyzeLocally decodes and validates sources as an apply would and
// analyzes them alone; ns fills in missing namespaces ("" for "default").
func analyzeLocally(sources []client.Source, ns string) ([]analyze.Message, error) {
	objs, errs := api.DecodeSources(sources, ns, false)
	if len(errs) > 0 {
		return nil, errs
	}
	return analyze.Analyze(model.Build(0, objs)), nil
}

// checkFilesLocally is `apply --dry-run=client`: validation and analysis
// of the files alone, printed as the server's dry run prints them.
func checkFilesLocally(sources []client.Source, ns string, explicit, strict bool) error {
	objs, errs := api.DecodeSources(sources, ns, explicit)
	if len(errs) > 0 {
		return errs
	}
	msgs := analyze.Analyze(model.Build(0, objs))
	if strict {
		n := 0
		for _, m := range msgs {
			if m.Level.AtLeast(analyze.Warning) {
				n++
			}
		}
		if n > 0 {
			printMessages(os.Stderr, msgs)
			return fmt.Errorf("strict mode: nothing would be applied because of %s", countOf(n, "finding", "findings"))
		}
	}
	for _, o := range objs {
		fmt.Printf("%s created (dry run)\n", resourceName(string(o.Kind), o.Meta.Name))
	}
	printMessages(os.Stderr, msgs)
	return nil
}

func newValidateCmd(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR|- [...] [FILE ...]",
		Short: "Validate configuration files, with no control plane (as `istioctl validate`)",
		Long: `Validate decodes and validates every object in the files, in this process:
the checks an apply makes before anything is stored (kinds, fields, values,
names, an object given twice, a namespace other than -n). It needs no
control plane. For cross-object checks, see analyze --local.

Exit status: 0 every file is valid; 1 otherwise.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			sources, err := readSources(append(files, args...))
			if err != nil {
				return err
			}
			ns, explicit := g.ns()
			_, errs := api.DecodeSources(sources, ns, explicit)
			bad := map[string]bool{}
			for _, e := range errs {
				bad[e.Source] = true
			}
			for _, s := range sources {
				if !bad[s.Name] {
					fmt.Printf("%q is valid\n", s.Name)
				}
			}
			if len(errs) == 0 {
				return nil
			}
			fmt.Fprintln(os.Stderr, errs.Error())
			return fmt.Errorf("%d of %s invalid", len(bad), countOf(len(sources), "file", "files"))
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - (repeatable)")
	return cmd
}
