package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// templatePaths is where each workload kind keeps its pod template.
var templatePaths = map[string][]string{
	"apps/v1/Deployment":       {"spec", "template"},
	"apps/v1/StatefulSet":      {"spec", "template"},
	"apps/v1/DaemonSet":        {"spec", "template"},
	"apps/v1/ReplicaSet":       {"spec", "template"},
	"v1/ReplicationController": {"spec", "template"},
	"batch/v1/Job":             {"spec", "template"},
	"batch/v1/CronJob":         {"spec", "jobTemplate", "spec", "template"},
}

// KubeVirt's kinds. A VM's pod (virt-launcher) is made by KubeVirt from
// the VirtualMachineInstance, which copies the template's annotations to
// it, so offline injection can only ask for the sidecar: it sets
// sidecar.istio.io/inject: "true" on the template, and the webhook
// injects the virt-launcher pod when it is created.
var vmAnnotationPaths = map[string][]string{
	"VirtualMachine":         {"spec", "template", "metadata", "annotations"},
	"VirtualMachineInstance": {"metadata", "annotations"},
}

// Stream reads a YAML stream of Kubernetes objects and writes it back with
// every pod and pod template injected as the webhook would inject it in a
// namespace labelled istio-injection=enabled (as `istioctl kube-inject`
// does): objects that say sidecar.istio.io/inject: "false", use the host
// network or are already injected stay as they are, and so does every
// other kind, byte for byte. A List's items are handled one by one. The
// first problem stops the stream, naming the object and its field.
func Stream(r io.Reader, w io.Writer, s Settings) error {
	if err := s.check(); err != nil {
		return err
	}
	yr := k8syaml.NewYAMLReader(bufio.NewReader(r))
	first := true
	for n := 1; ; n++ {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", n, err)
		}
		if isBlank(doc) {
			n--
			continue
		}
		out, err := injectDocument(doc, s)
		if err != nil {
			return fmt.Errorf("document %d: %w", n, err)
		}
		if !first {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		first = false
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
}

// isBlank reports whether a document holds only blanks, comments and
// document markers.
func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return false
		}
	}
	return true
}

// injectDocument returns the document, injected if it holds pods.
func injectDocument(doc []byte, s Settings) ([]byte, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(js, &obj); err != nil || obj == nil {
		return keepText(doc), nil // not an object: not ours to judge
	}
	changed, err := injectObject(obj, s)
	if err != nil || !changed {
		return keepText(doc), err
	}
	return yaml.Marshal(obj)
}

func keepText(doc []byte) []byte {
	doc = bytes.TrimPrefix(doc, []byte("---\n"))
	if len(doc) > 0 && doc[len(doc)-1] != '\n' {
		doc = append(doc, '\n')
	}
	return doc
}

// injectObject injects obj in place and reports whether it changed.
func injectObject(obj map[string]any, s Settings) (bool, error) {
	u := &unstructured.Unstructured{Object: obj}
	kind, ns, name := u.GetKind(), u.GetNamespace(), u.GetName()
	id := kind + " " + name
	if ns != "" {
		id = kind + " " + ns + "/" + name
	}
	if kind == "List" {
		items, _, _ := unstructured.NestedSlice(obj, "items")
		changed := false
		for i, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				continue
			}
			c, err := injectObject(m, s)
			if err != nil {
				return false, fmt.Errorf("items[%d]: %w", i, err)
			}
			changed = changed || c
			items[i] = m
		}
		if changed {
			if err := unstructured.SetNestedSlice(obj, items, "items"); err != nil {
				return false, err
			}
		}
		return changed, nil
	}
	if p, ok := vmAnnotationPaths[kind]; ok && strings.HasPrefix(u.GetAPIVersion(), "kubevirt.io/") {
		a, _, _ := unstructured.NestedStringMap(obj, p...)
		if _, set := a[LabelOrAnnotationInject]; set {
			return false, nil // asked already, either way
		}
		if a == nil {
			a = map[string]string{}
		}
		a[LabelOrAnnotationInject] = "true"
		return true, unstructured.SetNestedStringMap(obj, a, p...)
	}
	if kind == "Pod" && u.GetAPIVersion() == "v1" {
		return injectPod(obj, nil, s, "", id, "")
	}
	if p, ok := templatePaths[u.GetAPIVersion()+"/"+kind]; ok {
		tmpl, found, err := unstructured.NestedMap(obj, p...)
		if err != nil || !found {
			return false, fmt.Errorf("%s: %s: no pod template", id, strings.Join(p, "."))
		}
		changed, err := injectPod(tmpl, &metav1.ObjectMeta{Namespace: ns}, s, name, id, strings.Join(p, ".")+".")
		if err != nil || !changed {
			return false, err
		}
		return true, unstructured.SetNestedMap(obj, tmpl, p...)
	}
	return false, nil
}

// injectPod injects a pod (or a pod template, whose namespace comes from
// its workload) given as its JSON object, in place.
func injectPod(obj map[string]any, owner *metav1.ObjectMeta, s Settings, workload, id, prefix string) (bool, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return false, err
	}
	var pod corev1.Pod
	if err := json.Unmarshal(js, &pod); err != nil {
		return false, fmt.Errorf("%s: %sspec: %w", id, prefix, err)
	}
	if owner != nil && pod.Namespace == "" {
		pod.Namespace = owner.Namespace
	}
	if _, _, err := podWants(&pod); err != nil {
		return false, fmt.Errorf("%s: %smetadata: %w", id, prefix, err)
	}
	// Offline there is no namespace to ask: inject as into a namespace
	// labelled istio-injection=enabled, as istioctl kube-inject does.
	if ok, _ := Decide(&pod, Namespace{Name: pod.Namespace, Labels: map[string]string{LabelInjection: "enabled"}, Member: true}); !ok {
		return false, nil
	}
	out, err := Pod(&pod, s, workload)
	if err != nil {
		return false, fmt.Errorf("%s: %smetadata.annotations: %w", id, prefix, err)
	}
	js, err = json.Marshal(out)
	if err != nil {
		return false, err
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return false, err
	}
	// What the API server would fill in has no place in a manifest.
	unstructured.RemoveNestedField(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	for k := range obj {
		delete(obj, k)
	}
	for k, v := range m {
		obj[k] = v
	}
	return true, nil
}
