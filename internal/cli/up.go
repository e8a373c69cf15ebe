package cli

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/controlplane"
	"github.com/weft-mesh/weft/demo"
	"github.com/weft-mesh/weft/proxy"
	"github.com/weft-mesh/weft/proxy/trace"
	"github.com/weft-mesh/weft/workload"
	"github.com/weft-mesh/weft/xds/node"
)

type upFlags struct {
	apiAddr, xdsAddr, gatewayAddr, adminAddr string
	gatewayPortMap                           string
	demo                                     string
	tf                                       telemetryFlags
	cpTel                                    cpTelemetryFlags // control plane: OTLP export, console token
	sec                                      securityFlags
	fresh                                    bool
}

func newUpCmd(g *globals) *cobra.Command {
	f := &upFlags{}
	cmd := &cobra.Command{
		Use:   "up [--demo NAME]",
		Short: "Run a local mesh: control plane, ingress gateway and (optionally) a demo",
		Long: `Run a local mesh in the foreground: the control plane (state in --state-dir),
the ingress gateway, and with --demo the demo's workloads, each a real process
behind its own sidecar. Gateway server port 80 is served on --gateway-addr,
ports in --gateway-port-map on their addresses; another Gateway port N is
served on the same host at N (N >= 1024) or N+8000.

Every address above is bound before anything starts (port 0: one the kernel
picks, recorded in STATE_DIR/endpoints.json); weft up fails if one is taken,
or if the gateway cannot serve its configuration, rather than report a
gateway that does not serve.

The configuration persists in the state dir across runs and demos: up says
when it resumes one and what it holds; --fresh (or ` + "`weft reset`" + ` beforehand)
starts with none. It prints a short summary; its log shows only warnings
unless --log-level is given, and goes whole to --log-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.demo != "" && !cmd.Flags().Changed("trace-sampling") {
				f.tf.sampling = 100 // a demo is for looking at traces
			}
			return runUp(cmd.Context(), g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.apiAddr, "api-addr", "127.0.0.1:15080", "control plane HTTP API address")
	fl.StringVar(&f.xdsAddr, "xds-addr", "127.0.0.1:15010", "control plane xDS (gRPC) address")
	fl.StringVar(&f.gatewayAddr, "gateway-addr", "127.0.0.1:8080", "ingress gateway address for Gateway port 80")
	fl.StringVar(&f.adminAddr, "gateway-admin-addr", "127.0.0.1:15000", "ingress gateway admin address")
	fl.StringVar(&f.gatewayPortMap, "gateway-port-map", "", "more Gateway server ports to bind at start, e.g. 443=127.0.0.1:8443,31400=127.0.0.1:0")
	fl.StringVar(&f.demo, "demo", "", "start a demo: "+strings.Join(demo.Names(), ", "))
	fl.BoolVar(&f.fresh, "fresh", false, "start with no configuration: remove the stored one first (as `weft reset`; the CA and tokens stay)")
	f.tf.register(cmd, trace.DefaultSampling)
	f.cpTel.register(cmd)
	f.sec.register(cmd)
	cmd.Flag("trace-sampling").Usage += "; --demo makes it 100 unless set"
	return cmd
}

func runUp(ctx context.Context, g *globals, f *upFlags) error {
	g.quietLogs = true // the summary is what the terminal shows; the log is for --log-level and --log-file
	log := g.logger()
	var d *demo.Demo
	if f.demo != "" {
		var err error
		if d, err = demo.Lookup(f.demo); err != nil {
			return err
		}
	}
	gwHost, _, err := net.SplitHostPort(f.gatewayAddr)
	if err != nil {
		return fmt.Errorf("--gateway-addr %q: %w", f.gatewayAddr, err)
	}
	socks, err := bindUp(f)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The control plane outlives ctx: workloads deregister through it
	// while the mesh shuts down.
	cpOpts := controlplane.Options{
		StateDir: g.stateDir, APIAddr: f.apiAddr, XDSAddr: f.xdsAddr, Log: log,
		APIListener: socks.api, XDSListener: socks.xds,
		OTLPEndpoint: f.cpTel.otlpEndpoint, ConsoleToken: f.cpTel.consoleToken,
	}
	if err := f.sec.apply(&cpOpts); err != nil {
		socks.close()
		return err
	}
	_, statErr := os.Stat(filepath.Join(g.stateDir, storeFile))
	existed := statErr == nil
	if f.fresh && existed {
		if _, err := resetState(g.stateDir, false); err != nil {
			socks.close()
			return err
		}
	}
	cpCtx, stopCP := context.WithCancel(context.Background())
	defer stopCP()
	cp, err := controlplane.Start(cpCtx, cpOpts)
	if err != nil {
		socks.close()
		return err
	}
	state := describeState(g.stateDir, existed, f.fresh && existed, cp.Snapshot())
	adminAddr := socks.adminAddr(f.adminAddr)
	gwMeta := &node.Meta{
		Type: node.Router, IP: "127.0.0.1", Name: "istio-ingressgateway", Namespace: "istio-system",
		WorkloadName: "istio-ingressgateway", Labels: map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"},
		ServiceAccount: gatewayServiceAccount,
		Admin:          adminAddr, GatewayPorts: socks.addrs, GatewayHost: gwHost,
	}
	// The gateway outlives ctx by its drain: it is stopped after the
	// workloads, so requests in flight through it can finish.
	gctx, stopGateway := context.WithCancel(context.Background())
	defer stopGateway()
	stopAll := func() {
		stopCP()
		<-cp.Done()
	}
	// The gateway runs in this process: its join token, scoped to its
	// identity, comes from the control plane directly and dies with it.
	gwToken, err := cp.MintJoinToken(gwMeta.Namespace, gwMeta.ServiceAccount, "weft up's ingress gateway")
	if err != nil {
		socks.close()
		stopAll()
		return fmt.Errorf("ingress gateway: join token: %w", err)
	}
	onNACK, nacks := gatewayNACKs(log)
	gwOpts := proxy.Options{Meta: gwMeta, XDSAddress: xdsDialAddr(cp.XDSAddr()), Log: log.With("component", "gateway"),
		TelemetryURL: "http://" + cp.APIAddr(), JoinToken: gwToken,
		Sockets: socks.proxySockets(adminAddr), OnNACK: onNACK}
	if cp.XDSTLS() {
		gwOpts.CARoot = cp.CA().RootFile()
	}
	if err := f.tf.apply(&gwOpts.TraceSampling, &gwOpts.AccessLog); err != nil {
		socks.close()
		stopAll()
		return err
	}
	gw, err := proxy.Start(gctx, gwOpts)
	if err != nil {
		socks.close()
		stopAll()
		return fmt.Errorf("start ingress gateway: %w", err)
	}
	// A gateway that stops while the mesh is up is started again on the
	// same addresses; its sockets went with it, so they are bound anew
	// (the supervisor retries, with backoff, if one was taken meanwhile).
	gateway := superviseGateway(gctx, log.With("component", "gateway"), gw, func(ctx context.Context) (*proxy.Handle, error) {
		o := gwOpts
		var err error
		if o.Sockets, err = rebindSockets(gwOpts.Sockets); err != nil {
			return nil, err
		}
		return proxy.Start(ctx, o)
	})
	stopAll = func() {
		stopGateway()
		gateway.Wait()
		stopCP()
		<-cp.Done()
	}
	if err := waitGatewayReady(ctx, gw, nacks); err != nil {
		stopAll()
		return err
	}
	if err := writeConsoleToken(g.stateDir, cp.ConsoleToken()); err != nil {
		stopAll()
		return err
	}
	gwAddr := socks.addrs[80]
	if err := client.WriteEndpoints(g.stateDir, client.Endpoints{API: cp.APIAddr(), XDS: cp.XDSAddr(), Gateway: gwAddr,
		GatewayPorts: socks.addrs, GatewayAdmin: gw.Admin()}); err != nil {
		stopAll()
		return err
	}
	defer os.Remove(filepath.Join(g.stateDir, "endpoints.json"))
	printUpSummary(os.Stdout, g, []summaryLine{
		{"gateway", "http://" + gwAddr},
		{"api", "http://" + cp.APIAddr()},
		{"console", cp.ConsoleURL()},
		{"xds", cp.XDSAddr()},
		{"state", state},
	}, cp)

	var wg sync.WaitGroup
	if d != nil {
		c := client.New("http://"+cp.APIAddr(), client.WithToken(cp.APIToken()))
		rev, err := startDemo(ctx, g, d, c, cp, &f.tf, &wg)
		if err == nil {
			err = waitGatewayServes(ctx, cp, gw, rev, nacks)
		}
		if err != nil {
			cancel()
			wg.Wait()
			stopAll()
			return fmt.Errorf("demo %s: %w", d.Name, err)
		}
		try := d.Try
		if try == "" {
			try = "/"
		}
		up := waitDemoRegistered(ctx, c, d.Namespace, len(d.Workloads), 30*time.Second)
		ready := fmt.Sprintf("%s up", countOf(up, "workload", "workloads"))
		if up < len(d.Workloads) {
			ready = fmt.Sprintf("%d of %d workloads up after 30s (see the log: --log-level info)", up, len(d.Workloads))
		}
		if ctx.Err() == nil { // not when interrupted while waiting
			fmt.Printf("demo %s: %s in namespace %s; try  curl http://%s%s\n", d.Name, ready, d.Namespace, gwAddr, try)
		}
	}
	<-ctx.Done()
	fmt.Println("shutting down")
	wg.Wait() // workloads deregister and stop
	stopAll()
	return nil
}

// startDemo applies the demo's initial YAML and starts each workload as a
// `weft run` child process. It returns the store revision of the apply.
func startDemo(ctx context.Context, g *globals, d *demo.Demo, c *client.Client, cp *controlplane.ControlPlane, tf *telemetryFlags, wg *sync.WaitGroup) (int64, error) {
	var sources []client.Source
	for _, name := range d.Initial {
		b, err := fs.ReadFile(d.Files, name)
		if err != nil {
			return 0, err
		}
		sources = append(sources, client.Source{Name: name, Content: string(b)})
	}
	applied, err := c.Apply(ctx, sources, client.ApplyOptions{Namespace: d.Namespace})
	if err != nil {
		return 0, fmt.Errorf("apply: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	// The workloads read the API token from the state dir, as any `weft
	// run` on this host does, and mint their own join tokens with it; no
	// secret goes on a command line.
	stateDir, err := filepath.Abs(g.stateDir)
	if err != nil {
		return 0, err
	}
	for _, w := range d.Workloads {
		args := []string{"run", "--state-dir", stateDir, "--server", "http://" + cp.APIAddr(), "--xds", xdsDialAddr(cp.XDSAddr()),
			"--log-level", g.logLevel, "--stderr-log-level", g.terminalLogLevel(),
			"--service", w.Service, "--port", strconv.Itoa(int(w.Port)), "-n", d.Namespace,
			"--labels", workload.FormatLabels(w.Labels),
			"--trace-sampling", strconv.FormatFloat(tf.sampling, 'g', -1, 64), "--access-log", tf.accessLog}
		if w.Name != "" {
			// A named instance (a VM) is its own workload.
			args = append(args, "--name", w.Name, "--workload", w.Name)
		}
		if w.ServiceAccount != "" {
			args = append(args, "--service-account", w.ServiceAccount)
		}
		if cp.XDSTLS() {
			args = append(args, "--ca-root", cp.CA().RootFile())
		}
		if g.logOut != nil {
			args = append(args, "--log-file", g.logOut.Name())
		}
		args = append(args, "--", self, "demo-app", d.Name, w.App)
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			return 0, fmt.Errorf("start %s: %w", w.Service, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(15 * time.Second):
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-done
				}
			}
		}()
	}
	return applied.Revision, nil
}
