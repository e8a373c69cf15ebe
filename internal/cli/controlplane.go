package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/controlplane"
	"github.com/weft-mesh/weft/kube/kubeclient"
)

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

// kubeFlags select Kubernetes mode for `weft controlplane`.
type kubeFlags struct {
	enabled    bool
	kubeconfig string
	namespace  string
	selector   string
	audience   string
}

func (k *kubeFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&k.enabled, "kubernetes", false, "run against a Kubernetes cluster: read Services, EndpointSlices and Istio's custom resources, keep the CA in Secrets, authenticate proxies by ServiceAccount token")
	fl.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file with --kubernetes (default: $KUBECONFIG, the pod's service account, ~/.kube/config)")
	fl.StringVar(&k.namespace, "kube-namespace", "", "with --kubernetes: the control plane's namespace, holding its Lease and Secrets (default: $POD_NAMESPACE, else istio-system)")
	fl.StringVar(&k.selector, "discovery-selector", "", "with --kubernetes: a label selector limiting the mesh to matching namespaces (Istio's discoverySelectors), e.g. istio-injection=enabled")
	fl.StringVar(&k.audience, "token-audience", controlplane.DefaultAudience, "with --kubernetes: the audience of the ServiceAccount tokens proxies present")
}

// options turns the flags into controlplane.KubeOptions, nil without
// --kubernetes.
func (k *kubeFlags) options() (*controlplane.KubeOptions, error) {
	if !k.enabled {
		if k.kubeconfig != "" || k.selector != "" || k.namespace != "" {
			return nil, fmt.Errorf("--kubeconfig, --kube-namespace and --discovery-selector need --kubernetes")
		}
		return nil, nil
	}
	o := &controlplane.KubeOptions{Namespace: k.namespace, Audience: k.audience}
	if k.selector != "" {
		sel, err := labels.Parse(k.selector)
		if err != nil {
			return nil, fmt.Errorf("--discovery-selector %q: %w", k.selector, err)
		}
		o.NamespaceSelector = sel
	}
	c, err := kubeclient.New(k.kubeconfig)
	if err != nil {
		return nil, err
	}
	o.Clients = c
	return o, nil
}

// Kubernetes mode's addresses: Istio's xDS-over-TLS port and the API on
// every interface, where the Service istiod reaches them.
const (
	kubeXDSAddr = ":15012"
	kubeAPIAddr = ":15080"
)

func newControlPlaneCmd(g *globals) *cobra.Command {
	var apiAddr, xdsAddr string
	var reap time.Duration
	var tf cpTelemetryFlags
	var sec securityFlags
	var kf kubeFlags
	var pf pushFlags
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Run the control plane alone (API and xDS), without a gateway; --kubernetes runs it against a cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kube, err := kf.options()
			if err != nil {
				return err
			}
			o := controlplane.Options{
				StateDir: g.stateDir, APIAddr: apiAddr, XDSAddr: xdsAddr, Log: g.logger(), ReapAfter: reap,
				OTLPEndpoint: tf.otlpEndpoint, ConsoleToken: tf.consoleToken, Kubernetes: kube,
			}
			if err := sec.apply(&o); err != nil {
				return err
			}
			if err := pf.apply(&o); err != nil {
				return err
			}
			if kube != nil {
				if o.CACertsDir != "" {
					return fmt.Errorf("--cacerts: with --kubernetes the CA comes from Secret %s (Istio's plug-in layout), else %s", controlplane.PluginCASecret, controlplane.SelfSignedCASecret)
				}
				if !cmd.Flags().Changed("api-addr") {
					o.APIAddr = kubeAPIAddr
				}
				if !cmd.Flags().Changed("xds-addr") {
					o.XDSAddr = kubeXDSAddr
				}
				// The replica serves the admission webhooks too; the leader
				// keeps their caBundle current.
				o.Webhook = controlplane.KubeWebhookOptions(kube.Clients.Kube, nil)
			}
			cp, err := controlplane.Start(cmd.Context(), o)
			if err != nil {
				return err
			}
			if kube != nil {
				k := cp.Kubernetes()
				fmt.Printf("cluster: %s, namespace %s, replica %s\n", k.Clients.Source, k.Namespace, k.Identity)
				fmt.Printf("identity: trust domain %s, CA from %s; proxies present ServiceAccount tokens (audience %s)\n", cp.TrustDomain(), cp.CASource(), k.Audience)
				fmt.Printf("API token: Secret %s/%s\n", k.Namespace, controlplane.APITokenSecret)
				fmt.Printf("console: %s\n", controlplane.ConsoleURL(cp.APIAddr(), ""))
				<-cp.Done()
				return nil
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
	cmd.Flags().StringVar(&apiAddr, "api-addr", "127.0.0.1:15080", "HTTP API address (with --kubernetes: "+kubeAPIAddr+")")
	cmd.Flags().StringVar(&xdsAddr, "xds-addr", "127.0.0.1:15010", "xDS (gRPC) address (with --kubernetes: "+kubeXDSAddr+", TLS)")
	cmd.Flags().DurationVar(&reap, "reap-after", controlplane.DefaultReapAfter, "remove a registered workload whose sidecar has been disconnected this long (local mode)")
	tf.register(cmd)
	sec.register(cmd)
	kf.register(cmd)
	pf.register(cmd)
	return cmd
}
