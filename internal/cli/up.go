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
	"github.com/weft-mesh/weft/ca"
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
}

// securityFlags are the control plane's CA flags, shared by `weft up` and
// `weft controlplane`.
type securityFlags struct {
	trustDomain string
	caCerts     string
	certTTL     time.Duration
}

func (s *securityFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&s.trustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain of the mesh's identities")
	fl.StringVar(&s.caCerts, "cacerts", "", "Istio plug-in CA directory (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) to sign with; default: a self-signed root in STATE_DIR/ca")
	fl.DurationVar(&s.certTTL, "cert-ttl", ca.DefaultCertTTL, "lifetime of workload certificates; each is renewed at half of it")
}

func (s *securityFlags) apply(o *controlplane.Options) error {
	if s.certTTL < time.Second {
		// Certificates carry whole seconds; shorter lifetimes only churn.
		return fmt.Errorf("--cert-ttl %v: want at least 1s", s.certTTL)
	}
	o.TrustDomain, o.CACertsDir, o.CertTTL = s.trustDomain, s.caCerts, s.certTTL
	return nil
}

// xdsDialAddr is how a process on this host reaches the xDS address: an
// unspecified host (all interfaces) is dialed on loopback.
func xdsDialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// printDoors tells the user where the mesh's credentials are, never what
// they are.
func printDoors(stateDir string, cp *controlplane.ControlPlane) {
	fmt.Printf("identity: trust domain %s, CA root %s\n", cp.TrustDomain(), cp.CA().RootFile())
	fmt.Printf("tokens: proxies join with %s, API writes need %s\n",
		filepath.Join(stateDir, controlplane.JoinTokenFile), filepath.Join(stateDir, controlplane.APITokenFile))
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
gateway that does not serve.`,
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
	f.tf.register(cmd, trace.DefaultSampling)
	f.cpTel.register(cmd)
	f.sec.register(cmd)
	cmd.Flag("trace-sampling").Usage += "; --demo makes it 100 unless set"
	return cmd
}

func runUp(ctx context.Context, g *globals, f *upFlags) error {
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
	cpCtx, stopCP := context.WithCancel(context.Background())
	defer stopCP()
	cp, err := controlplane.Start(cpCtx, cpOpts)
	if err != nil {
		socks.close()
		return err
	}
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
	onNACK, nacks := gatewayNACKs(log)
	// The gateway runs in this process: it takes the join token from the
	// control plane directly rather than from the file.
	gwOpts := proxy.Options{Meta: gwMeta, XDSAddress: xdsDialAddr(cp.XDSAddr()), Log: log.With("component", "gateway"),
		TelemetryURL: "http://" + cp.APIAddr(), JoinToken: cp.JoinToken(),
		Sockets: socks.proxySockets(adminAddr), OnNACK: onNACK}
	if cp.XDSTLS() {
		gwOpts.CARoot = cp.CA().RootFile()
	}
	stopAll := func() {
		stopCP()
		<-cp.Done()
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
	stopAll = func() {
		stopGateway()
		gw.Wait()
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
	fmt.Printf("weft is up: gateway http://%s  api http://%s  xds %s  state %s\n", gwAddr, cp.APIAddr(), cp.XDSAddr(), g.stateDir)
	fmt.Printf("console: %s\n", cp.ConsoleURL())
	printDoors(g.stateDir, cp)

	var wg sync.WaitGroup
	if d != nil {
		rev, err := startDemo(ctx, g, d, cp, &f.tf, &wg)
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
		fmt.Printf("demo %s: try  curl http://%s%s\n", d.Name, gwAddr, try)
	}
	<-ctx.Done()
	fmt.Println("shutting down")
	wg.Wait() // workloads deregister and stop
	stopAll()
	return nil
}

// startDemo applies the demo's initial YAML and starts each workload as a
// `weft run` child process. It returns the store revision of the apply.
func startDemo(ctx context.Context, g *globals, d *demo.Demo, cp *controlplane.ControlPlane, tf *telemetryFlags, wg *sync.WaitGroup) (int64, error) {
	c := client.New("http://"+cp.APIAddr(), client.WithToken(cp.APIToken()))
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
	// The workloads read the join and API tokens from the state dir, as
	// any `weft run` on this host does; no secret goes on a command line.
	stateDir, err := filepath.Abs(g.stateDir)
	if err != nil {
		return 0, err
	}
	for _, w := range d.Workloads {
		args := []string{"run", "--state-dir", stateDir, "--server", "http://" + cp.APIAddr(), "--xds", xdsDialAddr(cp.XDSAddr()), "--log-level", g.logLevel,
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

func newControlPlaneCmd(g *globals) *cobra.Command {
	var apiAddr, xdsAddr string
	var reap time.Duration
	var tf cpTelemetryFlags
	var sec securityFlags
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Run the control plane alone (API and xDS), without a gateway",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := controlplane.Options{
				StateDir: g.stateDir, APIAddr: apiAddr, XDSAddr: xdsAddr, Log: g.logger(), ReapAfter: reap,
				OTLPEndpoint: tf.otlpEndpoint, ConsoleToken: tf.consoleToken,
			}
			if err := sec.apply(&o); err != nil {
				return err
			}
			cp, err := controlplane.Start(cmd.Context(), o)
			if err != nil {
				return err
			}
			if err := writeConsoleToken(g.stateDir, cp.ConsoleToken()); err != nil {
				return err
			}
			fmt.Printf("console: %s\n", cp.ConsoleURL())
			printDoors(g.stateDir, cp)
			if err := client.WriteEndpoints(g.stateDir, client.Endpoints{API: cp.APIAddr(), XDS: cp.XDSAddr()}); err != nil {
				return err
			}
			<-cp.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&apiAddr, "api-addr", "127.0.0.1:15080", "HTTP API address")
	cmd.Flags().StringVar(&xdsAddr, "xds-addr", "127.0.0.1:15010", "xDS (gRPC) address")
	cmd.Flags().DurationVar(&reap, "reap-after", controlplane.DefaultReapAfter, "remove a registered workload whose sidecar has been disconnected this long")
	tf.register(cmd)
	sec.register(cmd)
	return cmd
}
