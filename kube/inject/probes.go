package inject

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// appProbe is one original app probe the proxy runs for the kubelet, keyed
// by its path on the status port in EnvAppProbers (Istio's
// ISTIO_KUBE_APP_PROBERS layout).
type appProbe struct {
	HTTPGet        *corev1.HTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket      *corev1.TCPSocketAction `json:"tcpSocket,omitempty"`
	TimeoutSeconds int32                   `json:"timeoutSeconds,omitempty"`
}

// rewriteProbes points the app containers' HTTP and TCP liveness,
// readiness and startup probes at the proxy's status port
// (/app-health/CONTAINER/livez|readyz|startupz) and returns the originals,
// JSON-encoded, for the proxy to run. Inbound capture would otherwise
// send the kubelet's probe through the proxy, which under STRICT mTLS
// refuses a plaintext caller. Exec probes stay as they are, and so do
// gRPC probes (the proxy's status server does not perform them yet: list
// their port in traffic.sidecar.istio.io/excludeInboundPorts) and a probe
// naming a port the container does not declare (the kubelet would fail it
// the same way).
func rewriteProbes(containers []corev1.Container) (string, error) {
	probers := map[string]appProbe{}
	for i := range containers {
		c := &containers[i]
		for _, p := range []struct {
			probe *corev1.Probe
			kind  string
		}{{c.LivenessProbe, "livez"}, {c.ReadinessProbe, "readyz"}, {c.StartupProbe, "startupz"}} {
			if p.probe == nil {
				continue
			}
			path := fmt.Sprintf("%s%s/%s", AppHealthPathPrefix, c.Name, p.kind)
			orig, ok := original(c, p.probe)
			if !ok {
				continue
			}
			orig.TimeoutSeconds = p.probe.TimeoutSeconds
			probers[path] = orig
			p.probe.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromInt32(StatusPort), Scheme: corev1.URISchemeHTTP,
			}}
		}
	}
	if len(probers) == 0 {
		return "", nil
	}
	js, err := json.Marshal(probers) // map keys sorted: the same pod gives the same env
	if err != nil {
		return "", fmt.Errorf("encode app probes: %w", err)
	}
	return string(js), nil
}

// original returns the probe's action with its port resolved to a number.
func original(c *corev1.Container, p *corev1.Probe) (appProbe, bool) {
	switch {
	case p.HTTPGet != nil:
		port, ok := resolvePort(c, p.HTTPGet.Port)
		if !ok {
			return appProbe{}, false
		}
		h := p.HTTPGet.DeepCopy()
		h.Port = port
		if h.Scheme == "" {
			h.Scheme = corev1.URISchemeHTTP
		}
		return appProbe{HTTPGet: h}, true
	case p.TCPSocket != nil:
		port, ok := resolvePort(c, p.TCPSocket.Port)
		if !ok {
			return appProbe{}, false
		}
		t := p.TCPSocket.DeepCopy()
		t.Port = port
		return appProbe{TCPSocket: t}, true
	}
	return appProbe{}, false
}

// resolvePort turns a named container port into its number.
func resolvePort(c *corev1.Container, port intstr.IntOrString) (intstr.IntOrString, bool) {
	if port.Type == intstr.Int {
		return port, port.IntVal > 0
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return intstr.FromInt32(cp.ContainerPort), true
		}
	}
	return port, false
}
