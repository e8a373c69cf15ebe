package cli

import (
	"fmt"
	"net"
	"net/netip"
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
	joinTokenFile, caRoot, xdsServerName                   string
	interception, podLabels                                string
	tf                                                     telemetryFlags
	noTelemetry                                            bool
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
	cmd, _ := proxySubCmdFlags(g, t)
	return cmd
}

// proxySubCmdFlags is proxySubCmd, also returning where its flags land.
func proxySubCmdFlags(g *globals, t node.Type) (*cobra.Command, *proxyFlags) {
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
			if t == node.Sidecar {
				pod, err := podMode(cmd, f)
				if err != nil {
					return err
				}
				if pod {
					o, err := podOptions(cmd, g, f, os.Getenv)
					if err != nil {
						return err
					}
					fmt.Fprintf(os.Stderr, "weft proxy sidecar %s (captured): xds %s\n", o.Meta.ID(), o.XDSAddress)
					return proxy.Run(cmd.Context(), o)
				}
			}
			o, err := hostOptions(g, f, t, os.Getenv)
			if err != nil {
				return err
			}
			m := o.Meta
			if o.JoinToken == "" && o.JoinTokenFile == "" {
				tok, revoke, err := mintJoinToken(cmd.Context(), g.client(), m.Namespace, m.ServiceAccount, "weft proxy "+use+" "+m.Namespace+"/"+f.name)
				if err != nil {
					return err
				}
				defer revoke()
				o.JoinToken = tok
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
	fl.StringVar(&f.xdsServerName, "xds-server-name", "", "name to verify on the control plane's xDS certificate when --xds is an IP address, e.g. istiod.istio-system.svc (needs --ca-root; captured sidecar: env "+envXDSServerName+")")
	fl.StringVar(&f.admin, "admin", "127.0.0.1:15000", "admin address (/ready, /config_dump, /stats/prometheus)")
	fl.StringVar(&f.telemetry, "telemetry", "", "control plane API URL to report metrics and spans to, e.g. http://127.0.0.1:15080 (empty: no reports)")
	fl.BoolVar(&f.noTelemetry, "no-telemetry", false, "keep no metrics, spans or access log: the data path does no telemetry work (to measure what it costs)")
	f.tf.register(cmd, trace.DefaultSampling)
	if t == node.Sidecar {
		fl.StringVar(&f.inbound, "inbound", "", "address callers reach this workload on (empty: no inbound)")
		fl.StringVar(&f.outbound, "outbound", "", "address the app uses as its HTTP proxy (empty: no outbound)")
		fl.StringVar(&f.app, "app", "", "the local app's address, e.g. 127.0.0.1:9080")
		fl.StringVar(&f.interception, "interception", "", "REDIRECT: run as a captured sidecar in a pod (env "+envInterception+"): identity from "+
			envPodName+", "+envPodNamespace+", "+envInstanceIP+", "+envServiceAccount+" and the labels file, capture ports 15001/15006, status ports 15020/15021/15090")
		fl.StringVar(&f.podLabels, "pod-labels", DefaultPodLabelsFile, "captured sidecar: the pod's labels file (downward API; env "+envPodLabels+")")
	} else {
		fl.StringVar(&f.portMap, "port-map", "80=127.0.0.1:8080", "Gateway server ports to local addresses, e.g. 80=127.0.0.1:8080,443=127.0.0.1:8443")
	}
	return cmd, f
}

// hostOptions builds the options of a proxy that is not a captured
// sidecar: a sidecar the app addresses (weft run, VMs) or a gateway. A
// gateway in a pod ($INSTANCE_IP set, as the install's Deployment sets it
// from status.podIP) takes the pod IP as its node IP and serves Istio's
// status ports (readiness :15021/healthz/ready, stats :15020 and :15090).
func hostOptions(g *globals, f *proxyFlags, t node.Type, getenv func(string) string) (proxy.Options, error) {
	labels, err := workload.ParseLabels(f.labels)
	if err != nil {
		return proxy.Options{}, fmt.Errorf("--labels: %w", err)
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
	o := proxy.Options{Meta: m, XDSAddress: f.xds, XDSServerName: f.xdsServerName, Log: g.logger(), TelemetryURL: f.telemetry, CARoot: f.caRoot, NoTelemetry: f.noTelemetry}
	if t == node.Router {
		if m.GatewayPorts, err = parsePortMap(f.portMap); err != nil {
			return proxy.Options{}, err
		}
		if a, ok := m.GatewayPorts[80]; ok {
			m.GatewayHost, _, _ = net.SplitHostPort(a)
		}
		if ip := getenv(envInstanceIP); ip != "" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return proxy.Options{}, fmt.Errorf("gateway: %s %q: want the pod's IP address (status.podIP)", envInstanceIP, ip)
			}
			m.IP = ip
			o.Pod = &proxy.PodOptions{}
		}
	}
	if f.name == "" {
		return proxy.Options{}, fmt.Errorf("--name is required")
	}
	// A token file is read anew at every connection: in a pod it is the
	// projected ServiceAccount token, which the kubelet rotates. Without
	// one, $WEFT_JOIN_TOKEN, else the caller mints one through the API.
	if f.joinTokenFile != "" {
		if _, err := proxy.ReadJoinTokenFile(f.joinTokenFile); err != nil {
			return proxy.Options{}, fmt.Errorf("--join-token-file: %w", err)
		}
		o.JoinTokenFile = f.joinTokenFile
	} else {
		o.JoinToken = strings.TrimSpace(getenv(proxy.JoinTokenEnv))
	}
	if err := f.tf.apply(&o.TraceSampling, &o.AccessLog); err != nil {
		return proxy.Options{}, err
	}
	return o, nil
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
