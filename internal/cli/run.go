package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/demo"
	"github.com/weft-mesh/weft/proxy"
	"github.com/weft-mesh/weft/proxy/accesslog"
	"github.com/weft-mesh/weft/proxy/trace"
	"github.com/weft-mesh/weft/workload"
)

func newRunCmd(g *globals) *cobra.Command {
	o := workload.Options{}
	var labels, xds, joinTokenFile string
	var port uint32
	tf := &telemetryFlags{}
	cmd := &cobra.Command{
		Use:   "run --service NAME --port P [--labels k=v,...] [--name INSTANCE] -- CMD [ARGS...]",
		Short: "Run a process in the mesh, behind its own sidecar",
		Long: `Run CMD with a sidecar. CMD listens on 127.0.0.1:$PORT; callers reach it as
http://NAME:P. CMD's outbound HTTP goes through the sidecar (HTTP_PROXY is set).
The instance is registered as a WorkloadEntry (and NAME's ServiceEntry created
if missing) once it listens, and removed when CMD exits.`,
		Example: `  weft run --service catalog --port 8080 --labels app=catalog,version=v1 -- ./catalog
  weft run --service hello --port 8080 -- sh -c 'exec python3 -m http.server --bind 127.0.0.1 "$PORT"'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("weft run needs the command to run, after --:\n  %s\nfor example:\n%s", "weft "+cmd.Use, cmd.Example)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Service == "" || port == 0 {
				return fmt.Errorf("weft run needs --service and --port (the name and port callers use):\n  %s", "weft "+cmd.Use)
			}
			l, err := workload.ParseLabels(labels)
			if err != nil {
				return fmt.Errorf("--labels: %w", err)
			}
			o.Labels, o.Command, o.Port = l, args, port
			o.Namespace, _ = g.ns()
			o.API = g.client()
			o.TelemetryURL = g.apiURL()
			if err := tf.apply(&o.TraceSampling, &o.AccessLog); err != nil {
				return err
			}
			o.Log = g.logger()
			if o.JoinToken, err = findJoinToken(joinTokenFile, os.Getenv); err != nil {
				return err
			}
			if o.JoinToken == "" {
				tok, revoke, err := mintJoinToken(cmd.Context(), o.API, o.Namespace, o.ServiceAccount, "weft run "+o.Namespace+"/"+o.Service)
				if err != nil {
					return err
				}
				defer revoke()
				o.JoinToken = tok
			}
			o.XDS, o.XDSOrigin = xds, "from --xds"
			if o.XDS == "" {
				endpoints := filepath.Join(g.stateDir, client.EndpointsFile)
				e, err := client.ReadEndpoints(g.stateDir)
				if err != nil || e.XDS == "" {
					o.XDS, o.XDSOrigin = "127.0.0.1:15010", "the default address: no "+endpoints+" names another"
				} else {
					o.XDS, o.XDSOrigin = e.XDS, "from "+endpoints
				}
			}
			err = workload.Run(cmd.Context(), o)
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return exitError{code: ee.ExitCode()}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Service, "service", "", "service name callers use (required)")
	f.Uint32Var(&port, "port", 0, "service port callers use (required)")
	f.StringVar(&o.Protocol, "protocol", "HTTP", "service port protocol: HTTP, HTTP2, GRPC or TCP (TCP: the sidecar proxies raw TCP to the app)")
	f.StringVar(&labels, "labels", "", "workload labels, e.g. app=catalog,version=v1")
	f.StringVar(&o.Instance, "name", "", "instance name (default WORKLOAD-<random>)")
	f.StringVar(&o.Workload, "workload", "", "workload name, as metrics and the console show it (default SERVICE-VERSION)")
	f.StringVar(&xds, "xds", "", "control plane xDS address (default: from the state dir)")
	f.StringVar(&o.ServiceAccount, "service-account", workload.DefaultServiceAccount, "the instance's identity: its certificate is spiffe://cluster.local/ns/NAMESPACE/sa/SERVICE_ACCOUNT")
	f.StringVar(&joinTokenFile, "join-token-file", "", "file holding the join token the sidecar presents to the control plane (default: $WEFT_JOIN_TOKEN, else one minted through the API for NAMESPACE/SERVICE_ACCOUNT and revoked at exit)")
	f.DurationVar(&o.ReadyTimeout, "ready-timeout", time.Minute, "stop CMD and fail if the sidecar has no configuration, or CMD does not listen on $PORT, within this time (0: wait as long as it takes)")
	f.StringVar(&o.CARoot, "ca-root", "", "PEM file of the mesh root to verify a TLS xDS server with (a control plane on another host); empty: plaintext xDS")
	tf.register(cmd, trace.DefaultSampling)
	return cmd
}

// findJoinToken finds a proxy's join token given to it: the file
// --join-token-file names, else $WEFT_JOIN_TOKEN. None ("") means the
// caller mints one scoped to the proxy's identity through the API; the
// mesh-wide STATE_DIR/join-token is never picked up by itself.
func findJoinToken(file string, getenv func(string) string) (string, error) {
	if file != "" {
		tok, err := proxy.ReadJoinTokenFile(file)
		if err != nil {
			return "", fmt.Errorf("--join-token-file: %w", err)
		}
		return tok, nil
	}
	return strings.TrimSpace(getenv(proxy.JoinTokenEnv)), nil
}

// mintJoinToken asks the control plane, with the API token, for a join
// token admitting namespace/serviceAccount only, for a proxy this process
// runs; revoke deletes it when the proxy is done.
func mintJoinToken(ctx context.Context, c *client.Client, namespace, serviceAccount, note string) (tok string, revoke func(), err error) {
	if serviceAccount == "" {
		serviceAccount = workload.DefaultServiceAccount
	}
	tok, info, err := c.CreateJoinToken(ctx, namespace, serviceAccount, 0, note)
	if err != nil {
		return "", nil, fmt.Errorf("mint a join token for %s/%s (give one with --join-token-file, or the API token to mint it): %w",
			namespace, serviceAccount, explainAPIError(err))
	}
	return tok, func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.RevokeJoinToken(rctx, info.ID)
	}, nil
}

// newDemoAppCmd runs one app of a demo; `weft up --demo` starts these
// under `weft run`.
func newDemoAppCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "demo-app DEMO APP",
		Short:  "Run one application of a demo (used by weft up --demo)",
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := demo.Lookup(args[0])
			if err != nil {
				return err
			}
			return d.Serve(cmd.Context(), args[1])
		},
	}
}

// telemetryFlags are the proxy telemetry flags of up, run and proxy.
type telemetryFlags struct {
	sampling  float64
	accessLog string
}

func (t *telemetryFlags) register(cmd *cobra.Command, sampling float64) {
	cmd.Flags().Float64Var(&t.sampling, "trace-sampling", sampling, "percent of requests without an incoming trace that start one (0-100)")
	cmd.Flags().StringVar(&t.accessLog, "access-log", "off", "proxy access log to stdout: off, text or json")
}

// apply validates the flags into proxy options; a sampling of 0 becomes
// "none" (negative), as proxy.Options reads 0 as the default.
func (t *telemetryFlags) apply(sampling *float64, format *accesslog.Format) error {
	if t.sampling < 0 || t.sampling > 100 {
		return fmt.Errorf("--trace-sampling %v: want 0 to 100", t.sampling)
	}
	f, err := accesslog.ParseFormat(t.accessLog)
	if err != nil {
		return fmt.Errorf("--access-log: %w", err)
	}
	*sampling, *format = t.sampling, f
	if t.sampling == 0 {
		*sampling = -1
	}
	return nil
}
