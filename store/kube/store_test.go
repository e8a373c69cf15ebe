package kube

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	networking "istio.io/api/networking/v1alpha3"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	"github.com/weft-mesh/weft/store"
)

// The unit tests run the store over client-go's fake clients; the same
// behaviour against a real API server is in kube_test.go.

var vsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

func crd(info config.KindInfo) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": CRDName(info)},
		"spec": map[string]any{"group": info.Group, "versions": []any{
			map[string]any{"name": info.Versions[0], "served": true, "storage": true, "subresources": map[string]any{"status": map[string]any{}}},
		}},
		"status": map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": "True"}}},
	}}
}

func virtualService(name string, weight int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": name, "namespace": "shop", "generation": int64(1), "resourceVersion": "1"},
		"spec": map[string]any{"hosts": []any{"reviews"}, "http": []any{map[string]any{
			"route": []any{map[string]any{"destination": map[string]any{"host": "reviews"}, "weight": weight}}}}},
	}}
}

func fakeStore(t *testing.T, kubeObjs []runtime.Object, crs ...runtime.Object) (*Store, *kubefake.Clientset, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	kc := kubefake.NewClientset(kubeObjs...)
	listKinds := map[schema.GroupVersionResource]string{crdGVR: "CustomResourceDefinitionList"}
	objs := []runtime.Object{}
	for _, k := range config.Kinds {
		listKinds[schema.GroupVersionResource{Group: k.Group, Version: k.Versions[0], Resource: k.Plural}] = string(k.Kind) + "List"
	}
	for _, kind := range []string{"VirtualService", "Canary"} {
		info, _ := config.LookupKind(kind)
		objs = append(objs, crd(info))
	}
	objs = append(objs, crs...)
	dc := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, Options{Kube: kc, Dynamic: dc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, kc, dc
}

// waitFor polls the store until cond holds.
func waitFor(t *testing.T, s *Store, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-s.Changed():
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestStoreOverFakeClients(t *testing.T) {
	svc := reviewsService()
	sl := slice("reviews-a", []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(9080))}}, ep("10.244.0.5", "reviews-v1-abc-1", true, false))
	p := pod("reviews-v1-abc-1", "reviews-v1-abc", "abc", "bookinfo-reviews", map[string]string{"app": "reviews", "version": "v1"})
	bad := virtualService("bad", -1)
	s, kc, dc := fakeStore(t, []runtime.Object{svc, sl, p}, virtualService("good", 100), bad)
	ctx := context.Background()

	// The first List holds everything New read.
	objs, rev, err := s.List(ctx, "", "")
	if err != nil || len(objs) != 2 || rev == 0 {
		t.Fatalf("List = %d objects at revision %d (%v), want the VirtualService and the Service's ServiceEntry", len(objs), rev, err)
	}
	se, err := s.Get(ctx, config.Key{Kind: config.KindServiceEntry, Namespace: "shop", Name: "reviews"})
	if err != nil || se.Spec.(*networking.ServiceEntry).Endpoints[0].Labels["version"] != "v1" {
		t.Fatalf("synthesized ServiceEntry: %v %v", se, err)
	}
	res := s.Resources()
	if len(res) != 2 || res[0].Key.Name != "bad" || res[0].Refused == nil || !strings.Contains(res[0].Refused.Error(), "spec.http[0].route[0].weight") {
		t.Fatalf("Resources = %+v, want the bad VirtualService refused naming the field", res)
	}

	// An update that breaks the good VirtualService keeps its last valid version.
	broken := virtualService("good", 100)
	broken.Object["spec"].(map[string]any)["http"] = "not a list"
	broken.SetGeneration(2)
	broken.SetResourceVersion("2")
	if _, err := dc.Resource(vsGVR).Namespace("shop").Update(ctx, broken, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	good := config.Key{Kind: config.KindVirtualService, Namespace: "shop", Name: "good"}
	waitFor(t, s, "the broken update to be refused", func() bool {
		for _, r := range s.Resources() {
			if r.Key == good && r.Refused != nil && r.Generation == 2 {
				return true
			}
		}
		return false
	})
	if o, err := s.Get(ctx, good); err != nil || o.Meta.Generation != 1 {
		t.Fatalf("the last valid version must stay in force: %v %v", o, err)
	}

	// Pod labels flow into the endpoint; deleting the Service removes its entry.
	p2 := p.DeepCopy()
	p2.Labels["version"] = "v1b"
	if _, err := kc.CoreV1().Pods("shop").Update(ctx, p2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	key := config.Key{Kind: config.KindServiceEntry, Namespace: "shop", Name: "reviews"}
	waitFor(t, s, "the pod's new label", func() bool {
		o, err := s.Get(ctx, key)
		return err == nil && o.Spec.(*networking.ServiceEntry).Endpoints[0].Labels["version"] == "v1b"
	})

	// The synthesized ServiceEntry is not writable.
	_, err = s.Apply(ctx, []*config.Object{se})
	if !errors.Is(err, store.ErrReadOnly) || !strings.Contains(err.Error(), "Kubernetes Service shop/reviews") {
		t.Errorf("Apply of a synthesized ServiceEntry: %v", err)
	}
	if _, err := s.Delete(ctx, []config.Key{key}); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("Delete of a synthesized ServiceEntry: %v", err)
	}
	// A kind without CRD is refused, naming the CRD.
	dr := &config.Object{Kind: config.KindDestinationRule, Meta: config.Meta{Name: "r", Namespace: "shop"}, Spec: &networking.DestinationRule{Host: "reviews"}}
	if _, err := s.Apply(ctx, []*config.Object{dr}); err == nil || !strings.Contains(err.Error(), "destinationrules.networking.istio.io") {
		t.Errorf("Apply without the CRD: %v", err)
	}

	if err := kc.CoreV1().Services("shop").Delete(ctx, "reviews", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "the ServiceEntry to leave", func() bool {
		_, err := s.Get(ctx, key)
		return errors.Is(err, store.ErrNotFound)
	})
}

func TestRVAtLeast(t *testing.T) {
	for _, c := range []struct {
		have, want string
		ok         bool
	}{{"10", "9", true}, {"10", "10", true}, {"9", "10", false}, {"abc", "abc", true}, {"abc", "10", false}} {
		if got := rvAtLeast(c.have, c.want); got != c.ok {
			t.Errorf("rvAtLeast(%q, %q) = %v", c.have, c.want, got)
		}
	}
}

var canaryGVR = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}

// TestCanaryStatusOverFakeClients: a Canary's status, as the canary
// analysis writes it, goes to the status subresource beside the
// analysis' validationMessages, neither writer removing the other's
// fields, and is read back (decoded) by Get once UpdateStatus returns.
func TestCanaryStatusOverFakeClients(t *testing.T) {
	cd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
		"metadata": map[string]any{"name": "reviews", "namespace": "shop", "generation": int64(3), "resourceVersion": "1"},
		"spec": map[string]any{"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "reviews"},
			"service":  map[string]any{"port": int64(9080)},
			"analysis": map[string]any{"interval": "10s", "threshold": int64(2), "maxWeight": int64(50), "stepWeight": int64(10)}},
		"status": map[string]any{"observedGeneration": int64(3), "validationMessages": []any{map[string]any{"level": "WARNING",
			"type": map[string]any{"code": "WEFT0101", "name": "Something"}, "description": "x"}}},
	}}
	s, _, dc := fakeStore(t, nil, cd)
	// The fake keeps an object's resourceVersion as written; the API
	// server moves it at every write, which the store relies on.
	var rvs atomic.Int64
	rvs.Store(1)
	dc.PrependReactor("update", "canaries", func(a k8stesting.Action) (bool, runtime.Object, error) {
		a.(k8stesting.UpdateAction).GetObject().(*unstructured.Unstructured).SetResourceVersion(strconv.FormatInt(rvs.Add(1), 10))
		return false, nil, nil
	})
	ctx := context.Background()
	key := config.Key{Kind: config.KindCanary, Namespace: "shop", Name: "reviews"}
	st := &flaggerv1beta1.CanaryStatus{Phase: "Progressing", CanaryWeight: proto.Int32(10), FailedChecks: proto.Int32(0),
		LastAppliedSpec: "abc", LastTransitionTime: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), ObservedGeneration: 3,
		Conditions: []*flaggerv1beta1.CanaryCondition{{Type: "Promoted", Status: "Unknown", Reason: "Progressing"}}}
	if err := s.UpdateStatus(ctx, key, st); err != nil {
		t.Fatal(err)
	}
	o, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := o.Status.(*flaggerv1beta1.CanaryStatus); !ok || !proto.Equal(got, st) {
		t.Fatalf("status read back %v, want %v", o.Status, st)
	}
	u, err := dc.Resource(canaryGVR).Namespace("shop").Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := u.Object["status"].(map[string]any)
	if status["phase"] != "Progressing" || status["canaryWeight"] != float64(10) || status["failedChecks"] != float64(0) ||
		status["lastTransitionTime"] != "2026-01-02T03:04:05Z" || status["validationMessages"] == nil {
		t.Fatalf("status in the cluster: %v", status)
	}
	// Unchanged: no write.
	rv := u.GetResourceVersion()
	if err := s.UpdateStatus(ctx, key, proto.Clone(st)); err != nil {
		t.Fatal(err)
	}
	if u, _ := dc.Resource(canaryGVR).Namespace("shop").Get(ctx, "reviews", metav1.GetOptions{}); u.GetResourceVersion() != rv {
		t.Errorf("an unchanged status was written again")
	}
	// The analysis clears its messages and keeps the Canary's status.
	waitFor(t, s, "the status write read back", func() bool { return s.cached(key).GetResourceVersion() == rv })
	if wrote, err := s.WriteStatus(ctx, key, 3, nil); err != nil || !wrote {
		t.Fatalf("WriteStatus: %v %v", wrote, err)
	}
	u, _ = dc.Resource(canaryGVR).Namespace("shop").Get(ctx, "reviews", metav1.GetOptions{})
	status = u.Object["status"].(map[string]any)
	if status["phase"] != "Progressing" || status["validationMessages"] != nil {
		t.Errorf("after the analysis' write: %v", status)
	}
	// A status of another kind is refused.
	if err := s.UpdateStatus(ctx, key, &flaggerv1beta1.CanaryAnalysis{}); err == nil {
		t.Error("UpdateStatus took a message that is no CanaryStatus")
	}
}
