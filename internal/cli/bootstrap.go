package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/xds/bootstrap"
	"github.com/weft-mesh/weft/xds/node"
)

// defaultXDS is the control plane's xDS address when nothing names another.
const defaultXDS = "127.0.0.1:15010"

func newBootstrapCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Write what a proxyless application needs to join the mesh",
	}
	cmd.AddCommand(newBootstrapGRPCCmd(g))
	return cmd
}

func newBootstrapGRPCCmd(g *globals) *cobra.Command {
	var service, out, xds, sa, name string
	var port uint32
	var labels map[string]string
	var watch bool
	var refresh time.Duration
	cmd := &cobra.Command{
		Use:   "grpc --service NAME --port PORT --out DIR",
		Short: "Write a gRPC xDS bootstrap and the workload's certificate, for an unmodified gRPC application (GRPC_XDS_BOOTSTRAP=DIR/bootstrap.json, dial xds:///SERVICE.NS.svc.cluster.local:PORT)",
		Long: `Write DIR/bootstrap.json, gRPC's xDS bootstrap, and the workload's certificate
(DIR/cert-chain.pem, key.pem, root-cert.pem) issued by the control plane for
spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT.

Start the application with GRPC_XDS_BOOTSTRAP=DIR/bootstrap.json and have it
dial xds:///HOST:PORT: weft's VirtualServices and DestinationRules route its
calls (weights, header matches, retries, faults, timeouts, ring hash). It
authenticates to the control plane's xDS with the certificate (mutual TLS);
with google.golang.org/grpc/credentials/xds client credentials it talks mutual
TLS to STRICT sidecars, reading the same files through the bootstrap's
certificate provider. --watch keeps running and renews the certificate files
at half their lifetime; gRPC picks them up without a restart.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if service == "" || out == "" || port == 0 {
				return fmt.Errorf("--service, --port and --out are required")
			}
			ns, _ := g.ns()
			if name == "" {
				var suffix [3]byte
				rand.Read(suffix[:])
				name = service + "-grpc-" + hex.EncodeToString(suffix[:])
			}
			if xds == "" {
				xds = defaultXDS
				if e, err := client.ReadEndpoints(g.stateDir); err == nil && e.XDS != "" {
					xds = e.XDS
				}
			}
			meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: name, Namespace: ns, WorkloadName: service,
				ServiceAccount: sa, App: fmt.Sprintf("127.0.0.1:%d", port), Labels: map[string]string{"app": service}}
			for k, v := range labels {
				meta.Labels[k] = v
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			c := g.client()
			expiry, err := issueTo(cmd.Context(), c, out, ns, sa)
			if err != nil {
				return err
			}
			if err := bootstrap.Write(bootstrap.Options{Dir: out, XDSAddress: xds, Node: meta, RefreshInterval: refresh}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/%s for node %s (xDS %s) and the certificate of %s/%s, valid until %s\n",
				out, bootstrap.File, meta.ID(), xds, ns, sa, expiry.Format(time.RFC3339))
			fmt.Fprintf(cmd.OutOrStdout(), "run the application with GRPC_XDS_BOOTSTRAP=%s/%s and dial xds:///%s.%s.svc.cluster.local:%d\n", out, bootstrap.File, service, ns, port)
			if !watch {
				return nil
			}
			return renewLoop(cmd.Context(), c, out, ns, sa, expiry, func(next time.Time) {
				fmt.Fprintf(cmd.OutOrStdout(), "renewed the certificate of %s/%s, valid until %s\n", ns, sa, next.Format(time.RFC3339))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&service, "service", "", "the application's service name (node name and label app=NAME)")
	f.Uint32Var(&port, "port", 0, "the port the application serves on")
	f.StringVar(&out, "out", "", "directory for bootstrap.json and the certificate files")
	f.StringVar(&xds, "xds", "", "the control plane's xDS address (default: from STATE_DIR/endpoints.json, else "+defaultXDS+")")
	f.StringVar(&sa, "service-account", "default", "the application's identity: spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT")
	f.StringVar(&name, "name", "", "node name (default: SERVICE-grpc-RANDOM)")
	f.StringToStringVar(&labels, "labels", nil, "workload labels, k=v,... (app=SERVICE is set)")
	f.BoolVar(&watch, "watch", false, "keep running, renewing the certificate files at half their lifetime")
	f.DurationVar(&refresh, "refresh-interval", bootstrap.DefaultRefreshInterval, "how often gRPC re-reads the certificate files")
	return cmd
}

// issueTo asks the control plane for the identity's certificate and
// writes it into dir, returning when it expires.
func issueTo(ctx context.Context, c *client.Client, dir, ns, sa string) (time.Time, error) {
	cert, err := c.IssueCertificate(ctx, ns, sa)
	if err != nil {
		return time.Time{}, fmt.Errorf("issue the certificate of %s/%s: %w", ns, sa, err)
	}
	if !strings.Contains(cert.CertChain, "CERTIFICATE") || !strings.Contains(cert.PrivateKey, "PRIVATE KEY") {
		return time.Time{}, fmt.Errorf("issue the certificate of %s/%s: the control plane's answer holds no PEM certificate and key", ns, sa)
	}
	err = bootstrap.WriteCertificate(dir, bootstrap.Certificate{CertChainPEM: []byte(cert.CertChain), KeyPEM: []byte(cert.PrivateKey), RootPEM: []byte(cert.Root)})
	return cert.NotAfter, err
}

// renewLoop renews the certificate at half its remaining lifetime until
// ctx ends; a failed renewal is retried sooner, while the current one
// still holds.
func renewLoop(ctx context.Context, c *client.Client, dir, ns, sa string, expiry time.Time, renewed func(time.Time)) error {
	wait := max(time.Until(expiry)/2, time.Second)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		next, err := issueTo(ctx, c, dir, ns, sa)
		if err != nil {
			fmt.Fprintf(os.Stderr, "weft bootstrap grpc: %v; retrying\n", err)
			wait = min(max(time.Until(expiry)/4, time.Second), 30*time.Second)
			continue
		}
		expiry = next
		renewed(next)
		wait = max(time.Until(expiry)/2, time.Second)
	}
}
