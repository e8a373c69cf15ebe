package manifest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/kube/inject"
)

const img = "docker.io/library/weft:test"

func objects(t *testing.T) map[string]*unstructured.Unstructured {
	t.Helper()
	objs, err := Objects(Options{Image: img})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		k := u.GetKind() + "/" + u.GetName()
		if _, dup := m[k]; dup {
			t.Errorf("%s twice", k)
		}
		m[k] = u
	}
	return m
}

func typed(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if u == nil {
		t.Fatalf("missing object for %T", into)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}

func TestObjects(t *testing.T) {
	if _, err := Objects(Options{}); err == nil {
		t.Error("no image accepted")
	}
	objs, err := Objects(Options{Image: img})
	if err != nil {
		t.Fatal(err)
	}
	// CRDs first, webhook configurations last.
	if objs[0].GetKind() != "CustomResourceDefinition" || objs[len(objs)-1].GetKind() != "ValidatingWebhookConfiguration" {
		t.Errorf("order: first %s, last %s", objs[0].GetKind(), objs[len(objs)-1].GetKind())
	}
	m := objects(t)
	for _, k := range config.Kinds {
		if m["CustomResourceDefinition/"+k.Plural+"."+k.Group] == nil {
			t.Errorf("no CRD for %s", k.Kind)
		}
	}
	for _, name := range []string{"Namespace/istio-system", "ServiceAccount/weft-controlplane", "ServiceAccount/istio-ingressgateway-service-account",
		"ClusterRole/weft-controlplane", "ClusterRoleBinding/weft-controlplane", "Role/weft-controlplane", "RoleBinding/weft-controlplane",
		"Service/istiod", "Service/istio-ingressgateway", "Deployment/istiod", "Deployment/istio-ingressgateway",
		"MutatingWebhookConfiguration/istio-sidecar-injector", "ValidatingWebhookConfiguration/istio-validator-istio-system"} {
		u := m[name]
		if u == nil {
			t.Errorf("no %s", name)
			continue
		}
		if u.GetLabels()["app.kubernetes.io/managed-by"] != "weft" {
			t.Errorf("%s labels %v", name, u.GetLabels())
		}
		if _, ok := u.Object["status"]; ok {
			t.Errorf("%s has a status", name)
		}
	}
}

func TestControlPlane(t *testing.T) {
	m := objects(t)
	var d appsv1.Deployment
	typed(t, m["Deployment/istiod"], &d)
	if d.Namespace != "istio-system" || *d.Spec.Replicas != 2 {
		t.Errorf("istiod %s replicas %d", d.Namespace, *d.Spec.Replicas)
	}
	pod := d.Spec.Template
	c := pod.Spec.Containers[0]
	if c.Image != img || !reflect.DeepEqual(c.Args, []string{"controlplane", "--kubernetes", "--api-addr=:15080", "--xds-addr=:15012", "--state-dir=/var/lib/weft"}) {
		t.Errorf("istiod container %s %v", c.Image, c.Args)
	}
	ports := map[int32]string{}
	for _, p := range c.Ports {
		ports[p.ContainerPort] = p.Name
	}
	if !reflect.DeepEqual(ports, map[int32]string{15012: "grpc-xds", 15017: "https-webhook", 15080: "http-api"}) {
		t.Errorf("istiod ports %v", ports)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Port.IntVal != 15080 {
		t.Errorf("istiod readiness %+v", c.ReadinessProbe)
	}
	if pod.Spec.ServiceAccountName != inject.ControlPlaneServiceAccount || pod.Labels[inject.LabelOrAnnotationInject] != "false" {
		t.Errorf("istiod pod %+v", pod.ObjectMeta)
	}
	var proxyImage string
	for _, e := range c.Env {
		if e.Name == inject.EnvProxyImage {
			proxyImage = e.Value
		}
	}
	if proxyImage != img {
		t.Errorf("%s=%q", inject.EnvProxyImage, proxyImage)
	}

	var svc corev1.Service
	typed(t, m["Service/istiod"], &svc)
	sp := map[int32]int32{}
	for _, p := range svc.Spec.Ports {
		sp[p.Port] = p.TargetPort.IntVal
	}
	if !reflect.DeepEqual(sp, map[int32]int32{15012: 15012, 443: 15017, 15080: 15080}) || !reflect.DeepEqual(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
		t.Errorf("Service istiod ports %v selector %v", sp, svc.Spec.Selector)
	}

	var cr rbacv1.ClusterRole
	typed(t, m["ClusterRole/weft-controlplane"], &cr)
	can := func(group, resource, verb string) bool {
		for _, r := range cr.Rules {
			if contains(r.APIGroups, group) && contains(r.Resources, resource) && contains(r.Verbs, verb) {
				return true
			}
		}
		return false
	}
	for _, k := range config.Kinds {
		if !can(k.Group, k.Plural, "watch") || !can(k.Group, k.Plural, "create") || !can(k.Group, k.Plural, "delete") || !can(k.Group, k.Plural+"/status", "update") {
			t.Errorf("ClusterRole cannot watch and write %s and its status", k.Plural)
		}
	}
	for _, want := range [][3]string{{"", "services", "watch"}, {"discovery.k8s.io", "endpointslices", "list"}, {"", "configmaps", "create"},
		{"authentication.k8s.io", "tokenreviews", "create"}, {"admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"},
		{"apps", "deployments", "update"}, {"apps", "deployments", "create"}, {"", "services", "create"}, {"", "services", "update"}} {
		if !can(want[0], want[1], want[2]) {
			t.Errorf("ClusterRole cannot %s %s", want[2], want[1])
		}
	}
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func TestGateway(t *testing.T) {
	m := objects(t)
	var d appsv1.Deployment
	typed(t, m["Deployment/istio-ingressgateway"], &d)
	pod := d.Spec.Template
	if pod.Labels["istio"] != "ingressgateway" || pod.Labels["app"] != "istio-ingressgateway" || pod.Spec.ServiceAccountName != "istio-ingressgateway-service-account" {
		t.Errorf("gateway pod %+v %s", pod.Labels, pod.Spec.ServiceAccountName)
	}
	args := strings.Join(pod.Spec.Containers[0].Args, " ")
	for _, want := range []string{"proxy gateway ", "--port-map=80=0.0.0.0:8080,443=0.0.0.0:8443", "--labels=app=istio-ingressgateway,istio=ingressgateway",
		"--xds=$(ISTIOD_SERVICE_HOST):15012", "--xds-server-name=istiod.istio-system.svc", "--name=$(POD_NAME)",
		"--telemetry=http://$(ISTIOD_LEADER_SERVICE_HOST):15080"} {
		if !strings.Contains(args, want) {
			t.Errorf("gateway args %q lack %q", args, want)
		}
	}
	var svc corev1.Service
	typed(t, m["Service/istio-ingressgateway"], &svc)
	sp := map[int32]int32{}
	for _, p := range svc.Spec.Ports {
		sp[p.Port] = p.TargetPort.IntVal
	}
	if sp[80] != 8080 || sp[443] != 8443 || svc.Spec.Selector["istio"] != "ingressgateway" {
		t.Errorf("gateway Service %v %v", sp, svc.Spec.Selector)
	}
}

// TestLeaderService: the console and the proxies' telemetry reach the
// leading replica alone, which labels its own pod (its Role may).
func TestLeaderService(t *testing.T) {
	m := objects(t)
	var svc corev1.Service
	typed(t, m["Service/istiod-leader"], &svc)
	if svc.Spec.Selector["app"] != "istiod" || svc.Spec.Selector["weft.io/leader"] != "true" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 15080 {
		t.Errorf("istiod-leader: selector %v ports %v", svc.Spec.Selector, svc.Spec.Ports)
	}
	var role rbacv1.Role
	typed(t, m["Role/weft-controlplane"], &role)
	ok := false
	for _, r := range role.Rules {
		ok = ok || contains(r.Resources, "pods") && contains(r.Verbs, "patch")
	}
	if !ok {
		t.Errorf("the control plane may not label its pod: %v", role.Rules)
	}
}

func TestWebhooks(t *testing.T) {
	m := objects(t)
	var mw admissionregv1.MutatingWebhookConfiguration
	typed(t, m["MutatingWebhookConfiguration/istio-sidecar-injector"], &mw)
	if len(mw.Webhooks) != 3 {
		t.Fatalf("%d injection webhooks", len(mw.Webhooks))
	}
	ns := mw.Webhooks[0]
	if ns.NamespaceSelector.MatchLabels["istio-injection"] != "enabled" || ns.ClientConfig.Service.Name != "istiod" ||
		*ns.ClientConfig.Service.Port != 443 || *ns.ClientConfig.Service.Path != "/inject" || *ns.FailurePolicy != admissionregv1.Fail {
		t.Errorf("namespace webhook %+v", ns)
	}
	obj := mw.Webhooks[1]
	if obj.ObjectSelector.MatchLabels["sidecar.istio.io/inject"] != "true" || obj.NamespaceSelector.MatchExpressions[0].Operator != metav1.LabelSelectorOpDoesNotExist {
		t.Errorf("object webhook %+v", obj)
	}
	if member := mw.Webhooks[2]; *member.FailurePolicy != admissionregv1.Ignore {
		t.Errorf("the member webhook (every pod of unlabelled namespaces) must fail open: %+v", member)
	}
	for _, w := range mw.Webhooks[1:] {
		if e := w.NamespaceSelector.MatchExpressions; !contains(e[len(e)-1].Values, "kube-system") {
			t.Errorf("%s reaches kube-system", w.Name)
		}
	}

	var vw admissionregv1.ValidatingWebhookConfiguration
	typed(t, m["ValidatingWebhookConfiguration/istio-validator-istio-system"], &vw)
	covered := map[string]bool{}
	for _, r := range vw.Webhooks[0].Rules {
		for _, res := range r.Resources {
			covered[r.APIGroups[0]+"/"+res] = true
		}
		if !reflect.DeepEqual(r.Operations, []admissionregv1.OperationType{"CREATE", "UPDATE"}) {
			t.Errorf("rule operations %v", r.Operations)
		}
	}
	for _, k := range config.Kinds {
		if !covered[k.Group+"/"+k.Plural] {
			t.Errorf("%s is not validated", k.Plural)
		}
	}
	if len(vw.Webhooks) != 2 {
		t.Fatalf("%d validating webhooks, want validation and the canary guard's deletes", len(vw.Webhooks))
	}
	if g := vw.Webhooks[1]; *g.FailurePolicy != admissionregv1.Ignore || len(g.Rules) != 1 ||
		!reflect.DeepEqual(g.Rules[0].Operations, []admissionregv1.OperationType{"DELETE"}) || !contains(g.Rules[0].Resources, "virtualservices") {
		t.Errorf("the guard's delete webhook %+v", g)
	}

	// A test's target: a URL, one namespace, its own names.
	url := Validator(WebhookTarget{URL: "https://10.250.0.1:4443", CABundle: []byte("pem"), Namespaces: []string{"t1"}, NamePrefix: "t-"})
	w := url.Webhooks[0]
	if url.Name != "t-istio-validator-istio-system" || *w.ClientConfig.URL != "https://10.250.0.1:4443/validate" || w.ClientConfig.Service != nil ||
		string(w.ClientConfig.CABundle) != "pem" || w.NamespaceSelector.MatchExpressions[0].Values[0] != "t1" {
		t.Errorf("URL target %+v", url)
	}
}

// The printed stream decodes back into the same objects.
func TestWriteYAML(t *testing.T) {
	objs, err := Objects(Options{Image: img})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteYAML(&buf, objs); err != nil {
		t.Fatal(err)
	}
	dec := k8syaml.NewYAMLOrJSONDecoder(&buf, 4096)
	for i := 0; ; i++ {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if i != len(objs) {
				t.Fatalf("decoded %d of %d objects: %v", i, len(objs), err)
			}
			break
		}
		if i >= len(objs) {
			t.Fatalf("more than %d objects", len(objs))
		}
		// Compared as JSON: YAML reads every number as int64.
		got, _ := json.Marshal(u.Object)
		want, _ := json.Marshal(objs[i].Object)
		if !bytes.Equal(got, want) {
			t.Fatalf("object %d differs after YAML:\n%s\n%s", i, got, want)
		}
	}
}
