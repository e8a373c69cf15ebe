package kube_test

// These tests run the store against the real cluster of
// scripts/k8s/cluster.sh (WEFT_KUBECONFIG); they skip without one, except
// in CI. Each works in namespaces of its own, which the store is limited
// to (NamespaceSelector), so tests running beside them do not interfere.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	networking "istio.io/api/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/kube/kubeclient"
	"github.com/weft-mesh/weft/kube/kubetest"
	"github.com/weft-mesh/weft/store"
	"github.com/weft-mesh/weft/store/kube"
)

func ptr[T any](v T) *T { return &v }

// openStore starts a store over the cluster limited to namespace ns.
func openStore(t *testing.T, c *kubeclient.Clients, ns string) *kube.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := kube.New(ctx, kube.Options{Kube: c.Kube, Dynamic: c.Dynamic,
		NamespaceSelector: labels.SelectorFromSet(labels.Set{corev1.LabelMetadataName: ns})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fakeNode registers a Node no kubelet runs, with topology labels; it is
// unschedulable and tainted so no other test's pod lands on it.
func fakeNode(t *testing.T, c *kubeclient.Clients) string {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := "kubesrc-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	_, err := c.Kube.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			corev1.LabelTopologyRegion: "eu-west", corev1.LabelTopologyZone: "eu-west-1a"}},
		Spec: corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{{Key: "weft.io/kubesrc-test", Effect: corev1.TaintEffectNoSchedule}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Kube.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

// ownerConfigMap is an owner no controller acts on (the garbage collector
// only needs it to exist), standing in for a workload controller.
func ownerConfigMap(t *testing.T, c *kubeclient.Clients, ns, name string) metav1.OwnerReference {
	t.Helper()
	cm, err := c.Kube.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: name, UID: cm.UID, Controller: ptr(true)}
}

func get(t *testing.T, s *kube.Store, ns, name string) *networking.ServiceEntry {
	t.Helper()
	o, err := s.Get(context.Background(), config.Key{Kind: config.KindServiceEntry, Namespace: ns, Name: name})
	if err != nil {
		return nil
	}
	return o.Spec.(*networking.ServiceEntry)
}

func endpointsOf(se *networking.ServiceEntry) map[string]*networking.WorkloadEntry {
	out := map[string]*networking.WorkloadEntry{}
	for _, e := range se.GetEndpoints() {
		out[e.Address] = e
	}
	return out
}

// TestClusterServices: a Service with hand-made EndpointSlices and pods
// that never run (their node has no kubelet) becomes a ServiceEntry with
// the pods' labels, workload, service account, locality and resolved
// ports; endpoints leave as the slices change and the entry leaves with
// the Service.
func TestClusterServices(t *testing.T) {
	c := kubetest.Clients(t)
	ns := kubetest.Namespace(t, c, "kubesrc-svc", nil)
	node := fakeNode(t, c)
	s := openStore(t, c, ns)
	ctx := context.Background()
	core := c.Kube.CoreV1()

	mkPod := func(name, version string, owner metav1.OwnerReference) {
		_, err := core.Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "reviews", "version": version},
				OwnerReferences: []metav1.OwnerReference{owner}},
			Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "default",
				Containers: []corev1.Container{{Name: "app", Image: "docker.io/local/pause:1", ImagePullPolicy: corev1.PullNever}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	mkPod("reviews-v1-0", "v1", ownerConfigMap(t, c, ns, "reviews-v1"))
	mkPod("reviews-v2-0", "v2", ownerConfigMap(t, c, ns, "reviews-v2"))

	svc, err := core.Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "http", Port: 9080, TargetPort: intstr.FromString("web")},
			{Name: "tcp-db", Port: 5432, TargetPort: intstr.FromInt32(5432)},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep := func(ip, pod string, ready bool) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready)}, NodeName: ptr(node)}
		if pod != "" {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod}
		}
		return e
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-manual", Labels: map[string]string{
			discoveryv1.LabelServiceName: "reviews", discoveryv1.LabelManagedBy: "kubesrc-test"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080))}, {Name: ptr("tcp-db"), Port: ptr(int32(5432))}},
		Endpoints: []discoveryv1.Endpoint{
			ep("10.250.99.1", "reviews-v1-0", true), ep("10.250.99.2", "reviews-v2-0", true), ep("10.250.99.3", "", false),
		},
	}
	slices := c.Kube.DiscoveryV1().EndpointSlices(ns)
	if sl, err = slices.Create(ctx, sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	took := kubetest.Poll(t, 30*time.Second, "the Service's ServiceEntry with both ready endpoints", func() bool {
		se := get(t, s, ns, "reviews")
		eps := endpointsOf(se)
		return len(eps) == 2 && eps["10.250.99.2"].GetLabels()["version"] == "v2"
	})
	t.Logf("ServiceEntry complete %v after the EndpointSlice was created", took)
	se := get(t, s, ns, "reviews")
	if se.Hosts[0] != "reviews."+ns+".svc.cluster.local" || len(se.Addresses) != 1 || se.Addresses[0] != svc.Spec.ClusterIP {
		t.Errorf("hosts %v addresses %v, want the FQDN and clusterIP %s", se.Hosts, se.Addresses, svc.Spec.ClusterIP)
	}
	if len(se.Ports) != 2 || se.Ports[0].Protocol != "HTTP" || se.Ports[1].Protocol != "TCP" || se.Ports[1].TargetPort != 5432 {
		t.Errorf("ports %v", se.Ports)
	}
	v1 := endpointsOf(se)["10.250.99.1"]
	if v1.Labels["version"] != "v1" || v1.Labels[config.LabelWorkload] != "reviews-v1" || v1.ServiceAccount != "default" ||
		v1.Locality != "eu-west/eu-west-1a" || v1.Ports["http"] != 8080 {
		t.Errorf("v1 endpoint: %v", v1)
	}

	// A pod's new label reaches its endpoint.
	patch := []byte(`{"metadata":{"labels":{"version":"v1b"}}}`)
	if _, err := core.Pods(ns).Patch(ctx, "reviews-v1-0", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	took = kubetest.Poll(t, 30*time.Second, "the pod's new label on its endpoint", func() bool {
		return endpointsOf(get(t, s, ns, "reviews"))["10.250.99.1"].GetLabels()["version"] == "v1b"
	})
	t.Logf("pod label change seen after %v", took)

	// An endpoint that stops being ready leaves.
	sl.Endpoints[1].Conditions.Ready = ptr(false)
	if sl, err = slices.Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took = kubetest.Poll(t, 30*time.Second, "the unready endpoint to leave", func() bool {
		eps := endpointsOf(get(t, s, ns, "reviews"))
		return len(eps) == 1 && eps["10.250.99.2"] == nil
	})
	t.Logf("unready endpoint left %v after the EndpointSlice change", took)

	if err := slices.Delete(ctx, sl.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	took = kubetest.Poll(t, 30*time.Second, "the endpoints to leave with their slice", func() bool {
		se := get(t, s, ns, "reviews")
		return se != nil && len(se.Endpoints) == 0
	})
	t.Logf("endpoints left %v after the EndpointSlice was deleted", took)

	// The synthesized entry is not writable through the store.
	o, err := s.Get(ctx, config.Key{Kind: config.KindServiceEntry, Namespace: ns, Name: "reviews"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, []*config.Object{o}); !errors.Is(err, store.ErrReadOnly) || !strings.Contains(err.Error(), "Kubernetes Service "+ns+"/reviews") {
		t.Errorf("Apply of the synthesized ServiceEntry: %v", err)
	}

	if err := core.Services(ns).Delete(ctx, "reviews", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	took = kubetest.Poll(t, 30*time.Second, "the ServiceEntry to leave with its Service", func() bool { return get(t, s, ns, "reviews") == nil })
	t.Logf("ServiceEntry left %v after the Service was deleted", took)
}

// TestClusterDeployment: real pods of a Deployment (the pause image,
// imported into the node), selected by a Service, through Kubernetes' own
// EndpointSlice controller: the workload is the Deployment.
func TestClusterDeployment(t *testing.T) {
	c := kubetest.Clients(t)
	ns := kubetest.Namespace(t, c, "kubesrc-dep", nil)
	s := openStore(t, c, ns)
	ctx := context.Background()
	if _, err := c.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ratings"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	podLabels := map[string]string{"app": "ratings", "version": "v1"}
	dep, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ratings-v1"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{ServiceAccountName: "ratings", TerminationGracePeriodSeconds: ptr(int64(0)),
					Containers: []corev1.Container{{Name: "app", Image: "docker.io/local/pause:1", ImagePullPolicy: corev1.PullNever,
						Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 9080}}}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ratings"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "ratings"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("web")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Poll(t, 90*time.Second, "the running pod as the Service's endpoint", func() bool {
		return len(get(t, s, ns, "ratings").GetEndpoints()) == 1
	})
	e := get(t, s, ns, "ratings").Endpoints[0]
	if e.Labels[config.LabelWorkload] != "ratings-v1" || e.Labels["version"] != "v1" || e.ServiceAccount != "ratings" || e.Ports["http"] != 9080 {
		t.Errorf("endpoint: %v", e)
	}
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=ratings"})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.PodIP != e.Address {
		t.Fatalf("the endpoint's address is not the pod's IP: %v %v", pods, err)
	}

	// Scaled to zero, the endpoint leaves (terminating is not ready).
	if _, err := c.Kube.AppsV1().Deployments(ns).Patch(ctx, dep.Name, types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	took := kubetest.Poll(t, 60*time.Second, "the endpoint to leave", func() bool {
		se := get(t, s, ns, "ratings")
		return se != nil && len(se.Endpoints) == 0
	})
	t.Logf("endpoint left %v after scaling to zero", took)
}

var vsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

func vs(ns, name string, weight int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{"hosts": []any{"reviews"}, "http": []any{map[string]any{
			"route": []any{map[string]any{"destination": map[string]any{"host": "reviews"}, "weight": weight}}}}},
	}}
}

func resource(s *kube.Store, key config.Key) *kube.Resource {
	for _, r := range s.Resources() {
		if r.Key == key {
			return &r
		}
	}
	return nil
}

// TestClusterCustomResources: Istio objects written with the dynamic
// client (as kubectl would) reach the store decoded and validated; invalid
// ones are kept out, a broken update keeps the last valid version, and
// writes through the store come back before it returns.
func TestClusterCustomResources(t *testing.T) {
	c := kubetest.Clients(t)
	kubetest.InstallCRDs(t, c)
	ns := kubetest.Namespace(t, c, "kubesrc-cr", nil)
	s := openStore(t, c, ns)
	ctx := context.Background()
	vss := c.Dynamic.Resource(vsGVR).Namespace(ns)

	good, err := vss.Create(ctx, vs(ns, "good", 100), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vss.Create(ctx, vs(ns, "bad", -3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	goodKey := config.Key{Kind: config.KindVirtualService, Namespace: ns, Name: "good"}
	badKey := config.Key{Kind: config.KindVirtualService, Namespace: ns, Name: "bad"}
	kubetest.Poll(t, 30*time.Second, "both VirtualServices read", func() bool {
		return resource(s, goodKey) != nil && resource(s, badKey) != nil
	})
	if o, err := s.Get(ctx, goodKey); err != nil || o.Meta.Generation != good.GetGeneration() {
		t.Fatalf("good VirtualService: %v %v", o, err)
	}
	if _, err := s.Get(ctx, badKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the invalid VirtualService is in force: %v", err)
	}
	if r := resource(s, badKey); r.Refused == nil || !strings.Contains(r.Refused.Error(), "spec.http[0].route[0].weight") {
		t.Errorf("refusal of the invalid VirtualService: %+v", r)
	}

	// A broken update keeps the last valid version in force.
	broken := good.DeepCopy()
	broken.Object["spec"].(map[string]any)["hosts"] = []any{"not a host!"}
	if _, err := vss.Update(ctx, broken, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubetest.Poll(t, 30*time.Second, "the broken update refused", func() bool {
		r := resource(s, goodKey)
		return r != nil && r.Refused != nil && r.Generation > good.GetGeneration()
	})
	if o, err := s.Get(ctx, goodKey); err != nil || o.Meta.Generation != good.GetGeneration() || o.Spec.(*networking.VirtualService).Hosts[0] != "reviews" {
		t.Errorf("the last valid version is not in force: %v %v", o, err)
	}

	// Status: written once, not again when unchanged.
	msgs := []kube.StatusMessage{{Level: "ERROR", Code: "WEFT0001", Name: "InvalidObject", Description: resource(s, badKey).Refused.Error()}}
	wrote, err := s.WriteStatus(ctx, badKey, resource(s, badKey).Generation, msgs)
	if err != nil || !wrote {
		t.Fatalf("WriteStatus: %v %v", wrote, err)
	}
	u, err := vss.Get(ctx, "bad", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vm, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
	og, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if len(vm) != 1 || og != u.GetGeneration() || vm[0].(map[string]any)["type"].(map[string]any)["code"] != "WEFT0001" {
		t.Fatalf("status: %v", u.Object["status"])
	}
	kubetest.Poll(t, 30*time.Second, "the status write read back", func() bool {
		wrote, err = s.WriteStatus(ctx, badKey, resource(s, badKey).Generation, msgs)
		return err == nil && !wrote
	})

	// Writes through the store: visible when Apply and Delete return.
	dr := &config.Object{Kind: config.KindDestinationRule, Meta: config.Meta{Name: "reviews", Namespace: ns},
		Spec: &networking.DestinationRule{Host: "reviews", Subsets: []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}}}}
	drKey := dr.Key()
	res, err := s.Apply(ctx, []*config.Object{dr})
	if err != nil || res[0].Action != store.Created {
		t.Fatalf("Apply: %v %v", res, err)
	}
	if _, err := s.Get(ctx, drKey); err != nil {
		t.Errorf("not visible after Apply returned: %v", err)
	}
	if res, err = s.Apply(ctx, []*config.Object{dr}); err != nil || res[0].Action != store.Unchanged {
		t.Errorf("re-Apply: %v %v", res, err)
	}
	dr2 := &config.Object{Kind: config.KindDestinationRule, Meta: config.Meta{Name: "reviews", Namespace: ns},
		Spec: &networking.DestinationRule{Host: "reviews", Subsets: []*networking.Subset{{Name: "v2", Labels: map[string]string{"version": "v2"}}}}}
	if res, err = s.Apply(ctx, []*config.Object{dr2}); err != nil || res[0].Action != store.Updated {
		t.Fatalf("update: %v %v", res, err)
	}
	if o, _ := s.Get(ctx, drKey); o == nil || o.Spec.(*networking.DestinationRule).Subsets[0].Name != "v2" {
		t.Errorf("the update is not visible after Apply returned: %v", o)
	}
	invalid := &config.Object{Kind: config.KindDestinationRule, Meta: config.Meta{Name: "x", Namespace: ns}, Spec: &networking.DestinationRule{}}
	if _, err := s.Apply(ctx, []*config.Object{invalid}); err == nil || !strings.Contains(err.Error(), "spec.host") {
		t.Errorf("Apply of an invalid object: %v", err)
	}
	if _, err := s.Delete(ctx, []config.Key{drKey, {Kind: config.KindDestinationRule, Namespace: ns, Name: "missing"}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete with a missing key: %v", err)
	}
	if _, err := s.Get(ctx, drKey); err != nil {
		t.Errorf("a failed Delete removed an object: %v", err)
	}
	if _, err := s.Delete(ctx, []config.Key{drKey}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, drKey); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("visible after Delete returned: %v", err)
	}

	// A custom ServiceEntry named like a Service is shadowed by it.
	if _, err := c.Kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "tcp", Port: 5432}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seGVR := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
	if _, err := c.Dynamic.Resource(seGVR).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": map[string]any{"name": "db"},
		"spec": map[string]any{"hosts": []any{"db.example.com"}, "ports": []any{map[string]any{"number": int64(5432), "name": "tcp", "protocol": "TCP"}}},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seKey := config.Key{Kind: config.KindServiceEntry, Namespace: ns, Name: "db"}
	kubetest.Poll(t, 30*time.Second, "the custom ServiceEntry shadowed", func() bool {
		r := resource(s, seKey)
		return r != nil && r.Shadowed && errors.Is(r.Refused, kube.ErrShadowed)
	})
	if o, err := s.Get(ctx, seKey); err != nil || o.Meta.Annotations[kube.AnnotationOrigin] != kube.OriginKubernetes {
		t.Errorf("the Service's ServiceEntry must win: %v %v", o, err)
	}
}

var canaryGVR = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}

// TestClusterCanaryStatus: a Canary's two status writers on the real API
// server, the canary controller (UpdateStatus: Flagger's fields) and the
// analysis (WriteStatus: validationMessages, observedGeneration), keep
// each other's fields, whether they write one after the other (each from
// a cache that has not seen the other's write yet: the API server refuses
// the stale write and it is made again) or at the same time.
func TestClusterCanaryStatus(t *testing.T) {
	c := kubetest.Clients(t)
	kubetest.InstallCRDs(t, c)
	ns := kubetest.Namespace(t, c, "kubesrc-canary", nil)
	s := openStore(t, c, ns)
	ctx := context.Background()
	canaries := c.Dynamic.Resource(canaryGVR).Namespace(ns)
	cd, err := canaries.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
		"metadata": map[string]any{"name": "reviews", "namespace": ns},
		"spec": map[string]any{"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "reviews"},
			"service":  map[string]any{"port": int64(9080)},
			"analysis": map[string]any{"interval": "10s", "threshold": int64(2), "maxWeight": int64(50), "stepWeight": int64(10)}},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := config.Key{Kind: config.KindCanary, Namespace: ns, Name: "reviews"}
	kubetest.Poll(t, 30*time.Second, "the Canary read", func() bool {
		_, err := s.Get(ctx, key)
		return err == nil
	})
	gen := cd.GetGeneration()
	msg := func(d string) []kube.StatusMessage {
		return []kube.StatusMessage{{Level: "WARNING", Code: "WEFT0101", Name: "Finding", Description: d}}
	}
	status := func(weight int32) *flaggerv1beta1.CanaryStatus {
		return &flaggerv1beta1.CanaryStatus{Phase: "Progressing", CanaryWeight: proto.Int32(weight), FailedChecks: proto.Int32(0),
			Iterations: proto.Int32(0), LastAppliedSpec: "abc", ObservedGeneration: int32(gen),
			LastTransitionTime: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
			Conditions:         []*flaggerv1beta1.CanaryCondition{{Type: "Promoted", Status: "Unknown", Reason: "Progressing"}}}
	}
	// inCluster is the Canary's status as the API server has it: the
	// canary weight and the first validation message's description.
	inCluster := func() (weight int64, desc string, phase string) {
		t.Helper()
		u, err := canaries.Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		weight, _, _ = unstructured.NestedInt64(u.Object, "status", "canaryWeight")
		phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
		vm, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
		if len(vm) > 0 {
			desc, _ = vm[0].(map[string]any)["description"].(string)
		}
		return weight, desc, phase
	}
	// writeMessages retries the analysis' write until it goes through, as
	// the control plane's status loop does (a write from a stale cache is
	// refused with a conflict).
	writeMessages := func(d string) {
		t.Helper()
		kubetest.Poll(t, 30*time.Second, "the analysis' status written", func() bool {
			_, err := s.WriteStatus(ctx, key, gen, msg(d))
			if err != nil && !apierrors.IsConflict(err) {
				t.Fatal(err)
			}
			return err == nil
		})
	}

	// One after the other, each right after the other's write (the
	// store's cache may not have it yet).
	writeMessages("first")
	if err := s.UpdateStatus(ctx, key, status(10)); err != nil {
		t.Fatal(err)
	}
	if w, d, p := inCluster(); w != 10 || d != "first" || p != "Progressing" {
		t.Fatalf("after the controller's write: weight %d, message %q, phase %q", w, d, p)
	}
	writeMessages("second")
	if w, d, _ := inCluster(); w != 10 || d != "second" {
		t.Fatalf("after the analysis' write: weight %d, message %q", w, d)
	}
	if err := s.UpdateStatus(ctx, key, status(20)); err != nil {
		t.Fatal(err)
	}
	if w, d, _ := inCluster(); w != 20 || d != "second" {
		t.Fatalf("after the controller's second write: weight %d, message %q", w, d)
	}

	// At the same time: each writer's last write stays, with the other's.
	const n = 10
	errs := make(chan error, 1)
	go func() {
		var err error
		for i := int32(1); i <= n && err == nil; i++ {
			err = s.UpdateStatus(ctx, key, status(20+i))
		}
		errs <- err
	}()
	for i := 1; i <= n; i++ {
		writeMessages("concurrent " + strconv.Itoa(i))
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if w, d, _ := inCluster(); w != 20+n || d != "concurrent "+strconv.Itoa(n) {
		t.Fatalf("after concurrent writes: weight %d, message %q; want %d and %q", w, d, 20+n, "concurrent "+strconv.Itoa(n))
	}
	// The store reads back what the controller wrote.
	kubetest.Poll(t, 30*time.Second, "the status read back", func() bool {
		o, err := s.Get(ctx, key)
		return err == nil && proto.Equal(o.Status, status(20+n))
	})
}
