// Package manifest builds what `weft kube install` puts in a cluster and
// `weft kube manifests` prints: the CRDs (kube/crd), and in istio-system
// the control plane (Deployment and Service istiod, its ServiceAccount and
// RBAC), the ingress gateway (Deployment and Service
// istio-ingressgateway) and the webhook configurations. Names follow
// Istio's, so the seeds' Gateways (selector istio: ingressgateway) and
// habits (`kubectl -n istio-system get pods`) work unchanged.
package manifest

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/weft-mesh/weft/kube/crd"
	"github.com/weft-mesh/weft/kube/inject"
)

// Names of the installed objects (Istio's where Istio has them).
const (
	GatewayName           = "istio-ingressgateway"
	GatewayServiceAccount = "istio-ingressgateway-service-account"
	// StateDir is the control plane's scratch directory in its pod (an
	// emptyDir: the cluster holds the state).
	StateDir = "/var/lib/weft"
	// AnnotationCreatedNamespace marks istio-system as made by the
	// install, so uninstall removes it (and nothing it did not create).
	AnnotationCreatedNamespace = "weft.io/created-by-install"
)

// ControlPlaneArgs are the control plane container's arguments: Kubernetes
// mode, the addresses of the contract (xDS TLS 15012, API 15080; the
// webhooks serve on 15017 in Kubernetes mode).
var ControlPlaneArgs = []string{
	"controlplane", "--kubernetes",
	"--api-addr=:" + strconv.Itoa(inject.APIPort),
	"--xds-addr=:" + strconv.Itoa(inject.XDSPort),
	"--state-dir=" + StateDir,
}

// ControlPlaneReadyPath is the control plane's readiness endpoint on the
// API port.
const ControlPlaneReadyPath = "/healthz"

// Options are the install's choices.
type Options struct {
	Image           string            // required: the weft image (entrypoint weft)
	ImagePullPolicy corev1.PullPolicy // default IfNotPresent
	Replicas        int32             // control plane replicas, default 2
}

// Objects returns everything the install creates, in the order it is
// applied: CRDs first, then the namespace, identities and RBAC, Services,
// Deployments, and the webhook configurations last (a webhook must not
// point at a server that does not exist yet for longer than needed).
func Objects(o Options) ([]*unstructured.Unstructured, error) {
	if o.Image == "" {
		return nil, errors.New("manifests: an image is required (--image)")
	}
	if strings.ContainsAny(o.Image, " \t\n") {
		return nil, fmt.Errorf("manifests: image %q has blanks", o.Image)
	}
	if o.ImagePullPolicy == "" {
		o.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	var objs []runtime.Object
	for _, c := range crd.All() {
		objs = append(objs, c)
	}
	objs = append(objs, Namespace())
	objs = append(objs, rbac()...)
	objs = append(objs, controlPlaneService(), leaderService(), gatewayService(), controlPlane(o), gateway(o),
		Injector(WebhookTarget{}), Validator(WebhookTarget{}))
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		u, err := ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// ToUnstructured converts a typed object, leaving out what the API server
// fills in (status, a null creationTimestamp).
func ToUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("manifests: %T: %w", obj, err)
	}
	delete(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
	return &unstructured.Unstructured{Object: m}, nil
}

// WriteYAML writes objects as one YAML stream.
func WriteYAML(w io.Writer, objs []*unstructured.Unstructured) error {
	for i, u := range objs {
		y, err := yaml.Marshal(u.Object)
		if err != nil {
			return fmt.Errorf("manifests: %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(y); err != nil {
			return err
		}
	}
	return nil
}

// labels returns the install's labels plus extra.
func labels(extra map[string]string) map[string]string {
	l := map[string]string{}
	for k, v := range crd.Labels {
		l[k] = v
	}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

func meta(name string, extra map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: inject.SystemNamespace, Labels: labels(extra)}
}

// Namespace is istio-system as the install creates it.
func Namespace() *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: inject.SystemNamespace, Labels: labels(nil),
			Annotations: map[string]string{AnnotationCreatedNamespace: "true"}},
	}
}

var (
	controlPlaneLabels = map[string]string{"app": inject.ControlPlaneName, "istio": "pilot"}
	gatewayLabels      = map[string]string{"app": GatewayName, "istio": "ingressgateway"}
)

// ControlPlaneLabels are the labels of the control plane's pods (and its
// Service's selector).
func ControlPlaneLabels() map[string]string {
	out := map[string]string{}
	for k, v := range controlPlaneLabels {
		out[k] = v
	}
	return out
}

// noInject keeps the mesh's own pods out of injection whatever their
// namespace's labels say.
func noInject(l map[string]string) map[string]string {
	out := map[string]string{inject.LabelOrAnnotationInject: "false"}
	for k, v := range l {
		out[k] = v
	}
	return out
}

// service is a Service in istio-system named name, labelled as the
// control plane, selecting selector, with ports (port = target port but
// for the webhooks').
func service(name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(name, controlPlaneLabels),
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}
}

func tcpPort(name string, port, target int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromInt32(target), Protocol: corev1.ProtocolTCP}
}

func controlPlaneService() *corev1.Service {
	return service(inject.ControlPlaneName, controlPlaneLabels,
		tcpPort("grpc-xds", inject.XDSPort, inject.XDSPort),
		tcpPort("https-webhook", inject.WebhookServicePort, inject.WebhookPort),
		tcpPort("http-api", inject.APIPort, inject.APIPort))
}

// leaderService routes to the leading control plane replica alone (its
// pod labelled inject.LabelLeader by itself): the proxies' telemetry
// reports and the console, which live in the leader's memory.
func leaderService() *corev1.Service {
	sel := map[string]string{inject.LabelLeader: "true"}
	for k, v := range controlPlaneLabels {
		sel[k] = v
	}
	return service(inject.LeaderServiceName, sel, tcpPort("http-api", inject.APIPort, inject.APIPort))
}

// Gateway ports as Istio's chart maps them: Gateway port 80 listens on
// container port 8080, 443 on 8443 (the proxy does not run as root).
var gatewayPorts = []struct {
	name             string
	port, targetPort int32
}{
	{"status-port", inject.HealthPort, inject.HealthPort},
	{"http2", 80, 8080},
	{"https", 443, 8443},
}

func gatewayService() *corev1.Service {
	s := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(GatewayName, gatewayLabels),
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: gatewayLabels},
	}
	for _, p := range gatewayPorts {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{
			Name: p.name, Port: p.port, TargetPort: intstr.FromInt32(p.targetPort), Protocol: corev1.ProtocolTCP,
		})
	}
	return s
}

// restricted is the security context of the mesh's own containers.
func restricted() *corev1.SecurityContext {
	t, f, uid := true, false, int64(inject.ProxyUID)
	return &corev1.SecurityContext{
		RunAsUser: &uid, RunAsGroup: &uid, RunAsNonRoot: &t, Privileged: &f, AllowPrivilegeEscalation: &f,
		ReadOnlyRootFilesystem: &t, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func requests(cpu, mem string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
	}}
}

func httpProbe(path string, port int32, period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(port), Scheme: corev1.URISchemeHTTP}},
		PeriodSeconds: period, TimeoutSeconds: 3, FailureThreshold: 3,
	}
}

func controlPlane(o Options) *appsv1.Deployment {
	replicas := o.Replicas
	env := append(inject.DownwardEnv(), corev1.EnvVar{Name: inject.EnvProxyImage, Value: o.Image})
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(inject.ControlPlaneName, controlPlaneLabels),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: controlPlaneLabels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr(intstr.FromInt32(0)), MaxSurge: ptr(intstr.FromInt32(1)),
			}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: noInject(controlPlaneLabels)},
				Spec: corev1.PodSpec{
					ServiceAccountName: inject.ControlPlaneServiceAccount,
					Containers: []corev1.Container{{
						Name: "discovery", Image: o.Image, ImagePullPolicy: o.ImagePullPolicy,
						Args: ControlPlaneArgs, Env: env,
						Ports: []corev1.ContainerPort{
							{Name: "grpc-xds", ContainerPort: inject.XDSPort, Protocol: corev1.ProtocolTCP},
							{Name: "https-webhook", ContainerPort: inject.WebhookPort, Protocol: corev1.ProtocolTCP},
							{Name: "http-api", ContainerPort: inject.APIPort, Protocol: corev1.ProtocolTCP},
						},
						ReadinessProbe:  httpProbe(ControlPlaneReadyPath, inject.APIPort, 3),
						Resources:       requests("100m", "128Mi"),
						SecurityContext: restricted(),
						VolumeMounts: []corev1.VolumeMount{
							{Name: "state", MountPath: StateDir},
							{Name: inject.TmpVolume, MountPath: inject.TmpDir},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "state", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: inject.TmpVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
					},
					// Two replicas on two nodes where there are two.
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchLabels: controlPlaneLabels},
								TopologyKey:   "kubernetes.io/hostname",
							},
						}},
					}},
				},
			},
		},
	}
}

// gatewayArgs runs `weft proxy gateway` with the sidecar's way of finding
// and trusting the control plane. The gateway is not injected, so its xDS
// address is the istiod Service's ClusterIP from the environment the
// kubelet gives every pod for the Services of its namespace, expanded by
// Kubernetes in the arguments (no DNS needed).
func gatewayArgs() []string {
	host := serviceHostEnv(inject.ControlPlaneName)
	telemetryHost := serviceHostEnv(inject.LeaderServiceName)
	portMap := make([]string, 0, len(gatewayPorts))
	for _, p := range gatewayPorts[1:] {
		portMap = append(portMap, fmt.Sprintf("%d=0.0.0.0:%d", p.port, p.targetPort))
	}
	lbls := make([]string, 0, len(gatewayLabels))
	for _, k := range []string{"app", "istio"} {
		lbls = append(lbls, k+"="+gatewayLabels[k])
	}
	return []string{
		inject.CmdProxy, inject.CmdGateway,
		inject.FlagName + "=$(" + inject.EnvPodName + ")",
		inject.FlagNamespace + "=$(" + inject.EnvPodNamespace + ")",
		inject.FlagServiceAccount + "=$(" + inject.EnvServiceAccount + ")",
		inject.FlagLabels + "=" + strings.Join(lbls, ","),
		inject.FlagGatewayPortMap + "=" + strings.Join(portMap, ","),
		inject.FlagXDS + "=" + host + ":" + strconv.Itoa(inject.XDSPort),
		inject.FlagXDSServerName + "=" + inject.XDSServerName,
		inject.FlagCARoot + "=" + inject.RootCertFile,
		inject.FlagTokenFile + "=" + inject.TokenFile,
		inject.FlagTelemetry + "=http://" + telemetryHost + ":" + strconv.Itoa(inject.APIPort),
	}
}

// serviceHostEnv is the reference to the environment variable Kubernetes
// gives pods for a Service of their namespace: $(ISTIOD_LEADER_SERVICE_HOST).
func serviceHostEnv(service string) string {
	return "$(" + strings.ToUpper(strings.ReplaceAll(service, "-", "_")) + "_SERVICE_HOST)"
}

func gateway(o Options) *appsv1.Deployment {
	one := int32(1)
	c := corev1.Container{
		Name: "istio-proxy", Image: o.Image, ImagePullPolicy: o.ImagePullPolicy,
		Args: gatewayArgs(), Env: inject.DownwardEnv(),
		ReadinessProbe:  httpProbe(inject.HealthPath, inject.HealthPort, 2),
		Resources:       requests(inject.ProxyDefaultCPU, inject.ProxyDefaultMemory),
		SecurityContext: restricted(),
		VolumeMounts:    inject.VolumeMounts(),
	}
	for _, p := range gatewayPorts {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: p.name, ContainerPort: p.targetPort, Protocol: corev1.ProtocolTCP})
	}
	c.Ports = append(c.Ports, corev1.ContainerPort{Name: inject.StatsPortName, ContainerPort: inject.StatsPort, Protocol: corev1.ProtocolTCP})
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(GatewayName, gatewayLabels),
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: gatewayLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: noInject(gatewayLabels)},
				Spec: corev1.PodSpec{
					ServiceAccountName: GatewayServiceAccount,
					Containers:         []corev1.Container{c},
					Volumes:            inject.Volumes(),
				},
			},
		},
	}
}

func rbac() []runtime.Object {
	sa := func(name string) *corev1.ServiceAccount {
		return &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta(name, nil)}
	}
	name := inject.ControlPlaneServiceAccount
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: inject.SystemNamespace}}
	cr := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels(nil)},
		Rules:      ClusterRules(),
	}
	crb := &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels(nil)},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects:   subject,
	}
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta(name, nil),
		Rules: []rbacv1.PolicyRule{
			// The leader labels its own pod for Service istiod-leader.
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "patch"}},
			// The CA (istio-ca-secret, or the plug-in cacerts) and leader election.
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		},
	}
	rb := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta(name, nil),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   subject,
	}
	return []runtime.Object{sa(name), sa(GatewayServiceAccount), cr, crb, role, rb}
}

func ptr[T any](v T) *T { return &v }
