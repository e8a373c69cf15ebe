package cli

import (
	"errors"
	"fmt"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/demo"
	"github.com/weft-mesh/weft/workload"
)

func newRunCmd(g *globals) *cobra.Command {
	o := workload.Options{}
	var labels, xds string
	var port uint32
	cmd := &cobra.Command{
		Use:   "run --service NAME --port P [--labels k=v,...] [--name INSTANCE] -- CMD [ARGS...]",
		Short: "Run a process in the mesh, behind its own sidecar",
		Long: `Run CMD with a sidecar. CMD listens on 127.0.0.1:$PORT; callers reach it as
http://NAME:P. CMD's outbound HTTP goes through the sidecar (HTTP_PROXY is set).
The instance is registered as a WorkloadEntry (and NAME's ServiceEntry created
if missing) once it listens, and removed when CMD exits.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := workload.ParseLabels(labels)
			if err != nil {
				return fmt.Errorf("--labels: %w", err)
			}
			o.Labels, o.Command, o.Port = l, args, port
			o.Namespace, _ = g.ns()
			o.API = g.client()
			o.Log = g.logger()
			o.XDS = xds
			if o.XDS == "" {
				e, err := client.ReadEndpoints(g.stateDir)
				if err != nil || e.XDS == "" {
					o.XDS = "127.0.0.1:15010"
				} else {
					o.XDS = e.XDS
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
	f.StringVar(&o.Instance, "name", "", "instance name (default SERVICE-VERSION-<random>)")
	f.StringVar(&xds, "xds", "", "control plane xDS address (default: from the state dir)")
	return cmd
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
