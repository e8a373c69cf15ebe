package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
)

// apiClient returns a client for the API at url (found as origin says)
// carrying the API token found the CLI's way (client.FindToken):
// tokenFile (--token-file), else $WEFT_TOKEN, else STATE_DIR/api-token. A
// token that cannot be read is no token: reads still work, and a refused
// write names the file and why it could not be read.
func apiClient(url, origin, stateDir, tokenFile string) *client.Client {
	tok, tokOrigin, err := client.FindToken(stateDir, tokenFile, os.Getenv)
	if err != nil {
		tokOrigin = err.Error()
	}
	return client.New(url, client.WithToken(tok), client.WithTokenOrigin(tokOrigin), client.WithOrigin(origin))
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
	return info.FullName() + "/" + name
}

func printMessages(w io.Writer, msgs []analyze.Message) {
	for _, m := range msgs {
		fmt.Fprintln(w, m.String())
	}
}

// Dry-run modes, as kubectl's --dry-run takes them.
const (
	dryRunNone   = "none"
	dryRunAuto   = "auto" // bare --dry-run: server if one answers, else client
	dryRunServer = "server"
	dryRunClient = "client"
)

func newApplyCmd(g *globals) *cobra.Command {
	var files []string
	var strict bool
	var dryRun string
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...] [--dry-run[=server|client]] [--strict] [--wait]",
		Short: "Create or replace configuration; one apply is one transaction",
		Long: `Apply creates or replaces every object in the files, all or none.

--dry-run changes nothing: with a control plane (--dry-run=server) it checks
the objects against the mesh's configuration; without one (--dry-run=client)
it validates the files and analyzes them alone, with no control plane, as a
CI pipeline lints YAML. A bare --dry-run is server when a control plane
answers, else client.

--wait returns only once every connected proxy has ACKed the new
configuration (the revision the apply made), or fails after --timeout.

Exit status: 0 applied (or would be); 1 refused: invalid input, --strict
findings, no control plane, or --wait failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sources, err := readSources(files)
			if err != nil {
				return err
			}
			ns, explicit := g.ns()
			switch dryRun {
			case dryRunNone, dryRunAuto, dryRunServer:
			case dryRunClient:
				return checkFilesLocally(sources, ns, explicit, strict)
			default:
				return fmt.Errorf("--dry-run=%q: want server or client", dryRun)
			}
			c := g.client()
			opts := client.ApplyOptions{Namespace: ns, NamespaceExplicit: explicit, Strict: strict, DryRun: dryRun != dryRunNone}
			resp, err := c.Apply(cmd.Context(), sources, opts)
			if err != nil {
				if dryRun == dryRunAuto && client.IsUnreachable(err) {
					fmt.Fprintf(os.Stderr, "%v\nchecking the files alone, with no control plane (--dry-run=client)\n", err)
					return checkFilesLocally(sources, ns, explicit, strict)
				}
				return explainAPIError(err)
			}
			suffix := ""
			if opts.DryRun {
				suffix = " (server dry run)"
			}
			for _, r := range resp.Results {
				fmt.Printf("%s %s%s\n", resourceName(r.Kind, r.Name), r.Action, suffix)
			}
			printMessages(os.Stderr, resp.Messages)
			if resp.OmittedMessages > 0 {
				fmt.Fprintf(os.Stderr, "... and %d more findings (weft analyze lists them all)\n", resp.OmittedMessages)
			}
			if wf.wait && !opts.DryRun {
				return waitSynced(cmd.Context(), c, resp.Revision, wf.timeout)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file, directory or - (repeatable)")
	cmd.Flags().BoolVar(&strict, "strict", false, "refuse the whole apply if analysis finds any warning")
	cmd.Flags().StringVar(&dryRun, "dry-run", dryRunNone, "change nothing: server checks against the control plane, client checks the files alone with no control plane (bare --dry-run: server if one answers, else client)")
	cmd.Flags().Lookup("dry-run").NoOptDefVal = dryRunAuto
	wf.register(cmd, false, "applied configuration")
	return cmd
}

// explainAPIError prints analysis messages one per line and returns the
// error without repeating them: a --strict refusal lists its findings
// once.
func explainAPIError(err error) error {
	var ae *client.APIError
	if !errors.As(err, &ae) {
		return err
	}
	msg := strings.TrimSpace(ae.Message)
	if len(ae.Messages) > 0 {
		printMessages(os.Stderr, ae.Messages)
		printed := make(map[string]bool, len(ae.Messages))
		for _, m := range ae.Messages {
			printed[m.String()] = true
		}
		var rest []string
		for _, line := range strings.Split(msg, "\n") {
			if !printed[line] {
				rest = append(rest, line)
			}
		}
		msg = strings.TrimSuffix(strings.Join(rest, "\n"), ":")
	}
	return errors.New(msg)
}

func newDeleteCmd(g *globals) *cobra.Command {
	var files []string
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "delete (KIND NAME... | -f FILE) [--wait]",
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
			} else {
				if len(args) < 2 {
					return fmt.Errorf("give KIND and NAME, or -f FILE")
				}
				info, err := lookupKind(args[0])
				if err != nil {
					return err
				}
				for _, name := range args[1:] {
					if _, err := c.Delete(cmd.Context(), string(info.Kind), ns, name); err != nil {
						return explainAPIError(err)
					}
					fmt.Printf("%s deleted\n", resourceName(string(info.Kind), name))
				}
			}
			if wf.wait {
				return waitSynced(cmd.Context(), c, 0, wf.timeout) // 0: the revision after the delete, or later
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "delete the objects these files name")
	wf.register(cmd, false, "configuration without the deleted objects")
	return cmd
}

// lookupKind resolves a kind as the user spells it, or says which exist.
func lookupKind(name string) (config.KindInfo, error) {
	info, ok := config.LookupKind(name)
	if !ok {
		return info, fmt.Errorf("unknown kind %q: want one of %s (`weft api-resources` lists them)", name, kindPlurals())
	}
	return info, nil
}

// kindPlurals lists the kinds as `weft get` takes them.
func kindPlurals() string {
	names := make([]string, len(config.Kinds))
	for i, k := range config.Kinds {
		names[i] = k.Plural
	}
	return strings.Join(names, ", ")
}
