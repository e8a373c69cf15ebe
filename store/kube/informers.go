package kube

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// annotationLastApplied is kubectl's copy of the last applied object, as
// large as the object itself; the caches leave it out.
const annotationLastApplied = "kubectl.kubernetes.io/last-applied-configuration"

func metaAccessor(obj any) (metav1.Object, error) { return meta.Accessor(obj) }

// mustIndex returns an index function's keys, none on error.
func mustIndex(keys []string, err error) []string {
	if err != nil {
		return nil
	}
	return keys
}

// sliceService indexes an EndpointSlice under NS/NAME of its Service.
func sliceService(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	if name := s.Labels[labelServiceName]; name != "" {
		return []string{s.Namespace + "/" + name}, nil
	}
	return nil, nil
}

// slicePods indexes an EndpointSlice under NS/NAME of each pod it lists.
func slicePods(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	var keys []string
	for _, e := range s.Endpoints {
		if r := e.TargetRef; r != nil && r.Kind == "Pod" {
			ns := r.Namespace
			if ns == "" {
				ns = s.Namespace
			}
			keys = append(keys, ns+"/"+r.Name)
		}
	}
	return keys, nil
}

// sliceNodes indexes an EndpointSlice under the nodes its endpoints run on.
func sliceNodes(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	var keys []string
	for _, e := range s.Endpoints {
		if e.NodeName != nil && !slices.Contains(keys, *e.NodeName) {
			keys = append(keys, *e.NodeName)
		}
	}
	return keys, nil
}

// stripManagedFields drops server-side apply bookkeeping (and kubectl's
// last-applied copy) from a cached object: nothing here reads them.
func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a[annotationLastApplied] != "" {
			a = maps.Clone(a)
			delete(a, annotationLastApplied)
			m.SetAnnotations(a)
		}
	}
	return obj, nil
}

// stripPod keeps what synthesis reads of a pod: identity, labels, owners,
// service account and node.
func stripPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels, OwnerReferences: p.OwnerReferences, DeletionTimestamp: p.DeletionTimestamp,
		},
		Spec: corev1.PodSpec{ServiceAccountName: p.Spec.ServiceAccountName, NodeName: p.Spec.NodeName},
	}, nil
}

// stripNode keeps a node's name and labels (its locality).
func stripNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels}}, nil
}

// stripUnstructured drops managed fields and kubectl's last-applied copy
// from a cached custom resource or CRD.
func stripUnstructured(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
		unstructured.RemoveNestedField(u.Object, "metadata", "annotations", annotationLastApplied)
	}
	return obj, nil
}

// podChanged: a pod update matters to its Services only when what
// synthesis reads changed (status updates, the common case, do not).
func podChanged(old, new any) bool {
	a, ok1 := old.(*corev1.Pod)
	b, ok2 := new.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	return !maps.Equal(a.Labels, b.Labels) || a.Spec.ServiceAccountName != b.Spec.ServiceAccountName ||
		a.Spec.NodeName != b.Spec.NodeName || !slices.EqualFunc(a.OwnerReferences, b.OwnerReferences, sameOwner)
}

func sameOwner(a, b metav1.OwnerReference) bool {
	return a.UID == b.UID && a.Name == b.Name && a.Kind == b.Kind
}

// nodeChanged: only a node's labels (its locality) matter; its frequent
// status updates do not.
func nodeChanged(old, new any) bool {
	a, ok1 := old.(*corev1.Node)
	b, ok2 := new.(*corev1.Node)
	return !ok1 || !ok2 || !maps.Equal(a.Labels, b.Labels)
}

// namespaceChanged: a namespace's labels decide whether it is selected.
func namespaceChanged(old, new any) bool {
	a, ok1 := old.(*corev1.Namespace)
	b, ok2 := new.(*corev1.Namespace)
	return !ok1 || !ok2 || !maps.Equal(a.Labels, b.Labels)
}
