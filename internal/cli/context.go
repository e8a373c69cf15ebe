package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/weft-mesh/weft/config"
)

// contextFile, in the state directory, holds the CLI's context: what
// kubeconfig's current context holds for kubectl (its namespace), kept
// beside the mesh it applies to, so each mesh folder has its own.
const contextFile = "context.yaml"

// cliContext is the content of STATE_DIR/context.yaml.
type cliContext struct {
	// Namespace is used by every command not given -n.
	Namespace string `json:"namespace,omitempty"`
}

// readContext reads STATE_DIR/context.yaml; a missing file is an empty
// context.
func readContext(stateDir string) (cliContext, error) {
	var c cliContext
	path := filepath.Join(stateDir, contextFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read context: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return c, fmt.Errorf("%s: %w (fix it, or set it again with `weft config set-context --namespace NS`)", path, err)
	}
	return c, nil
}

// writeContext records c in STATE_DIR/context.yaml, creating the state
// dir if need be.
func writeContext(stateDir string, c cliContext) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode context: %w", err)
	}
	path := filepath.Join(stateDir, contextFile)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write context: %w", err)
	}
	return nil
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config set-context|view",
		Short: "Show or set the CLI's context: the namespace commands use without -n",
		Long: `The context is kept in STATE_DIR/context.yaml (default .weft/context.yaml),
beside the mesh it applies to, as kubeconfig keeps kubectl's current context.
-n on any command overrides it.`,
	}
	cmd.AddCommand(newSetContextCmd(g), newViewConfigCmd(g))
	return cmd
}

func newSetContextCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set-context [--current] --namespace NS",
		Short: "Set the namespace every command uses without -n (as `oc project NS`)",
		Example: `  weft config set-context --namespace coolapp
  weft config set-context --current --namespace=   # back to "default"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("namespace") {
				return fmt.Errorf("nothing to set: give --namespace NS (or --namespace= to clear it)")
			}
			if g.namespace != "" {
				if err := config.ValidateNamespace(g.namespace); err != nil {
					return fmt.Errorf("--namespace: %w", err)
				}
			}
			c := g.context
			c.Namespace = g.namespace
			if err := writeContext(g.stateDir, c); err != nil {
				return err
			}
			ns := c.Namespace
			if ns == "" {
				ns = config.DefaultNamespace + " (cleared)"
			}
			fmt.Printf("Context modified: namespace %s (in %s).\n", ns, filepath.Join(g.stateDir, contextFile))
			return nil
		},
	}
	// kubectl's form; there is one context per state dir, so it changes nothing.
	cmd.Flags().Bool("current", false, "modify the current context (the only one: accepted for kubectl habits)")
	return cmd
}

func newViewConfigCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "view",
		Short: "Show the settings commands use: state dir, context file, namespace and control plane address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			viewConfig(os.Stdout, g)
			return nil
		},
	}
}

// viewConfig prints the effective settings as YAML, each with where it
// comes from.
func viewConfig(w io.Writer, g *globals) {
	path := filepath.Join(g.stateDir, contextFile)
	fmt.Fprintf(w, "state-dir: %s\n", yamlString(g.stateDir))
	fmt.Fprintf(w, "context: %s\n", yamlString(path))
	ns, origin := g.context.Namespace, "set with `weft config set-context`"
	if ns == "" {
		ns, origin = config.DefaultNamespace, "no context namespace set"
	}
	if g.namespace != "" {
		origin += "; -n " + g.namespace + " overrides it here"
	}
	fmt.Fprintf(w, "namespace: %s  # %s\n", yamlString(ns), origin)
	u, from := g.apiEndpoint()
	fmt.Fprintf(w, "server: %s  # %s\n", yamlString(u), from)
}

// yamlString quotes s when YAML would read it as something else.
func yamlString(s string) string {
	b, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSpace(string(b))
}
