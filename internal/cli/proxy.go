package cli

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/proxy"
	"github.com/weft-mesh/weft/proxy/trace"
	"github.com/weft-mesh/weft/workload"
	"github.com/weft-mesh/weft/xds/node"
)

type proxyFlags struct {
	xds, name, namespace, workload, labels, serviceAccount string
	inbound, outbound, app, admin, portMap                 string
	telemetry                                              string
	joinTokenFile, caRoot                                  string
	tf                                                     telemetryFlags
}

// gatewayServiceAccount is the ingress gateway's identity, as in Istio.
const gatewayServiceAccount = "istio-ingressgateway-service-account"

func newProxyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy sidecar|gateway",
		Short: "Run the data plane proxy on its own (for VMs, hosts and benchmarks)",
	}
	cmd.AddCommand(proxySubCmd(g, node.Sidecar), proxySubCmd(g, node.Router))
	return cmd
}

func proxySubCmd(g *globals, t node.Type) *cobra.Command {
	f := &proxyFlags{}
	use := "sidecar"
	if t == node.Router {
		use = "gateway"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: "Run a " + use + " proxy configured over xDS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			labels, err := workload.ParseLabels(f.labels)
			if err != nil {
				return fmt.Errorf("--labels: %w", err)
			}
			ns, _ := g.ns()
			m := &node.Meta{
				Type: t, IP: "127.0.0.1", Name: f.name, Namespace: ns, WorkloadName: f.workload,
				Labels: labels, ServiceAccount: f.serviceAccount,
				Inbound: f.inbound, Outbound: f.outbound, App: f.app, Admin: f.admin,
			}
			if m.WorkloadName == "" {
				m.WorkloadName = m.Name
			}
			if t == node.Router {
				if m.GatewayPorts, err = parsePortMap(f.portMap); err != nil {
					return err
				}
				if a, ok := m.GatewayPorts[80]; ok {
					m.GatewayHost, _, _ = net.SplitHostPort(a)
				}
			}
			if f.name == "" {
				return fmt.Errorf("--name is required")
			}
			o := proxy.Options{Meta: m, XDSAddress: f.xds, Log: g.logger(), TelemetryURL: f.telemetry, CARoot: f.caRoot}
			if o.JoinToken, err = findJoinToken(f.joinTokenFile, os.Getenv); err != nil {
				return err
			}
			if o.JoinToken == "" {
				tok, revoke, err := mintJoinToken(cmd.Context(), g.client(), ns, m.ServiceAccount, "weft proxy "+use+" "+ns+"/"+f.name)
				if err != nil {
					return err
				}
				defer revoke()
				o.JoinToken = tok
			}
			if err := f.tf.apply(&o.TraceSampling, &o.AccessLog); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "weft proxy %s %s: xds %s\n", use, m.ID(), f.xds)
			return proxy.Run(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.xds, "xds", "127.0.0.1:15010", "control plane xDS address")
	fl.StringVar(&f.name, "name", "", "instance name (required)")
	fl.StringVar(&f.workload, "workload", "", "workload name (default: the instance name)")
	fl.StringVar(&f.labels, "labels", "", "labels, e.g. app=catalog,version=v1 (gateways: istio=ingressgateway)")
	sa := "default"
	if t == node.Router {
		sa = gatewayServiceAccount
	}
	fl.StringVar(&f.serviceAccount, "service-account", sa, "service account: the proxy's identity is spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT")
	fl.StringVar(&f.joinTokenFile, "join-token-file", "", "file holding the join token presented to the control plane (default: $"+proxy.JoinTokenEnv+", else one minted through the API for the proxy's identity and revoked at exit)")
	fl.StringVar(&f.caRoot, "ca-root", "", "PEM file of the mesh root (the control plane's STATE_DIR/ca/root-cert.pem) to verify a TLS xDS server with; required when --xds is not a loopback address")
	fl.StringVar(&f.admin, "admin", "127.0.0.1:15000", "admin address (/ready, /config_dump, /stats/prometheus)")
	fl.StringVar(&f.telemetry, "telemetry", "", "control plane API URL to report metrics and spans to, e.g. http://127.0.0.1:15080 (empty: no reports)")
	f.tf.register(cmd, trace.DefaultSampling)
	if t == node.Sidecar {
		fl.StringVar(&f.inbound, "inbound", "", "address callers reach this workload on (empty: no inbound)")
		fl.StringVar(&f.outbound, "outbound", "", "address the app uses as its HTTP proxy (empty: no outbound)")
		fl.StringVar(&f.app, "app", "", "the local app's address, e.g. 127.0.0.1:9080")
	} else {
		fl.StringVar(&f.portMap, "port-map", "80=127.0.0.1:8080", "Gateway server ports to local addresses, e.g. 80=127.0.0.1:8080,443=127.0.0.1:8443")
	}
	return cmd
}

func parsePortMap(s string) (map[uint32]string, error) {
	m := map[uint32]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		var p uint32
		if _, err := fmt.Sscan(k, &p); !ok || err != nil || p == 0 {
			return nil, fmt.Errorf("--port-map %q: want PORT=HOST:PORT", kv)
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return nil, fmt.Errorf("--port-map %q: %w", kv, err)
		}
		m[p] = v
	}
	return m, nil
}

func newProxyConfigCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "proxy-config listeners|routes|clusters|endpoints|secrets WORKLOAD",
		Short: "Show what a proxy ACKed, as Envoy JSON (private keys redacted)",
		Long:  "WORKLOAD is a proxy's instance name, workload name or node ID (as `weft proxy-config` lists when it does not match).",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := args[0]
			switch kind {
			case "listener", "route", "cluster", "endpoint", "secret":
				kind += "s"
			}
			c := g.client()
			proxies, err := c.Proxies(cmd.Context())
			if err != nil {
				return explainAPIError(err)
			}
			var ids, names []string
			for _, p := range proxies {
				names = append(names, p.Name)
				if p.ID == args[1] || p.Name == args[1] || p.Workload == args[1] || p.Name+"."+p.Namespace == args[1] {
					ids = append(ids, p.ID)
				}
			}
			switch len(ids) {
			case 0:
				return fmt.Errorf("no connected proxy named %q (connected: %s)", args[1], strings.Join(names, ", "))
			case 1:
			default:
				return fmt.Errorf("%q matches several proxies, name one: %s", args[1], strings.Join(ids, ", "))
			}
			b, err := c.ProxyConfig(cmd.Context(), ids[0], kind)
			if err != nil {
				return explainAPIError(err)
			}
			os.Stdout.Write(b)
			if len(b) > 0 && b[len(b)-1] != '\n' {
				fmt.Println()
			}
			return nil
		},
	}
}
