package translate

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	rawbuffer "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// Names of the transport sockets, listener filter and metadata keys the
// mTLS part of the contract uses.
const (
	TLSTransportSocket       = "envoy.transport_sockets.tls"
	RawBufferTransportSocket = "envoy.transport_sockets.raw_buffer"
	TLSInspectorFilter       = "envoy.filters.listener.tls_inspector"
	// TransportSocketMatchKey is the endpoint filter_metadata key that
	// Cluster.transport_socket_matches compare against.
	TransportSocketMatchKey = "envoy.transport_socket_match"

	// InboundTLSChain and InboundPlaintextChain name virtualInbound's
	// filter chains.
	InboundTLSChain       = "inbound-tls"
	InboundPlaintextChain = "inbound-plaintext"

	// DefaultCACertificates is the CA bundle a DestinationRule SIMPLE or
	// MUTUAL tls setting verifies against when it names none.
	DefaultCACertificates = "/etc/ssl/certs/ca-certificates.crt"
)

// SNI returns the server name a client sidecar sends to an mTLS peer of
// cluster outbound|port|subset|host, Istio's outbound_.PORT_.SUBSET_.FQDN.
func SNI(port uint32, subset, host string) string {
	return fmt.Sprintf("outbound_.%d_.%s_.%s", port, subset, host)
}

// workloadPort is the port number a PeerAuthentication's portLevelMtls
// uses for a service port: the port the workload itself serves it on.
func workloadPort(p *model.Port) uint32 {
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Number
}

// inboundPort finds the workload port of this sidecar: the service port
// whose endpoint is the sidecar's inbound address or, failing that, the
// first port of a service in the node's namespace selecting its labels.
// 0 means unknown, so only workload-wide PeerAuthentication settings apply.
func (g *generator) inboundPort() uint32 {
	if g.wport == nil {
		wp := g.findInboundPort()
		g.wport = &wp
	}
	return *g.wport
}

func (g *generator) findInboundPort() uint32 {
	host, ps, err := net.SplitHostPort(g.p.Inbound)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return 0
	}
	cands := g.s.ServicesAt(host)
	if g.p.IP != host {
		cands = append(append([]*model.Service(nil), cands...), g.s.ServicesAt(g.p.IP)...)
		sort.Slice(cands, func(i, j int) bool { return cands[i].Hostname < cands[j].Hostname })
	}
	for _, svc := range cands {
		for _, port := range svc.Ports {
			for _, e := range svc.Endpoints {
				if (e.Address == host || e.Address == g.p.IP) && e.PortFor(port) == uint32(n) {
					return workloadPort(port)
				}
			}
		}
	}
	for _, svc := range g.s.Services() {
		if svc.Namespace == g.p.Namespace && len(svc.Selector) > 0 && len(svc.Ports) > 0 && model.LabelsMatch(g.p.Labels, svc.Selector) {
			return workloadPort(svc.Ports[0])
		}
	}
	return 0
}

// inboundListener builds virtualInbound with the filter chains the
// workload's effective PeerAuthentication mode calls for; every chain
// holds the same network filters.
func (g *generator) inboundListener(addr *core.Address, filters []*listener.Filter) *listener.Listener {
	l := &listener.Listener{Name: InboundListener, Address: addr, TrafficDirection: core.TrafficDirection_INBOUND}
	var inspect bool
	l.FilterChains, inspect = mtlsChains(g.s.InboundMTLS(g.p.Namespace, g.p.Labels, g.inboundPort()), filters, 0, "")
	if inspect {
		l.ListenerFilters = []*listener.ListenerFilter{tlsInspector()}
	}
	return l
}

// mtlsChains returns the server-side filter chains PeerAuthentication mode
// calls for, each holding a copy of filters: STRICT one TLS chain,
// PERMISSIVE the TLS chain then a plaintext one (told apart by transport
// protocol, so inspect is set: the listener needs the tls_inspector),
// DISABLE one plaintext chain matching any transport. A port other than 0
// is the chains' destination_port, and suffix ends their names.
func mtlsChains(mode model.MTLSMode, filters []*listener.Filter, port uint32, suffix string) (chains []*listener.FilterChain, inspect bool) {
	plaintext := func(match bool) *listener.FilterChain {
		fc := &listener.FilterChain{Name: InboundPlaintextChain, Filters: cloneFilters(filters)}
		if match {
			fc.FilterChainMatch = &listener.FilterChainMatch{TransportProtocol: "raw_buffer"}
		}
		return fc
	}
	switch mode {
	case model.MTLSDisable:
		chains = []*listener.FilterChain{plaintext(false)}
	case model.MTLSPermissive:
		chains, inspect = []*listener.FilterChain{inboundTLSChain(filters), plaintext(true)}, true
	default:
		// STRICT, and anything the model could add later: fail closed.
		chains, inspect = []*listener.FilterChain{inboundTLSChain(filters)}, true
	}
	for _, fc := range chains {
		fc.Name += suffix
		if port != 0 {
			if fc.FilterChainMatch == nil {
				fc.FilterChainMatch = &listener.FilterChainMatch{}
			}
			fc.FilterChainMatch.DestinationPort = wrapperspb.UInt32(port)
		}
	}
	return chains, inspect
}

func tlsInspector() *listener.ListenerFilter {
	return &listener.ListenerFilter{
		Name:       TLSInspectorFilter,
		ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspector.TlsInspector{})},
	}
}

func cloneFilters(fs []*listener.Filter) []*listener.Filter {
	out := make([]*listener.Filter, len(fs))
	for i, f := range fs {
		out[i] = proto.Clone(f).(*listener.Filter)
	}
	return out
}

func inboundTLSChain(filters []*listener.Filter) *listener.FilterChain {
	ctx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(ca.SecretDefault)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsSecret(ca.SecretRoot),
			},
			AlpnProtocols: []string{"h2", "http/1.1"},
		},
	}
	return &listener.FilterChain{
		Name:             InboundTLSChain,
		FilterChainMatch: &listener.FilterChainMatch{TransportProtocol: "tls"},
		Filters:          cloneFilters(filters),
		TransportSocket:  tlsSocket(ctx),
	}
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

func tlsSocket(ctx proto.Message) *core.TransportSocket {
	return &core.TransportSocket{Name: TLSTransportSocket, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

// endpointSidecarTLS reports whether e runs a sidecar that takes mTLS on
// port, i.e. whether auto mTLS should use TLS to reach it. Answers are
// cached: every subset cluster of a service asks about the same endpoints.
func (g *generator) endpointSidecarTLS(e *model.Endpoint, port *model.Port) bool {
	if !e.Sidecar {
		return false
	}
	key := endpointPort{e, workloadPort(port)}
	if v, ok := g.peerTLS[key]; ok {
		return v
	}
	v := g.s.InboundMTLS(e.Namespace, e.Labels, key.port) != model.MTLSDisable
	if g.peerTLS == nil {
		g.peerTLS = map[endpointPort]bool{}
	}
	g.peerTLS[key] = v
	return v
}

type endpointPort struct {
	e    *model.Endpoint
	port uint32
}

// tlsModeMetadata is the filter_metadata that selects the tlsMode-istio
// transport socket match.
func tlsModeMetadata() *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{"tlsMode": structpb.NewStringValue("istio")}}
}

// clusterIdentities lists, sorted and once each, the SPIFFE IDs of the
// service's endpoints carrying every label in subset (named subsetName):
// the identities an mTLS client accepts from the cluster's servers. The
// list is shared between the service's ports; callers must not modify it.
func (g *generator) clusterIdentities(svc *model.Service, subsetName string, subset map[string]string) []string {
	key := hostSubset{svc.Hostname, subsetName}
	if out, ok := g.sans[key]; ok {
		return out
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range svc.Endpoints {
		if !e.Matches(subset) {
			continue
		}
		id := ca.SPIFFEID(g.opts.TrustDomain, e.Namespace, e.ServiceAccount)
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	if g.sans == nil {
		g.sans = map[hostSubset][]string{}
	}
	g.sans[key] = out
	return out
}

type hostSubset struct{ host, subset string }

// istioMutualSocket is the client side of mesh mTLS to cluster
// outbound|port|subset|host: the proxy's own certificate, the mesh root,
// and the servers' SPIFFE IDs (or sans, when the DestinationRule names
// subjectAltNames).
func istioMutualSocket(sni string, sans []string) *core.TransportSocket {
	var ms []*tlsv3.SubjectAltNameMatcher
	for _, id := range sans {
		ms = append(ms, sanMatcher(tlsv3.SubjectAltNameMatcher_URI, id))
	}
	return tlsSocket(&tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(ca.SecretDefault)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: ms},
					ValidationContextSdsSecretConfig: sdsSecret(ca.SecretRoot),
				},
			},
			AlpnProtocols: []string{"http/1.1"},
		},
	})
}

func sanMatcher(t tlsv3.SubjectAltNameMatcher_SanType, v string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: t, Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: v}}}
}

// sanType guesses the kind of a subjectAltNames entry, since Istio's list
// does not say: an IP address, a URI (spiffe://...), else a DNS name.
func sanType(v string) tlsv3.SubjectAltNameMatcher_SanType {
	switch {
	case net.ParseIP(v) != nil:
		return tlsv3.SubjectAltNameMatcher_IP_ADDRESS
	case strings.Contains(v, "://"):
		return tlsv3.SubjectAltNameMatcher_URI
	}
	return tlsv3.SubjectAltNameMatcher_DNS
}

// upstreamTLS gives cluster c the client TLS its merged DestinationRule
// tls settings ask for; none means auto mTLS. dr names the rule in
// problems (nil when no rule applies).
func (g *generator) upstreamTLS(c *cluster.Cluster, svc *model.Service, port uint32, subsetName string, subset map[string]string, tls *networking.ClientTLSSettings, dr *config.Object) {
	sni := SNI(port, subsetName, svc.Hostname)
	if tls == nil {
		c.TransportSocketMatches = []*cluster.Cluster_TransportSocketMatch{
			{Name: "tlsMode-istio", Match: tlsModeMetadata(), TransportSocket: istioMutualSocket(sni, g.clusterIdentities(svc, subsetName, subset))},
			{Name: "tlsMode-disabled", Match: &structpb.Struct{}, TransportSocket: rawBufferSocket()},
		}
		return
	}
	switch tls.GetMode() {
	case networking.ClientTLSSettings_DISABLE:
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		sans := tls.GetSubjectAltNames()
		if len(sans) == 0 {
			sans = g.clusterIdentities(svc, subsetName, subset)
		}
		if tls.GetSni() != "" {
			sni = tls.GetSni()
		}
		c.TransportSocket = istioMutualSocket(sni, sans)
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		ctx, err := originationContext(svc.Hostname, tls)
		if err != nil {
			g.r.problem("cluster %s: DestinationRule %s/%s: %v", c.GetName(), dr.Meta.Namespace, dr.Meta.Name, err)
			return
		}
		a := g.toAny("cluster "+c.GetName()+": tls", ctx)
		if a == nil {
			return
		}
		c.TransportSocket = &core.TransportSocket{Name: TLSTransportSocket, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: a}}
	default:
		g.r.problem("cluster %s: DestinationRule %s/%s: tls.mode %v is not supported", c.GetName(), dr.Meta.Namespace, dr.Meta.Name, tls.GetMode())
	}
}

func rawBufferSocket() *core.TransportSocket {
	return &core.TransportSocket{Name: RawBufferTransportSocket, ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbuffer.RawBuffer{})}}
}

// originationContext is TLS a sidecar originates to a server outside the
// mesh (DestinationRule SIMPLE or MUTUAL), from files on the proxy's host.
func originationContext(host string, tls *networking.ClientTLSSettings) (*tlsv3.UpstreamTlsContext, error) {
	ctx := &tlsv3.UpstreamTlsContext{Sni: tls.GetSni(), CommonTlsContext: &tlsv3.CommonTlsContext{}}
	if ctx.Sni == "" {
		ctx.Sni = host
	}
	if tls.GetCredentialName() != "" {
		return nil, fmt.Errorf("tls.credentialName %q: secrets by name are not supported; use clientCertificate, privateKey and caCertificates files", tls.GetCredentialName())
	}
	if !tls.GetInsecureSkipVerify().GetValue() {
		bundle := tls.GetCaCertificates()
		if bundle == "" {
			bundle = DefaultCACertificates
		}
		vc := &tlsv3.CertificateValidationContext{TrustedCa: fileSource(bundle)}
		for _, san := range tls.GetSubjectAltNames() {
			vc.MatchTypedSubjectAltNames = append(vc.MatchTypedSubjectAltNames, sanMatcher(sanType(san), san))
		}
		if crl := tls.GetCaCrl(); crl != "" {
			vc.Crl = fileSource(crl)
		}
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	if tls.GetMode() == networking.ClientTLSSettings_MUTUAL {
		if tls.GetClientCertificate() == "" || tls.GetPrivateKey() == "" {
			return nil, fmt.Errorf("tls: mode MUTUAL needs clientCertificate and privateKey")
		}
		ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: fileSource(tls.GetClientCertificate()),
			PrivateKey:       fileSource(tls.GetPrivateKey()),
		}}
	}
	return ctx, nil
}

func fileSource(path string) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_Filename{Filename: path}}
}
