package xdsscale

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Main parses the command line of bench/xds-scale: a run (the default),
// or "drive", the driver process a run starts.
func Main(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "drive" {
		return driveMain(ctx, args[1:])
	}
	fs := flag.NewFlagSet("xds-scale", flag.ContinueOnError)
	o := Options{}
	fs.StringVar(&o.Weft, "weft", "", "weft binary to run as the control plane (default: built from this checkout)")
	fs.StringVar(&o.Out, "out", "", "directory for the report, logs and state (default: a new /tmp/weft-xds-scale.*)")
	fs.IntVar(&o.Mesh.Services, "services", 1000, "services in the mesh (3 ports, 2 subsets each)")
	fs.IntVar(&o.Mesh.Endpoints, "endpoints", 4, "endpoints per service")
	fs.IntVar(&o.Mesh.PerNamespace, "per-namespace", 50, "services per namespace")
	fs.StringVar(&o.Mesh.Sidecar, "sidecar", "none", "Sidecar scoping: none, namespace (egress ./*) or workload (5 services each)")
	fs.IntVar(&o.Proxies, "proxies", 2000, "simulated sidecars, each on its own ADS stream")
	fs.IntVar(&o.Changes, "changes", 20, "weight changes, and endpoint changes, to measure")
	fs.IntVar(&o.Connects, "connects", 20, "new proxies to connect one at a time, measured")
	fs.BoolVar(&o.Delta, "delta", true, "the simulated proxies speak incremental (delta) xDS, as weft's proxy does; false: state of the world")
	fs.DurationVar(&o.Timeout, "timeout", 60*time.Second, "longest wait for one change to reach every proxy")
	deadline := fs.Duration("deadline", 9*time.Minute, "the whole run stops after this")
	maxRSS := fs.Float64("max-rss-gb", 6, "stop the control plane (and report the run as aborted) above this RSS")
	maxDriverRSS := fs.Float64("max-driver-rss-gb", 12, "stop the run above this driver RSS (its bookkeeping of 2000 proxies' resources takes a few GB; more means it cannot keep up)")
	fs.StringVar(&o.Label, "label", "weft", "label in the report")
	fs.BoolVar(&o.Profile, "profile", false, "save the control plane's heap (all proxies connected) and CPU profiles of the first weight and endpoint changes in -out")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Mesh.Services < 1 || o.Mesh.Endpoints < 2 || o.Mesh.PerNamespace < 1 || o.Proxies < 1 {
		return fmt.Errorf("-services, -per-namespace and -proxies must be positive and -endpoints at least 2")
	}
	if o.Proxies+o.Connects > o.Mesh.Services*o.Mesh.Endpoints {
		return fmt.Errorf("-proxies plus -connects (%d) exceeds the instances in the mesh (%d): every proxy is the sidecar of one instance", o.Proxies+o.Connects, o.Mesh.Services*o.Mesh.Endpoints)
	}
	switch o.Mesh.Sidecar {
	case "none", "namespace", "workload":
	default:
		return fmt.Errorf("-sidecar %q: want none, namespace or workload", o.Mesh.Sidecar)
	}
	o.MaxRSS, o.MaxDriverRSS = int64(*maxRSS*1e9), int64(*maxDriverRSS*1e9)
	ctx, cancel := context.WithTimeout(ctx, *deadline)
	defer cancel()
	var err error
	if o.Out == "" {
		if o.Out, err = os.MkdirTemp("", "weft-xds-scale."); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	o.Log = log.New(os.Stderr, "xds-scale: ", log.Ltime)
	if o.Weft == "" {
		if o.Weft, err = buildWeft(ctx, o.Out); err != nil {
			return err
		}
	}
	o.Log.Printf("output in %s", o.Out)
	r, err := Run(ctx, o)
	if r != nil {
		if werr := r.Write(o.Out); werr != nil && err == nil {
			err = werr
		}
		fmt.Print(r.Markdown())
	}
	return err
}

// buildWeft builds ./cmd/weft of the module this runs in.
func buildWeft(ctx context.Context, out string) (string, error) {
	mod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(mod)) == "" || strings.TrimSpace(string(mod)) == os.DevNull {
		return "", fmt.Errorf("run from the weft checkout (go env GOMOD: %v), or pass -weft", err)
	}
	bin := filepath.Join(out, "weft")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/weft")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(mod)))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build weft: %w", err)
	}
	return bin, nil
}

func driveMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("xds-scale drive", flag.ContinueOnError)
	var o DriverOptions
	fs.StringVar(&o.Server, "xds", "", "xDS address")
	fs.IntVar(&o.Mesh.Services, "services", 1000, "")
	fs.IntVar(&o.Mesh.Endpoints, "endpoints", 4, "")
	fs.IntVar(&o.Mesh.PerNamespace, "per-namespace", 50, "")
	fs.StringVar(&o.Mesh.Sidecar, "sidecar", "none", "")
	fs.IntVar(&o.Proxies, "proxies", 2000, "")
	fs.BoolVar(&o.Delta, "delta", false, "")
	fs.BoolVar(&o.Captured, "captured", false, "")
	fs.IntVar(&o.Parallel, "parallel", 100, "streams connecting at once")
	tokens := fs.String("tokens", "", "file of NAMESPACE=TOKEN lines (Kubernetes: ServiceAccount tokens)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Token = os.Getenv("XDS_SCALE_TOKEN")
	if *tokens != "" {
		b, err := os.ReadFile(*tokens)
		if err != nil {
			return err
		}
		o.Tokens = map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if ns, tok, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
				o.Tokens[ns] = tok
			}
		}
	}
	return DriverMain(ctx, o)
}
