// Package inject is the pod mutation that gives a pod weft's sidecar: a
// pure function from a corev1.Pod and Settings to the injected pod, used
// by the mutating webhook (kube/webhook) and by `weft kube inject`
// (offline, over a YAML stream: see Stream).
//
// The injected pod runs, before its own init containers:
//   - weft-init: `weft iptables ...` with NET_ADMIN and NET_RAW as root
//     (never privileged), the capture rules from the pod's
//     traffic.sidecar.istio.io/* annotations;
//   - weft-proxy: `weft proxy sidecar --interception REDIRECT` as a native
//     sidecar (an init container with restartPolicy Always, UID/GID 1337),
//     whose startup probe holds the app until the proxy is ready, so
//     holdApplicationUntilProxyStarts is always in effect and Jobs end
//     when their app does.
//
// contract.go names every flag, environment variable, path and object the
// pod refers to.
package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Settings are what the injector needs besides the pod.
type Settings struct {
	// Image is the weft image (entrypoint weft) of both injected containers.
	Image           string
	ImagePullPolicy corev1.PullPolicy // "": Kubernetes' default for the tag
	// XDSAddress is the control plane's xDS address, HOST:PORT: the
	// istiod Service's ClusterIP and XDSPort, since pods may have no DNS.
	XDSAddress string
	// XDSServerName is the name the proxy verifies on the control plane's
	// certificate; "" means XDSServerName.
	XDSServerName string
	// TelemetryURL is where the proxy reports metrics and spans, e.g.
	// http://CLUSTERIP:15080; "" for none.
	TelemetryURL string
}

func (s Settings) check() error {
	if s.Image == "" {
		return errors.New("inject: no proxy image")
	}
	if _, _, err := net.SplitHostPort(s.XDSAddress); err != nil {
		return fmt.Errorf("inject: xDS address %q: %w", s.XDSAddress, err)
	}
	return nil
}

// status is the sidecar.istio.io/status annotation: what was injected, in
// Istio's layout, and the mark that makes injection idempotent.
type status struct {
	InitContainers   []string `json:"initContainers"`
	Containers       []string `json:"containers"`
	Volumes          []string `json:"volumes"`
	ImagePullSecrets []string `json:"imagePullSecrets"`
	Revision         string   `json:"revision"`
}

// Pod returns a copy of pod with the sidecar injected; the input is not
// changed. workload names the workload the pod is an instance of (""
// derives it from the pod: see WorkloadName). A pod that is already
// injected comes back unchanged. Call Decide first: Pod injects whatever
// it is given. Errors name the annotation at fault.
func Pod(pod *corev1.Pod, s Settings, workload string) (*corev1.Pod, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	out := pod.DeepCopy()
	if injected(out) {
		return out, nil
	}
	ps, err := readAnnotations(out.Annotations)
	if err != nil {
		return nil, err
	}
	if workload == "" {
		workload = WorkloadName(out)
	}
	probers := ""
	if ps.rewriteProbes {
		if probers, err = rewriteProbes(out.Spec.Containers); err != nil {
			return nil, err
		}
	}
	setLabels(out, workload)

	image := s.Image
	if ps.image != "" {
		image = ps.image
	}
	initC := corev1.Container{
		Name:            InitContainerName,
		Image:           image,
		ImagePullPolicy: s.ImagePullPolicy,
		Args:            ps.captureArgs,
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi"),
		}},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr(int64(0)), RunAsGroup: ptr(int64(0)), RunAsNonRoot: ptr(false),
			Privileged: ptr(false), AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(false),
			Capabilities: &corev1.Capabilities{
				Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"},
			},
		},
	}
	proxyC := proxyContainer(s, ps, image, workload, probers)
	out.Spec.InitContainers = append([]corev1.Container{initC, proxyC}, out.Spec.InitContainers...)
	vols := Volumes()
	out.Spec.Volumes = append(out.Spec.Volumes, vols...)

	st := status{InitContainers: []string{InitContainerName, ProxyContainerName}, Revision: "default"}
	for _, v := range vols {
		st.Volumes = append(st.Volumes, v.Name)
	}
	js, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("inject: encode status: %w", err)
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[AnnotationStatus] = string(js)
	if _, ok := out.Annotations[AnnotationDefaultCtr]; !ok && len(out.Spec.Containers) > 0 {
		out.Annotations[AnnotationDefaultCtr] = out.Spec.Containers[0].Name
	}
	// Merged metrics on the status port, as Istio advertises them, unless
	// the pod says how it is scraped itself.
	if _, ok := out.Annotations["prometheus.io/scrape"]; !ok {
		out.Annotations["prometheus.io/scrape"] = "true"
		out.Annotations["prometheus.io/port"] = strconv.Itoa(StatusPort)
		out.Annotations["prometheus.io/path"] = "/stats/prometheus"
	}
	return out, nil
}

// setLabels adds Istio's labels: the workload accepts mutual TLS, and its
// canonical service name and revision (kept when the pod sets them).
func setLabels(p *corev1.Pod, workload string) {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	l := p.Labels
	l[LabelTLSMode] = "istio"
	if _, ok := l[LabelCanonicalName]; !ok {
		l[LabelCanonicalName] = firstOf(l["app.kubernetes.io/name"], l["app"], workload)
	}
	if _, ok := l[LabelCanonicalRevision]; !ok {
		l[LabelCanonicalRevision] = firstOf(l["app.kubernetes.io/version"], l["version"], "latest")
	}
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// proxyContainer is the native sidecar running `weft proxy sidecar`.
func proxyContainer(s Settings, ps *podSettings, image, workload, probers string) corev1.Container {
	serverName := s.XDSServerName
	if serverName == "" {
		serverName = XDSServerName
	}
	args := []string{
		CmdProxy, CmdSidecar,
		FlagInterception + "=" + InterceptionRedirect,
		FlagXDS + "=" + s.XDSAddress,
		FlagXDSServerName + "=" + serverName,
		FlagCARoot + "=" + RootCertFile,
		FlagTokenFile + "=" + TokenFile,
		FlagLabelsFile + "=" + LabelsFile,
	}
	if s.TelemetryURL != "" {
		args = append(args, FlagTelemetry+"="+s.TelemetryURL)
	}
	if ps.logLevel != "" {
		args = append(args, FlagLogLevel+"="+ps.logLevel)
	}
	if ps.traceSampling > 0 {
		args = append(args, FlagTraceSampling+"="+strconv.FormatFloat(ps.traceSampling, 'f', -1, 64))
	}
	env := append(DownwardEnv(), corev1.EnvVar{Name: EnvWorkloadName, Value: workload})
	if probers != "" {
		env = append(env, corev1.EnvVar{Name: EnvAppProbers, Value: probers})
	}
	if ps.concurrency > 0 {
		env = append(env, corev1.EnvVar{Name: EnvConcurrency, Value: strconv.Itoa(int(ps.concurrency))})
	}
	keys := make([]string, 0, len(ps.metadata))
	for k := range ps.metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, corev1.EnvVar{Name: k, Value: ps.metadata[k]})
	}
	ready := func(p corev1.Probe) *corev1.Probe {
		p.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: HealthPath, Port: intstr.FromInt32(HealthPort), Scheme: corev1.URISchemeHTTP,
		}}
		return &p
	}
	always := corev1.ContainerRestartPolicyAlways
	return corev1.Container{
		Name:            ProxyContainerName,
		Image:           image,
		ImagePullPolicy: s.ImagePullPolicy,
		Args:            args,
		Env:             env,
		Ports: []corev1.ContainerPort{
			{Name: StatsPortName, ContainerPort: StatsPort, Protocol: corev1.ProtocolTCP},
		},
		Resources:     ps.resources,
		RestartPolicy: &always,
		// The app starts once this passes: the kubelet runs a native
		// sidecar's startup probe before starting the next container.
		StartupProbe:   ready(corev1.Probe{PeriodSeconds: 1, FailureThreshold: 600, TimeoutSeconds: 3}),
		ReadinessProbe: ready(ps.readiness),
		SecurityContext: &corev1.SecurityContext{
			RunAsUser: ptr(int64(ProxyUID)), RunAsGroup: ptr(int64(ProxyUID)), RunAsNonRoot: ptr(true),
			Privileged: ptr(false), AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: VolumeMounts(),
	}
}

// DownwardEnv is the proxy's identity from the downward API: pod name,
// namespace, IP and service account.
func DownwardEnv() []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	return []corev1.EnvVar{
		field(EnvPodName, "metadata.name"),
		field(EnvPodNamespace, "metadata.namespace"),
		field(EnvInstanceIP, "status.podIP"),
		field(EnvServiceAccount, "spec.serviceAccountName"),
	}
}

// Volumes are the proxy's volumes: the projected ServiceAccount token it
// proves itself with (audience weft), the mesh root, the pod's labels and
// annotations, and a writable /tmp (the root file system is read-only).
func Volumes() []corev1.Volume {
	exp := int64(TokenExpirationSeconds)
	return []corev1.Volume{
		{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: TokenAudience, ExpirationSeconds: &exp, Path: strings.TrimPrefix(TokenFile, TokenDir+"/"),
			}}},
		}}},
		{Name: RootCertVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: RootCertConfigMap},
		}}},
		{Name: PodInfoVolume, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels"}},
				{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations"}},
			},
		}}},
		{Name: TmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
	}
}

// VolumeMounts mounts Volumes in the proxy container.
func VolumeMounts() []corev1.VolumeMount {
	return []corev1.VolumeMount{
		{Name: TokenVolume, MountPath: TokenDir, ReadOnly: true},
		{Name: RootCertVolume, MountPath: RootCertDir, ReadOnly: true},
		{Name: PodInfoVolume, MountPath: PodInfoDir, ReadOnly: true},
		{Name: TmpVolume, MountPath: TmpDir},
	}
}

// WorkloadName is the name of the workload a pod is an instance of, as
// Istio derives it: the Deployment for a ReplicaSet's pod (the ReplicaSet
// name without its pod-template-hash), else the controlling owner, else
// the pod's generateName without its trailing "-", else its name.
func WorkloadName(p *corev1.Pod) string {
	hash := p.Labels["pod-template-hash"]
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" && hash != "" {
			return strings.TrimSuffix(o.Name, "-"+hash)
		}
		return o.Name
	}
	if g := strings.TrimSuffix(p.GenerateName, "-"); g != "" {
		if hash != "" {
			return strings.TrimSuffix(g, "-"+hash)
		}
		return g
	}
	return p.Name
}

func ptr[T any](v T) *T { return &v }
