package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/controlplane"
	"github.com/weft-mesh/weft/kube/kubeclient"
	"github.com/weft-mesh/weft/proxy/listener"
)

// securityFlags are the control plane's CA flags, shared by `weft up` and
// `weft controlplane`.
type securityFlags struct {
	trustDomain string
	caCerts     string
	certTTL     time.Duration
	joinScope   string
	apiHosts    []string
	headersKB   uint32
	headers     uint32
}

func (s *securityFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&s.trustDomain, "trust-domain", ca.DefaultTrustDomain, "SPIFFE trust domain of the mesh's identities")
	fl.StringVar(&s.caCerts, "cacerts", "", "Istio plug-in CA directory (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) to sign with; default: a self-signed root in STATE_DIR/ca")
	fl.DurationVar(&s.certTTL, "cert-ttl", ca.DefaultCertTTL, "lifetime of workload certificates; each is renewed at half of it")
	fl.Uint32Var(&s.headersKB, "max-request-headers-kb", 0, "largest request header section (request line and headers) proxies accept, in KiB, 1 to 8192; larger gets 431 (0: Envoy's default, 60)")
	fl.Uint32Var(&s.headers, "max-headers-count", 0, "most request headers proxies accept; more gets 431 (0: Envoy's default, 100)")
	fl.StringSliceVar(&s.apiHosts, "api-allowed-hosts", nil, "more names the API and console answer to (besides IP addresses, localhost and this machine's name), e.g. the DNS name remote proxies use; requests for other names are refused (DNS rebinding)")
	fl.StringVar(&s.joinScope, "join-token-scope", controlplane.JoinScopeIdentity, "identity: proxies join with tokens scoped to one namespace and service account (weft token create); mesh: also accept the mesh-wide STATE_DIR/join-token, whose holder may join as any identity")
}

func (s *securityFlags) apply(o *controlplane.Options) error {
	if s.certTTL < time.Second {
		// Certificates carry whole seconds; shorter lifetimes only churn.
		return fmt.Errorf("--cert-ttl %v: want at least 1s", s.certTTL)
	}
	if s.joinScope != "" && s.joinScope != controlplane.JoinScopeIdentity && s.joinScope != controlplane.JoinScopeMesh {
		return fmt.Errorf("--join-token-scope %q: want %s or %s", s.joinScope, controlplane.JoinScopeIdentity, controlplane.JoinScopeMesh)
	}
	if s.headersKB > listener.MaxRequestHeadersKBLimit {
		return fmt.Errorf("--max-request-headers-kb %d: want at most %d", s.headersKB, listener.MaxRequestHeadersKBLimit)
	}
	o.TrustDomain, o.CACertsDir, o.CertTTL, o.JoinTokenScope, o.APIHosts = s.trustDomain, s.caCerts, s.certTTL, s.joinScope, s.apiHosts
	o.MaxRequestHeadersKB, o.MaxHeadersCount = s.headersKB, s.headers
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
	fmt.Printf("tokens: API writes need %s; proxies join with %s\n", filepath.Join(stateDir, controlplane.APITokenFile), joinWith(stateDir, cp))
}

// joinWith says what proxies join the mesh with.
func joinWith(stateDir string, cp *controlplane.ControlPlane) string {
	join := "tokens scoped to their identity (weft token create)"
	if cp.JoinToken() != "" {
		join += " or the mesh-wide " + filepath.Join(stateDir, controlplane.JoinTokenFile)
	}
	return join
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
			// Addresses of a stopped control plane would send the CLI (and
			// a restart's readers) to ports someone else may hold by then.
			defer os.Remove(filepath.Join(g.stateDir, client.EndpointsFile))
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
