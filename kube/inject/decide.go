package inject

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Namespace is what the injector knows about a pod's namespace.
type Namespace struct {
	Name   string
	Labels map[string]string
	// Member is whether the namespace is in the mesh: listed in a
	// ServiceMeshMemberRoll, or any namespace when no roll exists.
	Member bool
	// NotMemberReason says why not, when Member is false.
	NotMemberReason string
}

// systemNamespaces never get sidecars, as in Istio.
var systemNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// Decide reports whether pod gets a sidecar in ns, and why. The rules are
// Istio's and Maistra's:
//   - never twice (the status annotation, or a container named
//     ProxyContainerName), never with hostNetwork, never in the
//     Kubernetes system namespaces;
//   - never when the pod's label (or else annotation)
//     sidecar.istio.io/inject is "false", or the namespace is labelled
//     istio-injection=disabled;
//   - always in a namespace labelled istio-injection=enabled;
//   - else when the pod's label or annotation sidecar.istio.io/inject is
//     "true" and the namespace is a mesh member (Maistra's member-roll
//     style: seeds annotate the Deployment's pod template).
func Decide(pod *corev1.Pod, ns Namespace) (bool, string) {
	if injected(pod) {
		return false, "already injected"
	}
	if pod.Spec.HostNetwork {
		return false, "the pod uses the host network"
	}
	if systemNamespaces[ns.Name] {
		return false, "namespace " + ns.Name + " is a Kubernetes system namespace"
	}
	want, set, err := podWants(pod)
	if err != nil {
		return false, err.Error()
	}
	if set && !want {
		return false, LabelOrAnnotationInject + " is false"
	}
	switch ns.Labels[LabelInjection] {
	case "disabled":
		return false, "namespace " + ns.Name + " is labelled " + LabelInjection + "=disabled"
	case "enabled":
		return true, "namespace " + ns.Name + " is labelled " + LabelInjection + "=enabled"
	}
	if !set {
		return false, "namespace " + ns.Name + " is not labelled " + LabelInjection + "=enabled and the pod does not ask for a sidecar (" + LabelOrAnnotationInject + ": \"true\")"
	}
	if !ns.Member {
		reason := ns.NotMemberReason
		if reason == "" {
			reason = "namespace " + ns.Name + " is not a mesh member"
		}
		return false, reason
	}
	return true, "the pod asks for a sidecar (" + LabelOrAnnotationInject + ": \"true\")"
}

// injected reports whether the pod already has weft's sidecar.
func injected(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[AnnotationStatus]; ok {
		return true
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == ProxyContainerName {
				return true
			}
		}
	}
	return false
}

// podWants reads sidecar.istio.io/inject: the label wins over the
// annotation, as in Istio. set is false when neither is present.
func podWants(pod *corev1.Pod) (want, set bool, err error) {
	v, ok := pod.Labels[LabelOrAnnotationInject]
	where := "label"
	if !ok {
		v, ok = pod.Annotations[LabelOrAnnotationInject]
		where = "annotation"
	}
	if !ok {
		return false, false, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "y", "yes", "on":
		return true, true, nil
	case "false", "n", "no", "off":
		return false, true, nil
	}
	return false, true, &Error{Field: where + " " + LabelOrAnnotationInject, Msg: "\"" + v + "\" is neither \"true\" nor \"false\""}
}

// Error is a problem with what a pod asks of the injector, naming the
// label or annotation at fault.
type Error struct {
	Field string // e.g. "annotation traffic.sidecar.istio.io/excludeInboundPorts"
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }
