// Package cli implements weft's command line, one file per command group.
package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
)

// globals are the flags every command shares.
type globals struct {
	stateDir  string
	server    string
	namespace string
	logLevel  string
	tokenFile string
}

// exitError carries a process exit code out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the CLI and returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "weft",
		Short:         "weft is a service mesh in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.stateDir, "state-dir", envOr("WEFT_STATE_DIR", ".weft"), "directory holding the local mesh's state (env WEFT_STATE_DIR)")
	pf.StringVar(&g.server, "server", os.Getenv("WEFT_SERVER"), "control plane API URL (default: from STATE_DIR/endpoints.json, else http://127.0.0.1:15080)")
	pf.StringVarP(&g.namespace, "namespace", "n", "", "namespace (default \"default\")")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.tokenFile, "token-file", "", "file holding the API token for writes (default: $WEFT_TOKEN, else STATE_DIR/api-token)")

	root.AddCommand(
		newUpCmd(g), newControlPlaneCmd(g),
		newApplyCmd(g), newGetCmd(g), newDeleteCmd(g), newDescribeCmd(g), newAnalyzeCmd(g),
		newRunCmd(g), newProxyCmd(g), newProxyConfigCmd(g), newDemoAppCmd(), newShiftCmd(g), newLoadCmd(g),
		newDashboardCmd(g), newTokenCmd(g),
	)
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ns returns the namespace to use and whether the user named it.
func (g *globals) ns() (string, bool) {
	if g.namespace != "" {
		return g.namespace, true
	}
	return config.DefaultNamespace, false
}

// apiURL finds the control plane: --server, else the state dir's
// endpoints.json, else the default address.
func (g *globals) apiURL() string {
	if g.server != "" {
		if !strings.Contains(g.server, "://") {
			return "http://" + g.server
		}
		return g.server
	}
	if e, err := client.ReadEndpoints(g.stateDir); err == nil && e.API != "" {
		return "http://" + e.API
	}
	return "http://127.0.0.1:15080"
}

// client returns the API client with the API token found the CLI's way
// (see apiClient).
func (g *globals) client() *client.Client { return apiClient(g.apiURL(), g.stateDir, g.tokenFile) }

func (g *globals) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}
