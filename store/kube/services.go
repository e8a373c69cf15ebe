package kube

import (
	"encoding/json"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// AnnotationOrigin marks an object the store synthesized from another
// source; its value says which ("kubernetes" for a Service).
const AnnotationOrigin = "weft.io/origin"

// OriginKubernetes is AnnotationOrigin's value on the ServiceEntry of a
// Kubernetes Service.
const OriginKubernetes = "kubernetes"

// Labels Kubernetes and Istio put on the objects read here.
const (
	labelServiceName    = discoveryv1.LabelServiceName // on an EndpointSlice: its Service
	labelPodTemplate    = "pod-template-hash"          // on a Deployment's pods and ReplicaSet
	labelRegion         = corev1.LabelTopologyRegion
	labelZone           = corev1.LabelTopologyZone
	labelSubzone        = "topology.istio.io/subzone"
	labelVirtualMachine = "vm.kubevirt.io/name" // on a KubeVirt virt-launcher pod
)

// lookups give synthesis the objects a Service's endpoints refer to; nil
// results mean "not (yet) known".
type lookups struct {
	pod  func(ns, name string) *corev1.Pod
	node func(name string) *corev1.Node
}

// serviceEntry turns a Kubernetes Service and its EndpointSlices into the
// ServiceEntry the mesh sees, as Istio's Kubernetes registry does:
//
//   - hosts NAME.NS.svc.cluster.local, addresses the clusterIPs (none when
//     headless), MESH_INTERNAL, STATIC; an ExternalName Service is
//     MESH_EXTERNAL with DNS resolution of its external name;
//   - a port per TCP Service port (UDP and SCTP are not proxied), its
//     protocol chosen from appProtocol or the port name (protocolOf);
//   - an inline endpoint per ready, non-terminating address of the
//     slices, carrying its pod's labels plus weft.io/workload, service
//     account and locality, and per port name the target port the slice
//     resolved for it;
//   - the other addresses (pods not ready yet, or terminating) in the
//     annotation model.AnnotationInactiveEndpoints: they get no traffic,
//     but their sidecars keep serving their ports.
func serviceEntry(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, l lookups) *config.Object {
	se := &networking.ServiceEntry{
		Hosts:      []string{svc.Name + "." + svc.Namespace + "." + model.DomainSuffix},
		Location:   networking.ServiceEntry_MESH_INTERNAL,
		Resolution: networking.ServiceEntry_STATIC,
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		se.Addresses = append(se.Addresses, ips...)
	}
	var unnamed *networking.ServicePort // a Service's only port may be unnamed
	names := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		sp := &networking.ServicePort{Number: uint32(p.Port), Name: p.Name, Protocol: protocolOf(p)}
		if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal > 0 {
			sp.TargetPort = uint32(p.TargetPort.IntVal)
		}
		if p.Name == "" {
			unnamed = sp
		}
		names[p.Name] = true
		se.Ports = append(se.Ports, sp)
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		se.Location, se.Resolution = networking.ServiceEntry_MESH_EXTERNAL, networking.ServiceEntry_DNS
		se.Addresses = nil
		if svc.Spec.ExternalName != "" {
			se.Endpoints = []*networking.WorkloadEntry{{Address: svc.Spec.ExternalName}}
		}
	}
	ann := map[string]string{AnnotationOrigin: OriginKubernetes}
	if svc.Spec.Type != corev1.ServiceTypeExternalName {
		var inactive []model.InactiveEndpoint
		se.Endpoints, inactive = endpoints(slices, names, unnamed, l)
		if len(inactive) > 0 {
			js, err := json.Marshal(inactive)
			if err == nil {
				ann[model.AnnotationInactiveEndpoints] = string(js)
			}
		}
	}
	return &config.Object{
		APIVersion: config.Kinds[kindIndex(config.KindServiceEntry)].PreferredAPIVersion(),
		Kind:       config.KindServiceEntry,
		Meta: config.Meta{
			Name: svc.Name, Namespace: svc.Namespace, Labels: copyMap(svc.Labels), Annotations: ann,
			CreationTimestamp: svc.CreationTimestamp.Time,
		},
		Spec: se,
	}
}

// endpoints lists the ready, non-terminating addresses of slices, sorted
// by address, each once, and the others (not ready, or terminating): they
// get no traffic, but their pods still serve their ports (their sidecars
// keep their inbound listeners while they start and while they drain).
// names are the ServiceEntry's port names; an unnamed port gets the target
// port the slices agree on.
func endpoints(slices []*discoveryv1.EndpointSlice, names map[string]bool, unnamed *networking.ServicePort, l lookups) ([]*networking.WorkloadEntry, []model.InactiveEndpoint) {
	sorted := append([]*discoveryv1.EndpointSlice(nil), slices...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	seen := map[string]bool{}
	var out []*networking.WorkloadEntry
	inactive := map[string]map[string]uint32{}
	unnamedPorts := map[int32]bool{}
	for _, s := range sorted {
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue // FQDN slices are deprecated and never made by Kubernetes itself
		}
		ports := map[string]uint32{}
		for _, p := range s.Ports {
			if p.Port == nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
				continue
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			switch {
			case name == "" && unnamed != nil:
				unnamedPorts[*p.Port] = true
			case name != "" && names[name]:
				ports[name] = uint32(*p.Port)
			}
		}
		for _, e := range s.Endpoints {
			switch {
			case len(e.Addresses) == 0 || seen[e.Addresses[0]]:
			case usable(e):
				seen[e.Addresses[0]] = true
				out = append(out, endpoint(s.Namespace, e, ports, l))
			default:
				inactive[e.Addresses[0]] = ports
			}
		}
	}
	var idle []model.InactiveEndpoint
	for addr, ports := range inactive {
		if !seen[addr] { // ready in another slice
			idle = append(idle, model.InactiveEndpoint{Address: addr, Ports: ports})
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].Address < idle[j].Address })
	// The slice controller resolves a named target port per pod; an
	// unnamed port can carry one number only, so it gets one when every
	// slice agrees (they do unless the pods name their ports differently).
	if unnamed != nil && unnamed.TargetPort == 0 && len(unnamedPorts) == 1 {
		for p := range unnamedPorts {
			unnamed.TargetPort = uint32(p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out, idle
}

// usable reports whether an endpoint should receive traffic: it has an
// address, is ready (unset means ready) and is not terminating.
func usable(e discoveryv1.Endpoint) bool {
	if len(e.Addresses) == 0 {
		return false
	}
	c := e.Conditions
	return (c.Ready == nil || *c.Ready) && (c.Terminating == nil || !*c.Terminating)
}

// endpoint describes one slice endpoint with what its pod and node say.
func endpoint(ns string, e discoveryv1.Endpoint, ports map[string]uint32, l lookups) *networking.WorkloadEntry {
	we := &networking.WorkloadEntry{Address: e.Addresses[0]}
	if len(ports) > 0 {
		we.Ports = ports
	}
	nodeName := ""
	if e.NodeName != nil {
		nodeName = *e.NodeName
	}
	if r := e.TargetRef; r != nil && r.Kind == "Pod" && l.pod != nil {
		podNS := r.Namespace
		if podNS == "" {
			podNS = ns
		}
		if pod := l.pod(podNS, r.Name); pod != nil {
			labels := copyMap(pod.Labels)
			if labels == nil {
				labels = map[string]string{}
			}
			labels[config.LabelWorkload] = workloadName(pod)
			we.Labels = labels
			we.ServiceAccount = pod.Spec.ServiceAccountName
			if we.ServiceAccount == "" {
				we.ServiceAccount = "default"
			}
			if nodeName == "" {
				nodeName = pod.Spec.NodeName
			}
		}
	}
	zone := ""
	if e.Zone != nil {
		zone = *e.Zone
	}
	var node *corev1.Node
	if nodeName != "" && l.node != nil {
		node = l.node(nodeName)
	}
	we.Locality = locality(node, zone)
	return we
}

// locality is Istio's region/zone/subzone of a node, from its topology
// labels (the slice's zone when the node does not say); "" when unknown.
func locality(node *corev1.Node, zone string) string {
	var region, subzone string
	if node != nil {
		region, subzone = node.Labels[labelRegion], node.Labels[labelSubzone]
		if z := node.Labels[labelZone]; z != "" {
			zone = z
		}
	}
	switch {
	case subzone != "":
		return region + "/" + zone + "/" + subzone
	case zone != "":
		return region + "/" + zone
	}
	return region
}

// workloadName is the name of what runs the pod, as Istio names it: the
// Deployment of a ReplicaSet's pod (the ReplicaSet name less its
// pod-template-hash), the owning StatefulSet, DaemonSet, Job or other
// controller, the KubeVirt VM of a virt-launcher pod, else the pod itself.
func workloadName(pod *corev1.Pod) string {
	if vm := pod.Labels[labelVirtualMachine]; vm != "" {
		return vm
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		if ref.Kind == "ReplicaSet" {
			if h := pod.Labels[labelPodTemplate]; h != "" {
				if name, ok := strings.CutSuffix(ref.Name, "-"+h); ok {
					return name
				}
			}
		}
		return ref.Name
	}
	return pod.Name
}

// protocolOf chooses a Service port's protocol as Istio does: appProtocol
// if set (Kubernetes' kubernetes.io/h2c, ws and wss included), else the
// port name's prefix before "-" ("http-web", "grpc", "tcp-db"), case
// insensitive; a name that says nothing leaves it unset (HTTP, sniffed),
// except on ports where sniffing would break the server-speaks-first
// protocols Istio knows (SMTP 25, DNS 53, MySQL 3306, MongoDB 27017): TCP.
func protocolOf(p corev1.ServicePort) string {
	name := p.Name
	if p.AppProtocol != nil && *p.AppProtocol != "" {
		name = *p.AppProtocol
		switch name {
		case "kubernetes.io/h2c":
			return "HTTP2"
		case "kubernetes.io/ws":
			return "HTTP"
		case "kubernetes.io/wss":
			return "HTTPS"
		}
	}
	// grpc-web holds the separator itself, so it is matched first.
	if len(name) >= len("grpc-web") && strings.EqualFold(name[:len("grpc-web")], "grpc-web") {
		return "GRPC-WEB"
	}
	prefix, _, _ := strings.Cut(name, "-")
	if proto, ok := portProtocols[strings.ToLower(prefix)]; ok {
		return proto
	}
	switch p.Port {
	case 25, 53, 3306, 27017:
		return "TCP"
	}
	return ""
}

// portProtocols are the protocol names a port name may start with.
var portProtocols = map[string]string{
	"http": "HTTP", "http2": "HTTP2", "https": "HTTPS", "http_proxy": "HTTP_PROXY", "grpc": "GRPC",
	"tcp": "TCP", "tls": "TLS", "udp": "UDP", "mongo": "MONGO", "redis": "REDIS", "mysql": "MYSQL",
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func kindIndex(k config.Kind) int {
	for i, info := range config.Kinds {
		if info.Kind == k {
			return i
		}
	}
	panic("store/kube: unknown kind " + string(k))
}
