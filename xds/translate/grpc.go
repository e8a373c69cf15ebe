package translate

import (
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/ca"
)

// Proxyless gRPC (node metadata GENERATOR: grpc). gRPC's xDS client reads
// the same Envoy v3 resources, with these differences, which the
// translation for gRPC nodes follows (see docs/ARCHITECTURE.md,
// "Proxyless gRPC"):
//   - it asks for the listener named by the target it dials,
//     "HOST:PORT", an API listener whose HTTP connection manager names a
//     route table (here of the same name) by RDS;
//   - it rejects an HTTP filter it does not know unless marked optional,
//     so the chain is fault then router (no CORS);
//   - it honours max_stream_duration rather than RouteAction.timeout:
//     both are emitted;
//   - it has no SDS: cluster TLS names certificate provider instances
//     (CertificateProviderPluginInstance "default", certificates "default"
//     and "ROOTCA") that the bootstrap binds to files, and it has no
//     transport_socket_matches, so a cluster takes TLS when its endpoints
//     run sidecars that take mTLS;
//   - it knows ROUND_ROBIN, RING_HASH and LEAST_REQUEST only (RANDOM is
//     sent as ROUND_ROBIN, MAGLEV as RING_HASH) and no ORIGINAL_DST
//     clusters (a PASSTHROUGH rule's clusters are left out).

// GRPCCertProvider is the certificate provider instance a gRPC node's
// bootstrap defines (file_watcher over the files `weft bootstrap grpc`
// writes); its certificate "default" is the workload's, "ROOTCA" the
// mesh root.
const GRPCCertProvider = "default"

// grpcListeners emits, per HTTP port of every visible service, the API
// listener HOST:PORT and its route table of the same name.
func (g *generator) grpcListeners() {
	for _, svc := range g.services() {
		vs := g.virtualServiceFor(svc.Hostname)
		for _, port := range svc.Ports {
			if !port.IsHTTP() {
				continue
			}
			name := GRPCTarget(svc.Hostname, port.Number)
			vh := g.serviceVirtualHost(vs, svc, port)
			for _, c := range sidecarDomains(svc, port.Number, g.p.Namespace) {
				vh.Domains = append(vh.Domains, c.domain)
			}
			g.r.Routes[name] = &route.RouteConfiguration{Name: name, VirtualHosts: []*route.VirtualHost{vh}}
			m := &hcm.HttpConnectionManager{
				StatPrefix: name,
				CodecType:  hcm.HttpConnectionManager_AUTO,
				RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
					ConfigSource: adsSource(), RouteConfigName: name,
				}},
				HttpFilters: []*hcm.HttpFilter{
					httpFilter(faultFilterName, mustAny(&faultv3.HTTPFault{})),
					httpFilter(routerFilterName, mustAny(&routerv3.Router{})),
				},
			}
			g.r.Listeners[name] = &listener.Listener{
				Name:        name,
				ApiListener: &listener.ApiListener{ApiListener: mustAny(m)},
			}
		}
	}
}

// GRPCTarget is the listener (and route table) name of host:port for a
// gRPC node: the authority of xds:///HOST:PORT.
func GRPCTarget(host string, port uint32) string { return fmt.Sprintf("%s:%d", host, port) }

// grpcRoutes adapts routes made for Envoy to gRPC: the timeout is also a
// max_stream_duration, and per-filter configs of filters a gRPC chain
// does not have (CORS) are dropped.
func grpcRoutes(in []*route.Route) []*route.Route {
	out := make([]*route.Route, len(in))
	for i, r := range in {
		r = proto.Clone(r).(*route.Route)
		delete(r.TypedPerFilterConfig, corsFilterName)
		if len(r.TypedPerFilterConfig) == 0 {
			r.TypedPerFilterConfig = nil
		}
		if a := r.GetRoute(); a != nil && a.GetTimeout().AsDuration() > 0 {
			a.MaxStreamDuration = &route.RouteAction_MaxStreamDuration{MaxStreamDuration: a.GetTimeout()}
		}
		out[i] = r
	}
	return out
}

// grpcCluster adapts a cluster made for Envoy to gRPC, given its
// assignment (nil for none): returns nil when gRPC cannot use it.
func grpcCluster(c *cluster.Cluster, cla *endpoint.ClusterLoadAssignment) *cluster.Cluster {
	if c.GetType() == cluster.Cluster_ORIGINAL_DST {
		return nil
	}
	switch c.GetLbPolicy() {
	case cluster.Cluster_RANDOM:
		c.LbPolicy = cluster.Cluster_ROUND_ROBIN
	case cluster.Cluster_MAGLEV:
		c.LbPolicy = cluster.Cluster_RING_HASH
	}
	if ms := c.GetTransportSocketMatches(); len(ms) > 0 {
		// Auto mTLS: the match for sidecar endpoints holds the TLS socket.
		c.TransportSocketMatches = nil
		if anySidecar(cla) && len(ms) > 0 {
			c.TransportSocket = ms[0].GetTransportSocket()
		}
	}
	if ts := c.GetTransportSocket(); ts != nil {
		c.TransportSocket = grpcTLS(ts)
	}
	return c
}

// anySidecar reports whether an endpoint of cla is marked as taking mTLS.
func anySidecar(cla *endpoint.ClusterLoadAssignment) bool {
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			if e.GetMetadata().GetFilterMetadata()[TransportSocketMatchKey].GetFields()["tlsMode"].GetStringValue() == "istio" {
				return true
			}
		}
	}
	return false
}

// grpcTLS turns the mesh mTLS socket (SDS secrets "default" and "ROOTCA")
// into one naming gRPC's certificate provider; other TLS (files a
// DestinationRule names) is left as it is.
func grpcTLS(ts *core.TransportSocket) *core.TransportSocket {
	up := &tlsv3.UpstreamTlsContext{}
	if ts.GetTypedConfig().UnmarshalTo(up) != nil {
		return ts
	}
	common := up.GetCommonTlsContext()
	sds := common.GetTlsCertificateSdsSecretConfigs()
	if len(sds) != 1 || sds[0].GetName() != ca.SecretDefault {
		return ts
	}
	vc := &tlsv3.CertificateValidationContext{
		CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: GRPCCertProvider, CertificateName: ca.SecretRoot},
	}
	for _, m := range common.GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
		vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, &matcher.StringMatcher{MatchPattern: m.GetMatcher().GetMatchPattern()})
	}
	out := &tlsv3.UpstreamTlsContext{
		Sni: up.GetSni(),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: GRPCCertProvider, CertificateName: ca.SecretDefault},
			ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
			AlpnProtocols:                  []string{"h2"},
		},
	}
	return tlsSocket(out)
}
