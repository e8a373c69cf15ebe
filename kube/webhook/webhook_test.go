package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/kube/inject"
)

// review POSTs an AdmissionReview for obj to h and returns the response.
func review(t *testing.T, h http.Handler, op admissionv1.Operation, kind metav1.GroupVersionKind, ns string, obj []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	return reviewRequest(t, h, &admissionv1.AdmissionRequest{Kind: kind, Namespace: ns, Operation: op, Object: runtime.RawExtension{Raw: obj}})
}

// reviewRequest POSTs an AdmissionReview of req to h and returns the response.
func reviewRequest(t *testing.T, h http.Handler, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	t.Helper()
	req.UID = "2b8f-uid"
	in := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	}
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body.String())
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil || out.Response.UID != "2b8f-uid" {
		t.Fatalf("response review %+v", out)
	}
	return out.Response
}

func jsonOf(t *testing.T, y string) []byte {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

var vsKind = metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}

func TestValidator(t *testing.T) {
	h := Validator(nil, nil)
	valid := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
  uid: 0c6a
  resourceVersion: "41"
  generation: 1
  creationTimestamp: "2025-01-01T00:00:00Z"
  managedFields: [{manager: kubectl}]
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`
	if r := review(t, h, admissionv1.Create, vsKind, "shop", jsonOf(t, valid)); !r.Allowed {
		t.Fatalf("valid VirtualService refused: %+v", r.Result)
	}

	// The refusal carries the lines `weft apply` prints for the same
	// object, without the file and document it has no use for.
	invalid := strings.Replace(valid, "destination: {host: reviews, subset: v1}", "destination: {subset: v1}\n      weight: 101", 1)
	invalid = strings.Replace(invalid, "  namespace: shop\n", "", 1) // a namespace-less object still gets its namespace named
	r := review(t, h, admissionv1.Update, vsKind, "shop", jsonOf(t, invalid))
	if r.Allowed || r.Result == nil || r.Result.Code != 400 {
		t.Fatalf("invalid VirtualService: %+v", r)
	}
	_, cliErr := config.Decode("vs.yaml", strings.NewReader(invalid))
	var list config.ErrorList
	if !errors.As(cliErr, &list) || len(list) == 0 {
		t.Fatalf("the CLI's decoder accepts the invalid object: %v", cliErr)
	}
	list.DefaultNamespace("shop")
	var want []string
	for _, line := range strings.Split(list.Error(), "\n") {
		want = append(want, strings.TrimPrefix(line, "vs.yaml: document 1: "))
	}
	if r.Result.Message != strings.Join(want, "\n") {
		t.Errorf("message\n%s\nwant\n%s", r.Result.Message, strings.Join(want, "\n"))
	}
	if !strings.Contains(r.Result.Message, "VirtualService shop/reviews: spec.http[0].route[0].destination.host: required") {
		t.Errorf("message does not name the field: %s", r.Result.Message)
	}

	// Deletes and status writes pass; a kind mismatch does not.
	if r := review(t, h, admissionv1.Delete, vsKind, "shop", nil); !r.Allowed {
		t.Errorf("delete refused: %+v", r.Result)
	}
	drKind := metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
	if r := review(t, h, admissionv1.Create, drKind, "shop", jsonOf(t, valid)); r.Allowed {
		t.Error("a VirtualService sent as a DestinationRule was allowed")
	}
}

// TestValidatorGuard: with a guard, what it refuses is refused with its
// message (creates, updates and deletes), trusted users pass, status
// writes are never judged, and a guard that cannot judge fails the review.
func TestValidatorGuard(t *testing.T) {
	var gotWrites []*config.Object
	var gotDeletes []config.Key
	fail := false
	h := Validator(nil, &Guard{
		Check: func(_ context.Context, writes []*config.Object, deletes []config.Key) (string, error) {
			gotWrites, gotDeletes = writes, deletes
			if fail {
				return "", errors.New("store unreadable")
			}
			for _, o := range writes {
				if o.Meta.Name == "reviews" {
					return "VirtualService shop/reviews is managed by Canary shop/reviews", nil
				}
			}
			for _, k := range deletes {
				if k.Name == "reviews" {
					return "VirtualService shop/reviews is managed by Canary shop/reviews", nil
				}
			}
			return "", nil
		},
		Trusted: func(u authenticationv1.UserInfo) bool {
			return u.Username == "system:serviceaccount:istio-system:weft-controlplane"
		},
	})
	vs := jsonOf(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews-primary}, weight: 100}]}]
`)
	user := authenticationv1.UserInfo{Username: "alice"}
	for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update} {
		r := reviewRequest(t, h, &admissionv1.AdmissionRequest{Kind: vsKind, Namespace: "shop", Name: "reviews", Operation: op, UserInfo: user, Object: runtime.RawExtension{Raw: vs}})
		if r.Allowed || !strings.Contains(r.Result.Message, "managed by Canary shop/reviews") {
			t.Errorf("%s of an owned VirtualService: %+v", op, r.Result)
		}
		if len(gotWrites) != 1 || gotWrites[0].Key() != (config.Key{Kind: config.KindVirtualService, Namespace: "shop", Name: "reviews"}) {
			t.Errorf("the guard saw %v", gotWrites)
		}
	}
	r := reviewRequest(t, h, &admissionv1.AdmissionRequest{Kind: vsKind, Namespace: "shop", Name: "reviews", Operation: admissionv1.Delete, UserInfo: user})
	if r.Allowed || len(gotDeletes) != 1 || gotDeletes[0] != (config.Key{Kind: config.KindVirtualService, Namespace: "shop", Name: "reviews"}) {
		t.Errorf("delete of an owned VirtualService: %+v (guard saw %v)", r.Result, gotDeletes)
	}
	if r := reviewRequest(t, h, &admissionv1.AdmissionRequest{Kind: vsKind, Namespace: "shop", Name: "other", Operation: admissionv1.Delete, UserInfo: user}); !r.Allowed {
		t.Errorf("delete of another VirtualService: %+v", r.Result)
	}
	controller := authenticationv1.UserInfo{Username: "system:serviceaccount:istio-system:weft-controlplane"}
	gotWrites = nil
	if r := reviewRequest(t, h, &admissionv1.AdmissionRequest{Kind: vsKind, Namespace: "shop", Name: "reviews", Operation: admissionv1.Update, UserInfo: controller, Object: runtime.RawExtension{Raw: vs}}); !r.Allowed || gotWrites != nil {
		t.Errorf("the control plane's own write: %+v", r.Result)
	}
	if r := reviewRequest(t, h, &admissionv1.AdmissionRequest{Kind: vsKind, Namespace: "shop", Name: "reviews", Operation: admissionv1.Update, SubResource: "status", UserInfo: user, Object: runtime.RawExtension{Raw: vs}}); !r.Allowed {
		t.Errorf("a status write: %+v", r.Result)
	}
	// Validation comes first: an invalid object is refused for itself.
	if r := reviewRequest(t, h, &admissionv1.AdmissionRequest{Kind: vsKind, Namespace: "shop", Name: "reviews", Operation: admissionv1.Create, UserInfo: user,
		Object: runtime.RawExtension{Raw: jsonOf(t, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: []}\n")}}); r.Allowed || strings.Contains(r.Result.Message, "Canary") {
		t.Errorf("invalid object: %+v", r.Result)
	}
	// A guard that cannot judge: HTTP 500, the failure policy decides.
	fail = true
	body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u", Kind: vsKind, Namespace: "shop", Name: "other", Operation: admissionv1.Delete, UserInfo: user}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("guard error: HTTP %d", rec.Code)
	}
}

func TestBadReviews(t *testing.T) {
	h := Validator(nil, nil)
	for _, tc := range []struct {
		method, body string
		code         int
	}{
		{http.MethodGet, "", http.StatusMethodNotAllowed},
		{http.MethodPost, "{not json", http.StatusBadRequest},
		{http.MethodPost, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/", strings.NewReader(tc.body)))
		if rec.Code != tc.code {
			t.Errorf("%s %q: HTTP %d, want %d", tc.method, tc.body, rec.Code, tc.code)
		}
	}
}

var podKind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}

var testSettings = inject.Settings{Image: "docker.io/library/weft:test", ImagePullPolicy: corev1.PullIfNotPresent, XDSAddress: "10.96.0.7:15012"}

func testInjector(labels map[string]string) *Injector {
	return &Injector{
		Namespace: func(_ context.Context, name string) (inject.Namespace, error) {
			return inject.Namespace{Name: name, Labels: labels, Member: true}, nil
		},
		Settings: func(context.Context) (inject.Settings, error) { return testSettings, nil },
	}
}

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  generateName: web-7c9f-
  labels: {app: web, pod-template-hash: 7c9f}
  annotations: {example.com/keep: "yes"}
spec:
  serviceAccountName: web
  containers:
  - name: web
    image: app:1
    ports: [{containerPort: 8080, name: http}]
    livenessProbe:
      httpGet: {path: /healthz, port: http}
`

func TestInjector(t *testing.T) {
	raw := jsonOf(t, podYAML)
	r := review(t, testInjector(map[string]string{inject.LabelInjection: "enabled"}), admissionv1.Create, podKind, "shop", raw)
	if !r.Allowed || r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response %+v", r)
	}
	// The patch, applied as the API server applies it, gives the pod
	// inject.Pod makes.
	p, err := jsonpatch.DecodePatch(r.Patch)
	if err != nil {
		t.Fatalf("patch %s: %v", r.Patch, err)
	}
	patched, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("apply patch %s: %v", r.Patch, err)
	}
	var got, pod corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}
	pod.Namespace = "shop"
	want, err := inject.Pod(&pod, testSettings, "")
	if err != nil {
		t.Fatal(err)
	}
	got.Namespace = "shop"
	if !reflect.DeepEqual(&got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("patched pod\n%s\nwant\n%s", g, w)
	}
	if got.Annotations["example.com/keep"] != "yes" {
		t.Error("the pod's own annotation was lost")
	}

	// Not injected: allowed, no patch.
	r = review(t, testInjector(nil), admissionv1.Create, podKind, "shop", raw)
	if !r.Allowed || r.Patch != nil {
		t.Errorf("uninjected pod: %+v", r)
	}
	// Updates are never injected.
	r = review(t, testInjector(map[string]string{inject.LabelInjection: "enabled"}), admissionv1.Update, podKind, "shop", raw)
	if !r.Allowed || r.Patch != nil {
		t.Errorf("update: %+v", r)
	}
	// A bad annotation refuses the pod, naming it.
	bad := jsonOf(t, strings.Replace(podYAML, `example.com/keep: "yes"`, `sidecar.istio.io/proxyCPU: "fast"`, 1))
	r = review(t, testInjector(map[string]string{inject.LabelInjection: "enabled"}), admissionv1.Create, podKind, "shop", bad)
	if r.Allowed || !strings.Contains(r.Result.Message, `pod shop/web-7c9f-<generated>: annotation sidecar.istio.io/proxyCPU: "fast" is not a quantity`) {
		t.Errorf("bad annotation: %+v", r.Result)
	}
	// A lookup failure is no verdict: HTTP 500, for the webhook's failure
	// policy to decide (closed for labelled namespaces, open for the rest).
	in := testInjector(nil)
	in.Namespace = func(context.Context, string) (inject.Namespace, error) {
		return inject.Namespace{}, errors.New("API down")
	}
	body, _ := json.Marshal(admissionv1.AdmissionReview{Request: &admissionv1.AdmissionRequest{UID: "u", Kind: podKind, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}})
	rec := httptest.NewRecorder()
	in.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "API down") {
		t.Errorf("lookup failure: HTTP %d %s", rec.Code, rec.Body.String())
	}
}

func TestJSONPatch(t *testing.T) {
	before := map[string]any{"a": 1, "keep": "x", "m": map[string]any{"sidecar.istio.io/status": "old", "gone": true}, "l": []any{1, 2}, "s": []any{map[string]any{"p": 1}}}
	after := map[string]any{"a": 2, "keep": "x", "m": map[string]any{"sidecar.istio.io/status": "new", "a~b": nil}, "l": []any{0, 1, 2}, "s": []any{map[string]any{"p": 1, "q": false}}, "n": 0}
	got, err := jsonPatch(before, after)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"op":"replace","path":"/a","value":2},{"op":"replace","path":"/l","value":[0,1,2]},` +
		`{"op":"add","path":"/m/a~0b","value":null},{"op":"remove","path":"/m/gone"},{"op":"replace","path":"/m/sidecar.istio.io~1status","value":"new"},` +
		`{"op":"add","path":"/n","value":0},{"op":"add","path":"/s/0/q","value":false}]`
	if string(got) != want {
		t.Errorf("patch\n%s\nwant\n%s", got, want)
	}
	b, _ := json.Marshal(before)
	p, err := jsonpatch.DecodePatch(got)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := p.Apply(b)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(after)
	if !jsonpatch.Equal(applied, a) {
		t.Errorf("applied %s, want %s", applied, a)
	}
	if got, _ := jsonPatch(before, before); string(got) != "[]" {
		t.Errorf("no change gives %s", got)
	}
}
