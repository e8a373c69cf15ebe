package cli

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

func newProxyConfigCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "proxy-config listeners|routes|clusters|endpoints|secrets WORKLOAD [-o json|yaml]",
		Short: "Show what a proxy ACKed: a short table, or Envoy's config dump with -o json|yaml (private keys redacted)",
		Long: `WORKLOAD is a proxy's instance name, workload name or node ID (as ` + "`weft proxy-config`" + ` lists
when it does not match). Without -o it prints a table, as istioctl proxy-config
does; -o json prints the resources as Envoy's /config_dump does, -o yaml the same in YAML.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := args[0]
			switch kind {
			case "listener", "route", "cluster", "endpoint", "secret":
				kind += "s"
			}
			switch output {
			case "", "json", "yaml":
			default:
				return fmt.Errorf("-o %q: want json or yaml (or nothing, for a table)", output)
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
			switch output {
			case "json":
				os.Stdout.Write(b)
				if len(b) > 0 && b[len(b)-1] != '\n' {
					fmt.Println()
				}
				return nil
			case "yaml":
				y, err := yaml.JSONToYAML(b)
				if err != nil {
					return fmt.Errorf("%s of %s: %w", kind, ids[0], err)
				}
				os.Stdout.Write(y)
				return nil
			}
			return printProxyConfig(os.Stdout, kind, b)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: a table)")
	return cmd
}

// printProxyConfig prints a config dump of kind as a table with
// istioctl proxy-config's columns, as far as weft's resources carry them.
func printProxyConfig(w io.Writer, kind string, dump []byte) error {
	var d admin.ConfigDump
	if err := protojson.Unmarshal(dump, &d); err != nil {
		return fmt.Errorf("read the %s dump: %w", kind, err)
	}
	var msgs []proto.Message
	for _, a := range d.GetConfigs() {
		m, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("read the %s dump: %w", kind, err)
		}
		msgs = append(msgs, m)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	defer tw.Flush()
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	var err error
	switch kind {
	case "clusters":
		row("SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE")
		err = eachResource(msgs, func(c *cluster.Cluster) {
			dir, port, subset, fqdn := clusterNameParts(c.GetName())
			row(fqdn, port, subset, dir, c.GetType().String())
		})
	case "listeners":
		row("NAME", "ADDRESS", "PORT", "MATCH", "DESTINATION")
		err = eachResource(msgs, func(l *listener.Listener) {
			sa := l.GetAddress().GetSocketAddress()
			for _, fc := range l.GetFilterChains() {
				row(l.GetName(), sa.GetAddress(), fmt.Sprint(sa.GetPortValue()), chainMatch(fc.GetFilterChainMatch()), chainDestination(fc))
			}
		})
	case "routes":
		row("NAME", "VHOST NAME", "DOMAINS", "MATCH", "DESTINATION")
		err = eachResource(msgs, func(rc *route.RouteConfiguration) {
			for _, vh := range rc.GetVirtualHosts() {
				for _, r := range vh.GetRoutes() {
					row(rc.GetName(), vh.GetName(), domains(vh.GetDomains()), routeMatch(r.GetMatch()), routeDestination(r))
				}
			}
		})
	case "endpoints":
		row("ENDPOINT", "STATUS", "WEIGHT", "CLUSTER")
		err = eachResource(msgs, func(cla *endpoint.ClusterLoadAssignment) {
			for _, grp := range cla.GetEndpoints() {
				for _, e := range grp.GetLbEndpoints() {
					sa := e.GetEndpoint().GetAddress().GetSocketAddress()
					row(fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()), e.GetHealthStatus().String(),
						fmt.Sprint(e.GetLoadBalancingWeight().GetValue()), cla.GetClusterName())
				}
			}
		})
	case "secrets":
		row("RESOURCE NAME", "TYPE", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE")
		for _, m := range msgs {
			sd, ok := m.(*admin.SecretsConfigDump)
			if !ok {
				continue
			}
			for _, ds := range sd.GetDynamicActiveSecrets() {
				s := &tlsv3.Secret{}
				if err := ds.GetSecret().UnmarshalTo(s); err != nil {
					return fmt.Errorf("read secret %s: %w", ds.GetName(), err)
				}
				typ, pemBytes := "Cert Chain", s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
				if s.GetValidationContext() != nil {
					typ, pemBytes = "CA", s.GetValidationContext().GetTrustedCa().GetInlineBytes()
				}
				valid, serial, notAfter, notBefore := certColumns(pemBytes)
				row(s.GetName(), typ, valid, serial, notAfter, notBefore)
			}
		}
	default:
		return fmt.Errorf("no table for %q", kind)
	}
	return err
}

// eachResource calls f for every resource of type T in the dumps' dynamic
// entries.
func eachResource[T proto.Message](msgs []proto.Message, f func(T)) error {
	for _, m := range msgs {
		var anys []interface{ UnmarshalNew() (proto.Message, error) }
		switch d := m.(type) {
		case *admin.ClustersConfigDump:
			for _, c := range d.GetDynamicActiveClusters() {
				anys = append(anys, c.GetCluster())
			}
		case *admin.ListenersConfigDump:
			for _, l := range d.GetDynamicListeners() {
				anys = append(anys, l.GetActiveState().GetListener())
			}
		case *admin.RoutesConfigDump:
			for _, r := range d.GetDynamicRouteConfigs() {
				anys = append(anys, r.GetRouteConfig())
			}
		case *admin.EndpointsConfigDump:
			for _, e := range d.GetDynamicEndpointConfigs() {
				anys = append(anys, e.GetEndpointConfig())
			}
		}
		for _, a := range anys {
			r, err := a.UnmarshalNew()
			if err != nil {
				return fmt.Errorf("read the config dump: %w", err)
			}
			if t, ok := r.(T); ok {
				f(t)
			}
		}
	}
	return nil
}

// clusterNameParts splits Istio's cluster name DIRECTION|PORT|SUBSET|FQDN.
func clusterNameParts(name string) (dir, port, subset, fqdn string) {
	parts := strings.SplitN(name, "|", 4)
	if len(parts) != 4 {
		return "", "", "", name
	}
	return parts[0], parts[1], parts[2], parts[3]
}

func chainMatch(m *listener.FilterChainMatch) string {
	if m.GetTransportProtocol() != "" {
		return "Trans: " + m.GetTransportProtocol()
	}
	return "ALL"
}

// chainDestination says where a filter chain sends traffic: an RDS route
// table, an inline one, or a TCP cluster.
func chainDestination(fc *listener.FilterChain) string {
	for _, f := range fc.GetFilters() {
		tc := f.GetTypedConfig()
		if tc == nil {
			continue
		}
		m, err := tc.UnmarshalNew()
		if err != nil {
			continue
		}
		switch v := m.(type) {
		case *hcm.HttpConnectionManager:
			if v.GetRds() != nil {
				return "Route: " + v.GetRds().GetRouteConfigName()
			}
			return "Inline Route: " + v.GetRouteConfig().GetName()
		case *tcpproxy.TcpProxy:
			if v.GetCluster() != "" {
				return "Cluster: " + v.GetCluster()
			}
			return fmt.Sprintf("Clusters: %d weighted", len(v.GetWeightedClusters().GetClusters()))
		}
	}
	return ""
}

func domains(d []string) string {
	switch len(d) {
	case 0:
		return ""
	case 1:
		return d[0]
	}
	return fmt.Sprintf("%s +%d more", d[0], len(d)-1)
}

func routeMatch(m *route.RouteMatch) string {
	var s string
	switch {
	case m.GetPath() != "":
		s = m.GetPath()
	case m.GetSafeRegex() != nil:
		s = "~" + m.GetSafeRegex().GetRegex()
	default:
		s = m.GetPrefix() + "*"
	}
	if n := len(m.GetHeaders()) + len(m.GetQueryParameters()); n > 0 {
		s += fmt.Sprintf(" (+%d)", n)
	}
	return s
}

// routeDestination says what a route does: a cluster, weighted clusters,
// a redirect or a direct response.
func routeDestination(r *route.Route) string {
	switch {
	case r.GetRedirect() != nil:
		return "redirect"
	case r.GetDirectResponse() != nil:
		return fmt.Sprintf("direct response %d", r.GetDirectResponse().GetStatus())
	case r.GetRoute().GetCluster() != "":
		return r.GetRoute().GetCluster()
	case r.GetRoute().GetWeightedClusters() != nil:
		var parts []string
		for _, c := range r.GetRoute().GetWeightedClusters().GetClusters() {
			parts = append(parts, fmt.Sprintf("%s %d", c.GetName(), c.GetWeight().GetValue()))
		}
		return strings.Join(parts, ", ")
	}
	return ""
}

// certColumns reads the first certificate of a PEM bundle for the secrets
// table.
func certColumns(pemBytes []byte) (valid, serial, notAfter, notBefore string) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return "false", "", "", ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "false", "", "", ""
	}
	now := time.Now()
	ok := now.After(cert.NotBefore) && now.Before(cert.NotAfter)
	return fmt.Sprint(ok), cert.SerialNumber.Text(16), cert.NotAfter.UTC().Format(time.RFC3339), cert.NotBefore.UTC().Format(time.RFC3339)
}
