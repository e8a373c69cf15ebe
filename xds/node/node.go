// Package node is the contract between the control plane and a proxy about who
// the proxy is: the Envoy Node it sends on its ADS stream. Both sides use it,
// so the encoding lives in one place.
//
// The node ID follows Istio: "TYPE~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local".
// Everything else travels in Node.metadata under the keys below.
package node

import (
	"fmt"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Type is the role of a proxy.
type Type string

// Proxy roles, spelled as in Istio's node IDs.
const (
	Sidecar Type = "sidecar"
	Router  Type = "router" // ingress gateway
)

// Metadata keys carried in Node.metadata.
const (
	KeyNamespace      = "NAMESPACE"
	KeyWorkloadName   = "WORKLOAD_NAME"
	KeyLabels         = "LABELS"
	KeyServiceAccount = "SERVICE_ACCOUNT"
	KeyInbound        = "INBOUND_ADDRESS"   // sidecar: where callers reach it, host:port
	KeyOutbound       = "OUTBOUND_ADDRESS"  // sidecar: the app's HTTP proxy, host:port
	KeyApp            = "APP_ADDRESS"       // sidecar: the local app, host:port
	KeyAdmin          = "ADMIN_ADDRESS"     // admin/stats endpoint, host:port
	KeyGatewayPorts   = "GATEWAY_PORTS"     // router: "80=127.0.0.1:8080,443=127.0.0.1:8443"
	KeyGatewayHost    = "GATEWAY_HOST"      // router: host for ports not in GatewayPorts
	KeyInboundProto   = "INBOUND_PROTOCOL"  // sidecar: "HTTP" (default) or "TCP"
	KeyInterception   = "INTERCEPTION_MODE" // sidecar: InterceptRedirect for transparent capture
	KeyGenerator      = "GENERATOR"         // GeneratorGRPC for a proxyless gRPC client, as Istio names it
)

// GeneratorGRPC is the GENERATOR of a proxyless gRPC application: it
// reads xDS itself (gRPC's xds resolver and balancers), so it is sent
// listeners named by the targets it dials and clusters whose TLS names
// gRPC certificate providers instead of SDS secrets.
const GeneratorGRPC = "grpc"

// Interception modes (Istio's INTERCEPTION_MODE values that weft supports).
const (
	// InterceptNone: the app reaches the mesh through its HTTP_PROXY, the
	// sidecar's OUTBOUND_ADDRESS, and callers reach INBOUND_ADDRESS (local
	// mode, `weft run`).
	InterceptNone = ""
	// InterceptRedirect: the workload's traffic is captured by netfilter
	// REDIRECT rules (`weft iptables`, the injected init container): the
	// sidecar listens on OutboundCapturePort and InboundCapturePort on all
	// addresses and recovers each connection's original destination.
	InterceptRedirect = "REDIRECT"
)

// Istio's port and user conventions for a captured workload. The injector,
// `weft iptables` and the translator all read them from here.
const (
	OutboundCapturePort = 15001 // outbound connections redirected here
	InboundCapturePort  = 15006 // inbound connections redirected here
	AdminPort           = 15000 // the proxy's admin server, loopback only
	StatusPort          = 15020 // merged Prometheus metrics and app health probes
	HealthPort          = 15021 // the sidecar's own readiness: /healthz/ready
	StatsPort           = 15090 // the proxy's /stats/prometheus
	// ProxyUID is the user the sidecar runs as; its own connections are
	// never captured, so they reach their destination.
	ProxyUID = 1337
)

// Meta is a proxy's identity and addresses.
type Meta struct {
	Type           Type
	IP             string // the address workloads reach it on (127.0.0.1 locally)
	Name           string // instance name, e.g. catalog-v1-6d6b478456-9vsm2
	Namespace      string
	WorkloadName   string // e.g. catalog-v1
	Labels         map[string]string
	ServiceAccount string
	Inbound        string
	Outbound       string
	App            string
	Admin          string
	// InboundProtocol is "TCP" for a workload whose inbound listener
	// proxies raw TCP; anything else means HTTP.
	InboundProtocol string
	// GatewayPorts maps a Gateway server port to the local address serving it.
	GatewayPorts map[uint32]string
	// GatewayHost is the host used for Gateway ports absent from GatewayPorts;
	// such a port N listens on GatewayHost:N when N >= 1024, else on N+8000.
	GatewayHost string
	// Interception is how the workload's traffic reaches the sidecar:
	// InterceptNone or InterceptRedirect.
	Interception string
	// Generator is GeneratorGRPC for a proxyless gRPC application, else "".
	Generator string
}

// GRPC reports whether the node is a proxyless gRPC application.
func (m *Meta) GRPC() bool { return m.Generator == GeneratorGRPC }

// Captured reports whether the proxy's traffic is captured transparently
// (InterceptRedirect) rather than addressed to it explicitly.
func (m *Meta) Captured() bool { return m.Interception == InterceptRedirect }

// ID returns the Istio-style node ID.
func (m *Meta) ID() string {
	return fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", m.Type, m.IP, m.Name, m.Namespace, m.Namespace)
}

// GatewayListenAddress returns the local address that serves Gateway port p.
func (m *Meta) GatewayListenAddress(p uint32) string {
	if a, ok := m.GatewayPorts[p]; ok {
		return a
	}
	host := m.GatewayHost
	if host == "" {
		host = "127.0.0.1"
	}
	if p < 1024 {
		p += 8000
	}
	return fmt.Sprintf("%s:%d", host, p)
}

// Node encodes m as an Envoy Node.
func (m *Meta) Node() *core.Node {
	labels := map[string]any{}
	for k, v := range m.Labels {
		labels[k] = v
	}
	fields := map[string]any{
		KeyNamespace:      m.Namespace,
		KeyWorkloadName:   m.WorkloadName,
		KeyLabels:         labels,
		KeyServiceAccount: m.ServiceAccount,
		KeyInbound:        m.Inbound,
		KeyOutbound:       m.Outbound,
		KeyApp:            m.App,
		KeyAdmin:          m.Admin,
		KeyGatewayHost:    m.GatewayHost,
		KeyInboundProto:   m.InboundProtocol,
		KeyInterception:   m.Interception,
	}
	if m.Generator != "" {
		fields[KeyGenerator] = m.Generator
	}
	if len(m.GatewayPorts) > 0 {
		var parts []string
		for p, a := range m.GatewayPorts {
			parts = append(parts, fmt.Sprintf("%d=%s", p, a))
		}
		sort.Strings(parts)
		fields[KeyGatewayPorts] = strings.Join(parts, ",")
	}
	md, err := structpb.NewStruct(fields)
	if err != nil {
		panic(fmt.Sprintf("node metadata: %v", err)) // only strings and string maps above
	}
	return &core.Node{Id: m.ID(), Cluster: m.WorkloadName, Metadata: md, UserAgentName: "weft"}
}

// Parse decodes the Node a proxy sent.
func Parse(n *core.Node) (*Meta, error) {
	if n == nil {
		return nil, fmt.Errorf("node: missing")
	}
	parts := strings.Split(n.GetId(), "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node id %q: want TYPE~IP~NAME.NAMESPACE~DOMAIN", n.GetId())
	}
	m := &Meta{Type: Type(parts[0]), IP: parts[1]}
	switch m.Type {
	case Sidecar, Router:
	default:
		return nil, fmt.Errorf("node id %q: unknown proxy type %q", n.GetId(), parts[0])
	}
	f := n.GetMetadata().GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	m.Namespace = str(KeyNamespace)
	name, ns, ok := strings.Cut(parts[2], ".")
	if !ok {
		return nil, fmt.Errorf("node id %q: want NAME.NAMESPACE in the third part", n.GetId())
	}
	m.Name = name
	if m.Namespace == "" {
		m.Namespace = ns
	}
	m.WorkloadName = str(KeyWorkloadName)
	m.ServiceAccount = str(KeyServiceAccount)
	m.Inbound, m.Outbound, m.App, m.Admin = str(KeyInbound), str(KeyOutbound), str(KeyApp), str(KeyAdmin)
	m.GatewayHost = str(KeyGatewayHost)
	m.InboundProtocol = str(KeyInboundProto)
	switch m.Interception = str(KeyInterception); m.Interception {
	case InterceptNone, InterceptRedirect:
	default:
		return nil, fmt.Errorf("node %s: metadata %s: unsupported mode %q (want %q or none)", n.GetId(), KeyInterception, m.Interception, InterceptRedirect)
	}
	switch m.Generator = str(KeyGenerator); m.Generator {
	case "", GeneratorGRPC:
	default:
		return nil, fmt.Errorf("node %s: metadata %s: unsupported generator %q (want %q or none)", n.GetId(), KeyGenerator, m.Generator, GeneratorGRPC)
	}
	if l := f[KeyLabels].GetStructValue(); l != nil {
		m.Labels = map[string]string{}
		for k, v := range l.GetFields() {
			m.Labels[k] = v.GetStringValue()
		}
	}
	if gp := str(KeyGatewayPorts); gp != "" {
		m.GatewayPorts = map[uint32]string{}
		for _, kv := range strings.Split(gp, ",") {
			var p uint32
			k, v, _ := strings.Cut(kv, "=")
			if _, err := fmt.Sscan(k, &p); err != nil || v == "" {
				return nil, fmt.Errorf("node %s: metadata %s: bad entry %q", n.GetId(), KeyGatewayPorts, kv)
			}
			m.GatewayPorts[p] = v
		}
	}
	return m, nil
}
