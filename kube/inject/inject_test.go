package inject

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var testSettings = Settings{
	Image: "docker.io/library/weft:test", ImagePullPolicy: corev1.PullIfNotPresent,
	XDSAddress: "10.96.0.7:15012", TelemetryURL: "http://10.96.0.7:15080",
}

func testPod() *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "reviews-v1-6d6b478456-", Namespace: "bookinfo",
			Labels: map[string]string{"app": "reviews", "version": "v1", "pod-template-hash": "6d6b478456"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "reviews-v1-6d6b478456", Controller: &yes,
			}},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: "bookinfo-reviews",
			InitContainers:     []corev1.Container{{Name: "migrate", Image: "app:1"}},
			Containers: []corev1.Container{{
				Name: "reviews", Image: "app:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9080}},
				LivenessProbe: &corev1.Probe{
					ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
						Path: "/health", Port: intstr.FromString("http"),
						HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}},
					}},
					TimeoutSeconds: 2, PeriodSeconds: 7,
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9080)}}},
				StartupProbe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}},
			}, {
				Name: "grpc", Image: "app:1",
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 7070}}},
			}},
		},
	}
}

func TestDecide(t *testing.T) {
	enabled := map[string]string{LabelInjection: "enabled"}
	disabled := map[string]string{LabelInjection: "disabled"}
	withAnn := func(k, v string) *corev1.Pod {
		p := testPod()
		p.Annotations = map[string]string{k: v}
		return p
	}
	withLabel := func(k, v string) *corev1.Pod {
		p := testPod()
		p.Labels[k] = v
		return p
	}
	hostNet := testPod()
	hostNet.Spec.HostNetwork = true
	done, err := Pod(testPod(), testSettings, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		ns     Namespace
		want   bool
		reason string
	}{
		{"labelled namespace", testPod(), Namespace{Name: "a", Labels: enabled}, true, "istio-injection=enabled"},
		{"labelled namespace, not a member", testPod(), Namespace{Name: "a", Labels: enabled, Member: false}, true, ""},
		{"annotation false wins over the namespace", withAnn(LabelOrAnnotationInject, "false"), Namespace{Name: "a", Labels: enabled}, false, "is false"},
		{"label false wins over the namespace", withLabel(LabelOrAnnotationInject, "false"), Namespace{Name: "a", Labels: enabled}, false, "is false"},
		{"label wins over annotation", func() *corev1.Pod {
			p := withAnn(LabelOrAnnotationInject, "true")
			p.Labels[LabelOrAnnotationInject] = "false"
			return p
		}(), Namespace{Name: "a", Labels: enabled, Member: true}, false, "is false"},
		{"unlabelled namespace, no request", testPod(), Namespace{Name: "a", Member: true}, false, "not labelled"},
		{"Maistra: annotation true in a member namespace", withAnn(LabelOrAnnotationInject, "true"), Namespace{Name: "a", Member: true}, true, "asks for a sidecar"},
		{"Istio: label true in a member namespace", withLabel(LabelOrAnnotationInject, "true"), Namespace{Name: "a", Member: true}, true, "asks for a sidecar"},
		{"annotation true outside the member roll", withAnn(LabelOrAnnotationInject, "true"), Namespace{Name: "a", NotMemberReason: "namespace a is not in ServiceMeshMemberRoll istio-system/default"}, false, "not in ServiceMeshMemberRoll"},
		{"annotation true, namespace disabled", withAnn(LabelOrAnnotationInject, "true"), Namespace{Name: "a", Labels: disabled, Member: true}, false, "disabled"},
		{"namespace disabled", testPod(), Namespace{Name: "a", Labels: disabled, Member: true}, false, "disabled"},
		{"host network", hostNet, Namespace{Name: "a", Labels: enabled}, false, "host network"},
		{"kube-system", withAnn(LabelOrAnnotationInject, "true"), Namespace{Name: "kube-system", Labels: enabled, Member: true}, false, "system namespace"},
		{"already injected", done, Namespace{Name: "a", Labels: enabled}, false, "already injected"},
		{"nonsense value", withAnn(LabelOrAnnotationInject, "maybe"), Namespace{Name: "a", Labels: enabled}, false, `"maybe" is neither`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := Decide(tc.pod, tc.ns)
			if got != tc.want || !strings.Contains(why, tc.reason) {
				t.Errorf("Decide = %v, %q; want %v with %q", got, why, tc.want, tc.reason)
			}
		})
	}
}

func container(t *testing.T, cs []corev1.Container, name string) *corev1.Container {
	t.Helper()
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	t.Fatalf("no container %s in %v", name, cs)
	return nil
}

func env(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestPodInjects(t *testing.T) {
	in := testPod()
	orig := in.DeepCopy()
	out, err := Pod(in, testSettings, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, orig) {
		t.Error("Pod changed its input")
	}
	// weft-init and the native sidecar come before the pod's own init
	// containers, which must already have the network through the proxy.
	var names []string
	for _, c := range out.Spec.InitContainers {
		names = append(names, c.Name)
	}
	if want := []string{InitContainerName, ProxyContainerName, "migrate"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("init containers %v, want %v", names, want)
	}
	initC := &out.Spec.InitContainers[0]
	sc := initC.SecurityContext
	if *sc.RunAsUser != 0 || *sc.Privileged || !reflect.DeepEqual(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("weft-init security context %+v", sc)
	}
	wantArgs := []string{"iptables", "--envoy-port=15001", "--inbound-capture-port=15006", "--proxy-uid=1337",
		"--outbound-ip-ranges-include=*", "--inbound-ports=*", "--local-exclude-ports=15020,15021,15090"}
	if !reflect.DeepEqual(initC.Args, wantArgs) || initC.Image != testSettings.Image {
		t.Errorf("weft-init %s %v, want %v", initC.Image, initC.Args, wantArgs)
	}

	p := &out.Spec.InitContainers[1]
	if p.RestartPolicy == nil || *p.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("weft-proxy is not a native sidecar (restartPolicy Always)")
	}
	if *p.SecurityContext.RunAsUser != 1337 || *p.SecurityContext.RunAsGroup != 1337 || !*p.SecurityContext.RunAsNonRoot {
		t.Errorf("weft-proxy security context %+v", p.SecurityContext)
	}
	if g := p.StartupProbe.HTTPGet; g == nil || g.Path != "/healthz/ready" || g.Port.IntVal != 15021 {
		t.Errorf("startup probe %+v", p.StartupProbe)
	}
	wantProxyArgs := []string{"proxy", "sidecar", "--interception=REDIRECT", "--xds=10.96.0.7:15012",
		"--xds-server-name=istiod.istio-system.svc", "--ca-root=/var/run/secrets/istio/root-cert.pem",
		"--join-token-file=/var/run/secrets/tokens/weft-token", "--pod-labels=/etc/weft/pod/labels",
		"--telemetry=http://10.96.0.7:15080"}
	if !reflect.DeepEqual(p.Args, wantProxyArgs) {
		t.Errorf("weft-proxy args\n%v\nwant\n%v", p.Args, wantProxyArgs)
	}
	if v, _ := env(p, EnvWorkloadName); v != "reviews-v1" {
		t.Errorf("workload name %q, want reviews-v1", v)
	}
	fields := map[string]string{}
	for _, e := range p.Env {
		if e.ValueFrom != nil {
			fields[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if want := map[string]string{EnvPodName: "metadata.name", EnvPodNamespace: "metadata.namespace",
		EnvInstanceIP: "status.podIP", EnvServiceAccount: "spec.serviceAccountName"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("downward env %v, want %v", fields, want)
	}
	if q := p.Resources.Requests[corev1.ResourceCPU]; q.String() != "100m" {
		t.Errorf("cpu request %s", q.String())
	}

	// The volumes: token audience weft, the root ConfigMap, the pod info.
	vols := map[string]corev1.Volume{}
	for _, v := range out.Spec.Volumes {
		vols[v.Name] = v
	}
	tok := vols[TokenVolume].Projected.Sources[0].ServiceAccountToken
	if tok.Audience != "weft" || tok.Path != "weft-token" {
		t.Errorf("token projection %+v", tok)
	}
	if cm := vols[RootCertVolume].ConfigMap; cm == nil || cm.Name != "istio-ca-root-cert" {
		t.Errorf("root cert volume %+v", vols[RootCertVolume])
	}
	mounts := map[string]string{}
	for _, m := range p.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts[TokenVolume]+"/weft-token" != TokenFile || mounts[RootCertVolume]+"/root-cert.pem" != RootCertFile || mounts[PodInfoVolume]+"/labels" != LabelsFile {
		t.Errorf("mounts %v", mounts)
	}

	// Labels and annotations.
	for k, v := range map[string]string{LabelTLSMode: "istio", LabelCanonicalName: "reviews", LabelCanonicalRevision: "v1"} {
		if out.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, out.Labels[k], v)
		}
	}
	var st status
	if err := json.Unmarshal([]byte(out.Annotations[AnnotationStatus]), &st); err != nil {
		t.Fatalf("status annotation: %v", err)
	}
	if !reflect.DeepEqual(st.InitContainers, []string{InitContainerName, ProxyContainerName}) || len(st.Volumes) != 4 {
		t.Errorf("status %+v", st)
	}
	if out.Annotations[AnnotationDefaultCtr] != "reviews" {
		t.Errorf("default container %q", out.Annotations[AnnotationDefaultCtr])
	}

	// Idempotent: injecting the injected pod changes nothing.
	again, err := Pod(out, testSettings, "")
	if err != nil || !reflect.DeepEqual(again, out) {
		t.Errorf("second injection changed the pod (%v)", err)
	}
}

func TestProbesRewritten(t *testing.T) {
	out, err := Pod(testPod(), testSettings, "")
	if err != nil {
		t.Fatal(err)
	}
	app := container(t, out.Spec.Containers, "reviews")
	live := app.LivenessProbe
	if live.HTTPGet == nil || live.HTTPGet.Path != "/app-health/reviews/livez" || live.HTTPGet.Port.IntVal != 15020 ||
		live.TimeoutSeconds != 2 || live.PeriodSeconds != 7 {
		t.Errorf("liveness probe %+v", live)
	}
	if r := app.ReadinessProbe; r.HTTPGet == nil || r.HTTPGet.Path != "/app-health/reviews/readyz" || r.TCPSocket != nil {
		t.Errorf("readiness probe %+v", r)
	}
	if s := app.StartupProbe; s.Exec == nil || s.HTTPGet != nil {
		t.Errorf("exec startup probe was rewritten: %+v", s)
	}
	if g := container(t, out.Spec.Containers, "grpc").LivenessProbe; g.GRPC == nil || g.HTTPGet != nil {
		t.Errorf("gRPC probe was rewritten (the proxy does not perform them): %+v", g)
	}
	probers, _ := env(container(t, out.Spec.InitContainers, ProxyContainerName), EnvAppProbers)
	want := `{"/app-health/reviews/livez":{"httpGet":{"path":"/health","port":9080,"scheme":"HTTP","httpHeaders":[{"name":"X-Probe","value":"1"}]},"timeoutSeconds":2},` +
		`"/app-health/reviews/readyz":{"tcpSocket":{"port":9080}}}`
	if probers != want {
		t.Errorf("%s\n%s\nwant\n%s", EnvAppProbers, probers, want)
	}

	p := testPod()
	p.Annotations = map[string]string{AnnotationRewriteProbes: "false"}
	out, err = Pod(p, testSettings, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Spec.Containers[0].LivenessProbe, p.Spec.Containers[0].LivenessProbe) {
		t.Error("probes rewritten despite rewriteAppHTTPProbers: false")
	}
	if _, ok := env(container(t, out.Spec.InitContainers, ProxyContainerName), EnvAppProbers); ok {
		t.Errorf("%s set with rewriting off", EnvAppProbers)
	}
}

func TestAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ann   map[string]string
		check func(t *testing.T, initC, proxy *corev1.Container, pod *corev1.Pod)
		err   string
	}{
		{name: "traffic annotations", ann: map[string]string{
			AnnotationIncludeOutIPs:  "10.96.0.0/12, 10.244.0.0/16",
			AnnotationExcludeOutIPs:  "10.96.0.1/32",
			AnnotationIncludeInPorts: "9080,9443",
			AnnotationExcludeInPorts: "8081",
			AnnotationIncludeOutPort: "5432",
			AnnotationExcludeOutPort: "3306,25",
		}, check: func(t *testing.T, initC, _ *corev1.Container, _ *corev1.Pod) {
			want := []string{"iptables", "--envoy-port=15001", "--inbound-capture-port=15006", "--proxy-uid=1337",
				"--outbound-ip-ranges-include=10.96.0.0/12,10.244.0.0/16", "--outbound-ip-ranges-exclude=10.96.0.1/32",
				"--inbound-ports=9080,9443", "--local-exclude-ports=8081,15020,15021,15090",
				"--outbound-ports=5432", "--local-outbound-ports-exclude=25,3306"}
			if !reflect.DeepEqual(initC.Args, want) {
				t.Errorf("args\n%v\nwant\n%v", initC.Args, want)
			}
		}},
		{name: "capture nothing outbound", ann: map[string]string{AnnotationIncludeOutIPs: ""},
			check: func(t *testing.T, initC, _ *corev1.Container, _ *corev1.Pod) {
				if !contains(initC.Args, "--outbound-ip-ranges-include=") {
					t.Errorf("args %v", initC.Args)
				}
			}},
		{name: "kubevirt interfaces", ann: map[string]string{AnnotationKubevirtIfaces: "k6t-eth0"},
			err: "annotation traffic.sidecar.istio.io/kubevirtInterfaces: not supported by weft iptables"},
		{name: "bad CIDR", ann: map[string]string{AnnotationExcludeOutIPs: "10.0.0/8"},
			err: `annotation traffic.sidecar.istio.io/excludeOutboundIPRanges: "10.0.0/8" is not a CIDR`},
		{name: "bad port", ann: map[string]string{AnnotationExcludeInPorts: "80,http"},
			err: `annotation traffic.sidecar.istio.io/excludeInboundPorts: "http" is not a port`},
		{name: "resources", ann: map[string]string{AnnotationProxyCPU: "250m", AnnotationProxyMemory: "64Mi", AnnotationProxyCPULimit: "1", AnnotationProxyMemLimit: "256Mi"},
			check: func(t *testing.T, _, proxy *corev1.Container, _ *corev1.Pod) {
				r := proxy.Resources
				for _, c := range []struct {
					q    resource.Quantity
					want string
				}{
					{r.Requests[corev1.ResourceCPU], "250m"}, {r.Requests[corev1.ResourceMemory], "64Mi"},
					{r.Limits[corev1.ResourceCPU], "1"}, {r.Limits[corev1.ResourceMemory], "256Mi"},
				} {
					if c.q.String() != c.want {
						t.Errorf("resource %s, want %s", c.q.String(), c.want)
					}
				}
			}},
		{name: "bad quantity", ann: map[string]string{AnnotationProxyMemory: "lots"}, err: `annotation sidecar.istio.io/proxyMemory: "lots" is not a quantity`},
		{name: "proxy config", ann: map[string]string{AnnotationProxyConfig: "concurrency: 2\nproxyMetadata:\n  ISTIO_META_DNS_CAPTURE: \"true\"\n  B: b\ntracing:\n  sampling: 12.5\nholdApplicationUntilProxyStarts: true\n"},
			check: func(t *testing.T, _, proxy *corev1.Container, _ *corev1.Pod) {
				if v, _ := env(proxy, "GOMAXPROCS"); v != "2" {
					t.Errorf("GOMAXPROCS %q", v)
				}
				if v, _ := env(proxy, "ISTIO_META_DNS_CAPTURE"); v != "true" {
					t.Errorf("proxyMetadata not in env: %v", proxy.Env)
				}
				if !contains(proxy.Args, "--trace-sampling=12.5") {
					t.Errorf("args %v", proxy.Args)
				}
			}},
		{name: "proxy config typo", ann: map[string]string{AnnotationProxyConfig: "concurency: 2"}, err: "annotation proxy.istio.io/config: not a ProxyConfig"},
		{name: "log level", ann: map[string]string{AnnotationLogLevel: "warning"},
			check: func(t *testing.T, _, proxy *corev1.Container, _ *corev1.Pod) {
				if !contains(proxy.Args, "--log-level=warn") {
					t.Errorf("args %v", proxy.Args)
				}
			}},
		{name: "bad log level", ann: map[string]string{AnnotationLogLevel: "loud"}, err: "annotation sidecar.istio.io/logLevel"},
		{name: "TPROXY refused", ann: map[string]string{AnnotationInterception: "TPROXY"}, err: `annotation sidecar.istio.io/interceptionMode: "TPROXY" is not supported`},
		{name: "proxy image", ann: map[string]string{AnnotationProxyImage: "registry.local/weft:2"},
			check: func(t *testing.T, initC, proxy *corev1.Container, _ *corev1.Pod) {
				if initC.Image != "registry.local/weft:2" || proxy.Image != "registry.local/weft:2" {
					t.Errorf("images %s, %s", initC.Image, proxy.Image)
				}
			}},
		{name: "readiness timing", ann: map[string]string{AnnotationReadinessPer: "5", AnnotationReadinessFail: "9", AnnotationReadinessDelay: "2"},
			check: func(t *testing.T, _, proxy *corev1.Container, _ *corev1.Pod) {
				r := proxy.ReadinessProbe
				if r.PeriodSeconds != 5 || r.FailureThreshold != 9 || r.InitialDelaySeconds != 2 {
					t.Errorf("readiness %+v", r)
				}
			}},
		{name: "every problem at once", ann: map[string]string{AnnotationProxyCPU: "x", AnnotationReadinessPer: "0"},
			err: "annotation sidecar.istio.io/proxyCPU: \"x\" is not a quantity (e.g. 100m, 128Mi)\nannotation readiness.status.sidecar.istio.io/periodSeconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPod()
			p.Annotations = tc.ann
			out, err := Pod(p, testSettings, "")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, &out.Spec.InitContainers[0], &out.Spec.InitContainers[1], out)
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestWorkloadName(t *testing.T) {
	yes := true
	for _, tc := range []struct {
		pod  corev1.Pod
		want string
	}{
		{*testPod(), "reviews-v1"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", OwnerReferences: []metav1.OwnerReference{{Kind: "StatefulSet", Name: "db", Controller: &yes}}}}, "db"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "virt-launcher-vm-x", OwnerReferences: []metav1.OwnerReference{{Kind: "VirtualMachineInstance", Name: "vm", Controller: &yes}}}}, "vm"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "job-"}}, "job"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "solo"}}, "solo"},
	} {
		if got := WorkloadName(&tc.pod); got != tc.want {
			t.Errorf("WorkloadName(%s) = %q, want %q", tc.pod.Name, got, tc.want)
		}
	}
}

func TestSettingsChecked(t *testing.T) {
	if _, err := Pod(testPod(), Settings{XDSAddress: "10.0.0.1:15012"}, ""); err == nil {
		t.Error("no image accepted")
	}
	if _, err := Pod(testPod(), Settings{Image: "weft", XDSAddress: "10.0.0.1"}, ""); err == nil {
		t.Error("xDS address without port accepted")
	}
}
