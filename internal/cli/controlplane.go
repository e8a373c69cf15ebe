package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/controlplane"
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
