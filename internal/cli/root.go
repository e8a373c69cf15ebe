// Package cli implements weft's command line, one file per command group.
package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/internal/version"
)

// globals are the flags every command shares, and what the root command
// reads before any of them runs.
type globals struct {
	stateDir       string
	server         string
	namespace      string
	logLevel       string
	logFile        string
	stderrLogLevel string // hidden: the terminal's level, when not --log-level (up passes it to its demo workloads)
	tokenFile      string

	serverFromFlag bool       // --server given (else it came from $WEFT_SERVER)
	logLevelSet    bool       // --log-level given
	quietLogs      bool       // up: only warnings on the terminal unless --log-level says otherwise
	context        cliContext // STATE_DIR/context.yaml: the default namespace
	logOut         *os.File   // --log-file, opened before the command runs
}

// exitError carries a process exit code out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// Main runs the CLI and returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if startCPUProfile != nil {
		if path := os.Getenv(cpuProfileEnv); path != "" {
			stopProfile, err := startCPUProfile(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "error:", err)
				return 1
			}
			defer stopProfile()
		}
	}
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
		Version:       version.Get().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.prepare(cmd)
		},
	}
	root.SetVersionTemplate("weft version {{.Version}}\n")
	// Defined now rather than at Execute, so `weft --version --server X`
	// parses --version as the flag it is.
	root.InitDefaultVersionFlag()
	pf := root.PersistentFlags()
	pf.StringVar(&g.stateDir, "state-dir", envOr("WEFT_STATE_DIR", ".weft"), "directory holding the local mesh's state (env WEFT_STATE_DIR)")
	pf.StringVar(&g.server, "server", os.Getenv("WEFT_SERVER"), "control plane API URL (env WEFT_SERVER; default: from STATE_DIR/endpoints.json, else http://127.0.0.1:15080)")
	pf.StringVarP(&g.namespace, "namespace", "n", "", "namespace (default: the context's, see `weft config view`, else \"default\")")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error (`weft up` shows only warnings on the terminal unless this is given)")
	pf.StringVar(&g.logFile, "log-file", "", "also append the log, at --log-level, to this file")
	pf.StringVar(&g.stderrLogLevel, "stderr-log-level", "", "level of the log lines on the terminal (default: --log-level)")
	pf.MarkHidden("stderr-log-level")
	pf.StringVar(&g.tokenFile, "token-file", "", "file holding the API token for writes (default: $WEFT_TOKEN, else STATE_DIR/api-token)")

	root.AddCommand(
		newUpCmd(g), newControlPlaneCmd(g), newResetCmd(g),
		newApplyCmd(g), newGetCmd(g), newDeleteCmd(g), newDescribeCmd(g), newAnalyzeCmd(g), newValidateCmd(g),
		newAPIResourcesCmd(), newConfigCmd(g), newVersionCmd(g),
		newRunCmd(g), newProxyCmd(g), newProxyConfigCmd(g), newDemoAppCmd(), newShiftCmd(g), newLoadCmd(g),
		newDashboardCmd(g), newKubeCmd(), newIPTablesCmd(), newBootstrapCmd(g), newTokenCmd(g), newCanaryCmd(g),
	)
	return root
}

// prepare runs before every command: it notes which flags were given,
// opens --log-file and reads the namespace context from the state dir.
func (g *globals) prepare(cmd *cobra.Command) error {
	g.serverFromFlag = cmd.Flags().Changed("server")
	g.logLevelSet = cmd.Flags().Changed("log-level")
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	if g.logFile != "" {
		f, err := os.OpenFile(g.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		g.logOut = f // closed when the process exits
	}
	c, err := readContext(g.stateDir)
	if err != nil {
		return err
	}
	g.context = c
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ns returns the namespace to use and whether the user named it with -n:
// -n, else the context's namespace (`weft config set-context`), else
// "default". Only -n is explicit: as with kubectl, objects that name
// another namespace are refused under -n and keep theirs otherwise.
func (g *globals) ns() (string, bool) {
	if g.namespace != "" {
		return g.namespace, true
	}
	if g.context.Namespace != "" {
		return g.context.Namespace, false
	}
	return config.DefaultNamespace, false
}

// defaultAPI is the control plane API address when nothing names another.
const defaultAPI = "http://127.0.0.1:15080"

// apiEndpoint finds the control plane: --server, else the state dir's
// endpoints.json, else the default address; origin says which, for
// messages when nothing answers there.
func (g *globals) apiEndpoint() (url, origin string) {
	if g.server != "" {
		origin = "from --server"
		if !g.serverFromFlag {
			origin = "from $WEFT_SERVER"
		}
		if !strings.Contains(g.server, "://") {
			return "http://" + g.server, origin
		}
		return g.server, origin
	}
	endpoints := filepath.Join(g.stateDir, client.EndpointsFile)
	if e, err := client.ReadEndpoints(g.stateDir); err == nil && e.API != "" {
		return "http://" + e.API, "from " + endpoints
	}
	return defaultAPI, "the default address: no " + endpoints + " names another; give --server, or --state-dir where `weft up` runs"
}

// apiURL is apiEndpoint's URL.
func (g *globals) apiURL() string {
	u, _ := g.apiEndpoint()
	return u
}

// client returns the API client with the API token found the CLI's way
// (see apiClient), which says where it looked when nothing answers.
func (g *globals) client() *client.Client {
	u, origin := g.apiEndpoint()
	return apiClient(u, origin, g.stateDir, g.tokenFile)
}

// logger logs at --log-level to --log-file, if given, and to the
// terminal at --stderr-log-level, else warnings only for `weft up` (its
// start-up INFO lines are for --log-level or the log file), else at
// --log-level.
func (g *globals) logger() *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(g.logLevel)) // checked in prepare
	term := lvl
	switch {
	case g.stderrLogLevel != "":
		if err := term.UnmarshalText([]byte(g.stderrLogLevel)); err != nil {
			term = lvl
		}
	case g.quietLogs && !g.logLevelSet:
		term = slog.LevelWarn
	}
	h := slog.Handler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: term}))
	if g.logOut != nil {
		h = slog.NewMultiHandler(h, slog.NewTextHandler(g.logOut, &slog.HandlerOptions{Level: lvl}))
	}
	return slog.New(h)
}

// terminalLogLevel is the level logger writes to the terminal at, for
// child processes to do the same.
func (g *globals) terminalLogLevel() string {
	switch {
	case g.stderrLogLevel != "":
		return g.stderrLogLevel
	case g.quietLogs && !g.logLevelSet:
		return "warn"
	}
	return g.logLevel
}

// cpuProfileEnv names a file to write a CPU profile of the whole command
// to (pprof format), until it exits, in a binary built with the tag
// weftprofile (see profile.go): how bench/pgo.sh profiles a proxy under
// load for default.pgo.
const cpuProfileEnv = "WEFT_CPU_PROFILE"

// startCPUProfile is set in binaries built with the tag weftprofile. The
// others do not link runtime/pprof: linking it turns on the runtime's
// heap profiling, whose stack walks touch the symbol tables and add about
// 10 MB of the binary to every process's RSS.
var startCPUProfile func(path string) (stop func(), err error)
