package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/controlplane"
)

// consoleTokenFile, in the state directory, holds the console's login
// token so `weft dashboard` can open a logged-in URL. Mode 0600: it grants
// read access to the mesh's telemetry.
const consoleTokenFile = "console-token"

// cpTelemetryFlags are the control plane's telemetry and console flags,
// shared by `weft up` and `weft controlplane`.
type cpTelemetryFlags struct {
	otlpEndpoint string
	consoleToken string
}

func (t *cpTelemetryFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&t.otlpEndpoint, "otlp-endpoint", "", "export spans over OTLP/HTTP (protobuf) to this collector, e.g. http://127.0.0.1:4318")
	fl.StringVar(&t.consoleToken, "console-token", os.Getenv("WEFT_CONSOLE_TOKEN"),
		"token the console asks for on a loopback API address (env WEFT_CONSOLE_TOKEN); on any other address the console logs in with the API token")
}

// writeConsoleToken records token in stateDir, or removes a stale one.
func writeConsoleToken(stateDir, token string) error {
	path := filepath.Join(stateDir, consoleTokenFile)
	if token == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale console token: %w", err)
		}
		return nil
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write console token: %w", err)
	}
	return nil
}

func newDashboardCmd(g *globals) *cobra.Command {
	var noOpen bool
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Print the console's URL and open it in a browser",
		Long: `Print the web console's URL (the control plane's API address, from
--server or STATE_DIR/endpoints.json) and open it with xdg-open (open on
macOS) when a desktop session is available.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := dashboardURL(g)
			fmt.Println(url)
			if err := probe(cmd.Context(), url); err != nil {
				_, origin := g.apiEndpoint()
				fmt.Fprintf(os.Stderr, "warning: %v (%s): is `weft up` running?\n", err, origin)
			}
			if !noOpen {
				openBrowser(url)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noOpen, "no-open", false, "only print the URL")
	return cmd
}

// dashboardURL is the console URL, logged in with the state dir's token
// when there is one.
func dashboardURL(g *globals) string {
	if g.server != "" {
		return strings.TrimSuffix(g.apiURL(), "/") + "/"
	}
	e, err := client.ReadEndpoints(g.stateDir)
	if err != nil || e.API == "" {
		return "http://127.0.0.1:15080/"
	}
	token := ""
	if b, err := os.ReadFile(filepath.Join(g.stateDir, consoleTokenFile)); err == nil {
		token = strings.TrimSpace(string(b))
	}
	return controlplane.ConsoleURL(e.API, token)
}

func probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	base, _, _ := strings.Cut(url, "?")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("console URL: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no control plane answers at %s", base)
	}
	resp.Body.Close()
	return nil
}

// openBrowser starts the desktop's URL opener, if any, without waiting
// for the browser.
func openBrowser(url string) {
	opener := "xdg-open"
	if runtime.GOOS == "darwin" {
		opener = "open"
	} else if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return // no desktop session: printing the URL is all we can do
	}
	path, err := exec.LookPath(opener)
	if err != nil {
		return
	}
	cmd := exec.Command(path, url)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "warning: %s: %v\n", opener, err)
		return
	}
	go cmd.Wait() //nolint:errcheck // the opener's exit status says nothing useful
}
