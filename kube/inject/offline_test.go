package inject

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const stream = `# Bookinfo's shape
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  ports:
  - port: 9080
    name: http
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
  namespace: bookinfo
spec:
  selector:
    matchLabels: {app: reviews}
  template:
    metadata:
      labels: {app: reviews, version: v1}
    spec:
      containers:
      - name: reviews
        image: app:1
        readinessProbe:
          httpGet: {path: /ready, port: 9080}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  serviceName: db
  template:
    metadata:
      labels: {app: db}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      containers: [{name: db, image: db:1}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  schedule: "@hourly"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: report, image: app:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: tools}
spec:
  containers: [{name: c, image: app:1}]
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: {name: details-vm}
spec:
  running: true
  template:
    metadata:
      labels: {app: details}
      annotations:
        traffic.sidecar.istio.io/includeOutboundIPRanges: "10.96.0.0/12"
    spec:
      domain: {devices: {interfaces: [{name: default, masquerade: {}}]}}
---
apiVersion: v1
kind: List
items:
- apiVersion: batch/v1
  kind: Job
  metadata: {name: once}
  spec:
    template:
      spec:
        restartPolicy: Never
        containers: [{name: once, image: app:1}]
`

func TestStream(t *testing.T) {
	var out bytes.Buffer
	if err := Stream(strings.NewReader(stream), &out, testSettings); err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(out.String(), "---\n")
	if len(docs) != 7 {
		t.Fatalf("%d documents out, want 7:\n%s", len(docs), out.String())
	}
	// Kinds without pods come back byte for byte.
	if !strings.HasPrefix(docs[0], "# Bookinfo's shape\napiVersion: v1\nkind: Service\n") {
		t.Errorf("Service rewritten:\n%s", docs[0])
	}

	var d appsv1.Deployment
	decode(t, docs[1], &d)
	ps := d.Spec.Template.Spec
	if len(ps.InitContainers) != 2 || ps.InitContainers[1].Name != ProxyContainerName {
		t.Fatalf("Deployment not injected: %+v", ps.InitContainers)
	}
	if v, _ := env(&ps.InitContainers[1], EnvWorkloadName); v != "reviews-v1" {
		t.Errorf("workload %q, want the Deployment's name", v)
	}
	if ps.Containers[0].ReadinessProbe.HTTPGet.Port.IntVal != StatusPort {
		t.Errorf("probe not rewritten: %+v", ps.Containers[0].ReadinessProbe)
	}
	if d.Spec.Template.Labels[LabelTLSMode] != "istio" || d.Spec.Template.Annotations[AnnotationStatus] == "" {
		t.Errorf("template metadata %+v", d.Spec.Template.ObjectMeta)
	}
	if strings.Contains(docs[1], "creationTimestamp") || strings.Contains(docs[1], "\nstatus:") || strings.Contains(docs[1], " status: {}") {
		t.Errorf("server-side fields in the output:\n%s", docs[1])
	}

	if !strings.Contains(docs[2], "kind: StatefulSet") || strings.Contains(docs[2], ProxyContainerName) {
		t.Errorf("inject: \"false\" not honoured:\n%s", docs[2])
	}

	var cj batchv1.CronJob
	decode(t, docs[3], &cj)
	if n := len(cj.Spec.JobTemplate.Spec.Template.Spec.InitContainers); n != 2 {
		t.Errorf("CronJob's job template has %d init containers, want 2", n)
	}

	var pod corev1.Pod
	decode(t, docs[4], &pod)
	if len(pod.Spec.InitContainers) != 2 || pod.Namespace != "tools" {
		t.Errorf("Pod: %+v", pod)
	}

	// A VM's pod is made by KubeVirt: the template asks the webhook.
	var vm unstructured.Unstructured
	decode(t, docs[5], &vm.Object)
	ann, _, _ := unstructured.NestedStringMap(vm.Object, "spec", "template", "metadata", "annotations")
	if ann[LabelOrAnnotationInject] != "true" || ann[AnnotationIncludeOutIPs] != "10.96.0.0/12" {
		t.Errorf("VirtualMachine template annotations %v", ann)
	}

	var list struct {
		Items []batchv1.Job `json:"items"`
	}
	decode(t, docs[6], &list)
	if len(list.Items) != 1 || len(list.Items[0].Spec.Template.Spec.InitContainers) != 2 {
		t.Errorf("List item not injected: %+v", list)
	}

	// Injecting the output again changes nothing.
	var again bytes.Buffer
	if err := Stream(strings.NewReader(out.String()), &again, testSettings); err != nil {
		t.Fatal(err)
	}
	if again.String() != out.String() {
		t.Errorf("second pass changed the stream:\n%s", again.String())
	}
}

func decode(t *testing.T, doc string, v any) {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err == nil {
		err = json.Unmarshal(js, v)
	}
	if err != nil {
		t.Fatalf("%v in\n%s", err, doc)
	}
}

func TestStreamErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  template:\n    metadata:\n      annotations: {traffic.sidecar.istio.io/excludeInboundPorts: \"eighty\"}\n    spec: {containers: [{name: c, image: i}]}\n",
			`document 1: Deployment shop/web: spec.template.metadata.annotations: annotation traffic.sidecar.istio.io/excludeInboundPorts: "eighty" is not a port`},
		{"kind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {sidecar.istio.io/inject: perhaps}}\nspec: {containers: [{name: c, image: i}]}\n",
			`document 2: Pod p: metadata: label sidecar.istio.io/inject: "perhaps" is neither "true" nor "false"`},
		{"a: [\n", "document 1: invalid YAML"},
	} {
		err := Stream(strings.NewReader(tc.in), &bytes.Buffer{}, testSettings)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("err %v\nwant %s", err, tc.want)
		}
	}
}
