// Package xdsscale is the control plane scale harness behind
// bench/xds-scale: a mesh of M services described in Istio YAML, N
// simulated sidecars holding real ADS streams from a separate process, and
// the measurements of docs/BENCHMARKS.md ("Control plane at scale").
package xdsscale

import (
	"fmt"
	"strings"

	"github.com/weft-mesh/weft/xds/node"
)

// Mesh describes the generated mesh. Service i lives in namespace
// ns-(i/PerNamespace), has 3 ports (HTTP 80, GRPC 9090, TCP 5432), a
// DestinationRule with subsets v1 and v2, a VirtualService (a header
// match to v2, a 90/10 split with retries and a timeout), an
// AuthorizationPolicy allowing its callers, and Endpoints instances
// (WorkloadEntries selected by the ServiceEntry), alternately v1 and v2.
type Mesh struct {
	Services     int
	Endpoints    int // per service
	PerNamespace int // services per namespace
	// Sidecar scopes what each proxy receives: "" or "none" (every
	// service), "namespace" (a Sidecar per namespace: egress "./*"), or
	// "workload" (a Sidecar per service: its own host and four others).
	Sidecar string
}

// Namespace returns the namespace of service i.
func (m Mesh) Namespace(i int) string { return fmt.Sprintf("ns-%d", i/m.PerNamespace) }

// Name returns the name of service i.
func (m Mesh) Name(i int) string { return fmt.Sprintf("svc-%d", i) }

// Host returns the FQDN of service i.
func (m Mesh) Host(i int) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", m.Name(i), m.Namespace(i))
}

// Namespaces returns how many namespaces the mesh spans.
func (m Mesh) Namespaces() int { return (m.Services + m.PerNamespace - 1) / m.PerNamespace }

// EndpointAddress is the address of instance j of service i: unique for j
// below 256, so endpoint additions have room above Endpoints.
func EndpointAddress(i, j int) string {
	n := i*256 + j + 1
	return fmt.Sprintf("10.%d.%d.%d", 1+n>>16, (n>>8)&0xff, n&0xff)
}

// ServiceAddress is service i's virtual address (a ClusterIP).
func ServiceAddress(i int) string { return fmt.Sprintf("240.%d.%d.%d", i>>16, (i>>8)&0xff, i&0xff) }

func version(j int) string { return fmt.Sprintf("v%d", j%2+1) }

// Documents returns the mesh as YAML documents, in apply order
// (services before what refers to them).
func (m Mesh) Documents() []string {
	var out []string
	for i := 0; i < m.Services; i++ {
		out = append(out, m.serviceEntry(i))
		for j := 0; j < m.Endpoints; j++ {
			out = append(out, m.WorkloadEntry(i, j))
		}
	}
	for i := 0; i < m.Services; i++ {
		out = append(out, m.destinationRule(i), m.VirtualService(i, 90), m.authorizationPolicy(i))
	}
	out = append(out, m.sidecars()...)
	return out
}

func (m Mesh) serviceEntry(i int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: %s}
spec:
  hosts: [%s]
  addresses: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9090, name: grpc, protocol: GRPC, targetPort: 9090}
  - {number: 5432, name: tcp-db, protocol: TCP, targetPort: 5432}
  workloadSelector: {labels: {app: %s}}
`, m.Name(i), m.Namespace(i), m.Host(i), ServiceAddress(i), m.Name(i))
}

// WorkloadEntry returns instance j of service i.
func (m Mesh) WorkloadEntry(i, j int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s-%d, namespace: %s}
spec:
  address: %s
  labels: {app: %s, version: %s, security.istio.io/tlsMode: istio, weft.io/workload: %s-%s}
  serviceAccount: %s
`, m.Name(i), j, m.Namespace(i), EndpointAddress(i, j), m.Name(i), version(j), m.Name(i), version(j), m.Name(i))
}

func (m Mesh) destinationRule(i int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s, namespace: %s}
spec:
  host: %s
  trafficPolicy:
    connectionPool:
      http: {http1MaxPendingRequests: 128, maxRequestsPerConnection: 100}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`, m.Name(i), m.Namespace(i), m.Name(i))
}

// VirtualService returns service i's routes with v1 taking weight percent
// of the default route and v2 the rest.
func (m Mesh) VirtualService(i, weight int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s, namespace: %s}
spec:
  hosts: [%s]
  http:
  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: %s, subset: v2}
  - route:
    - destination: {host: %s, subset: v1}
      weight: %d
    - destination: {host: %s, subset: v2}
      weight: %d
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,connect-failure"}
    timeout: 10s
`, m.Name(i), m.Namespace(i), m.Name(i), m.Name(i), m.Name(i), weight, m.Name(i), 100-weight)
}

// authorizationPolicy lets the previous service's workloads (and the
// ingress gateway) call service i with GET and POST.
func (m Mesh) authorizationPolicy(i int) string {
	caller := (i + m.Services - 1) % m.Services
	return fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: %s, namespace: %s}
spec:
  selector: {matchLabels: {app: %s}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/%s/sa/%s", "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}
    to:
    - operation: {methods: [GET, POST], ports: ["8080", "9090"]}
`, m.Name(i), m.Namespace(i), m.Name(i), m.Namespace(caller), m.Name(caller))
}

func (m Mesh) sidecars() []string {
	var out []string
	switch m.Sidecar {
	case "namespace":
		for n := 0; n < m.Namespaces(); n++ {
			out = append(out, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns-%d}
spec:
  egress:
  - hosts: ["./*"]
`, n))
		}
	case "workload":
		for i := 0; i < m.Services; i++ {
			var hosts []string
			for _, d := range m.Dependencies(i) {
				hosts = append(hosts, fmt.Sprintf("%q", m.Namespace(d)+"/"+m.Host(d)))
			}
			out = append(out, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: %s, namespace: %s}
spec:
  workloadSelector: {labels: {app: %s}}
  egress:
  - hosts: [%s]
`, m.Name(i), m.Namespace(i), m.Name(i), strings.Join(hosts, ", ")))
		}
	}
	return out
}

// Dependencies lists the services a workload of service i talks to in the
// "workload" scoping: itself and the next four.
func (m Mesh) Dependencies(i int) []int {
	out := []int{i}
	for k := 1; k < 5 && k < m.Services; k++ {
		out = append(out, (i+k)%m.Services)
	}
	return out
}

// Sees reports whether a proxy of service p receives service s's
// configuration under the mesh's scoping.
func (m Mesh) Sees(p, s int) bool {
	switch m.Sidecar {
	case "namespace":
		return m.Namespace(p) == m.Namespace(s)
	case "workload":
		for _, d := range m.Dependencies(p) {
			if d == s {
				return true
			}
		}
		return false
	}
	return true
}

// Proxy returns the node of simulated sidecar k: instance k/Services of
// service k%Services, so proxies spread over every service first.
// Captured proxies look like injected pods (transparent capture), the
// others like `weft run` sidecars.
func (m Mesh) Proxy(k int, captured bool) *node.Meta {
	i, j := k%m.Services, k/m.Services
	ip := EndpointAddress(i, j)
	meta := &node.Meta{
		Type: node.Sidecar, IP: ip, Name: fmt.Sprintf("%s-%d", m.Name(i), j), Namespace: m.Namespace(i),
		WorkloadName: m.Name(i) + "-" + version(j), ServiceAccount: m.Name(i),
		Labels: map[string]string{"app": m.Name(i), "version": version(j)},
	}
	if captured {
		meta.Interception = node.InterceptRedirect
	} else {
		meta.Inbound, meta.Outbound, meta.App = ip+":8080", "127.0.0.1:15001", "127.0.0.1:8080"
	}
	return meta
}
