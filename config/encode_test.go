package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// richYAML exercises durations, wrappers, maps, oneofs, enums and strings
// that YAML would otherwise read as other types.
const richYAML = `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
  labels: {app: reviews, enabled: "true", switch: "on"}
  annotations: {note: "1.0"}
spec:
  hosts: [reviews]
  gateways: [mesh, web/ingress]
  http:
  - match:
    - uri: {prefix: /api}
      headers: {x-user: {exact: "123"}}
    route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 10ms, retryOn: "5xx"}
    mirrorPercent: 5
    fault: {abort: {httpStatus: 503, percentage: {value: 0.5}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: https, protocol: TLS}]
`

func TestMarshalRoundTrip(t *testing.T) {
	objs := append(mustDecode(t, richYAML), mustDecode(t, seedYAML)...)
	for _, o := range objs[2:] {
		o.Meta.Namespace = "coolapp"
	}
	for _, format := range []string{FormatYAML, FormatJSON} {
		for _, o := range objs {
			out, err := Marshal(o, format)
			if err != nil {
				t.Fatalf("Marshal %s %s: %v", o.Key(), format, err)
			}
			back, err := Decode("out", bytes.NewReader(out))
			if err != nil {
				t.Fatalf("Decode(Marshal(%s), %s): %v\n%s", o.Key(), format, err, out)
			}
			if len(back) != 1 || !Equal(back[0], o) {
				t.Errorf("%s round trip changed %s:\n%s", format, o.Key(), out)
			}
			if back[0].APIVersion != "networking.istio.io/v1" {
				t.Errorf("apiVersion = %q, want the preferred version", back[0].APIVersion)
			}
		}
	}
}

func TestMarshalYAML(t *testing.T) {
	o := mustDecode(t, seedYAML)[0]
	o.Meta.Namespace = "coolapp"
	o.Meta.ResourceVersion = "7"
	o.Meta.Generation = 2
	o.Meta.CreationTimestamp = time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	out, err := Marshal(o, FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  creationTimestamp: "2024-05-01T11:00:00Z"
  generation: 2
  name: catalog
  namespace: coolapp
  resourceVersion: "7"
spec:
  hosts:
  - catalog
  http:
  - route:
    - destination:
        host: catalog
        subset: version-v2
      weight: 100
`
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestMarshalList(t *testing.T) {
	objs := mustDecode(t, seedYAML)
	y, err := MarshalList(objs, FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	if back := mustDecode(t, string(y)); len(back) != 2 || !Equal(back[0], objs[0]) || !Equal(back[1], objs[1]) {
		t.Errorf("YAML list did not round trip:\n%s", y)
	}
	js, err := MarshalList(objs, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(js, &list); err != nil || list.APIVersion != "v1" || list.Kind != "List" || len(list.Items) != 2 {
		t.Fatalf("JSON list = %s (err %v)", js, err)
	}
	if back := mustDecode(t, string(list.Items[1])); !Equal(back[0], objs[1]) {
		t.Errorf("JSON list item did not round trip: %s", list.Items[1])
	}
	if empty, _ := MarshalList(nil, FormatJSON); !strings.Contains(string(empty), `"items": []`) {
		t.Errorf("empty JSON list = %s", empty)
	}
}

func TestMarshalErrors(t *testing.T) {
	o := mustDecode(t, seedYAML)[0]
	if _, err := Marshal(o, "xml"); err == nil {
		t.Error("Marshal accepted format xml")
	}
	if _, err := Marshal(&Object{Kind: "Pod", Meta: Meta{Name: "p"}, Spec: o.Spec}, FormatJSON); err == nil {
		t.Error("Marshal accepted an unknown kind")
	}
	if _, err := Marshal(&Object{Kind: KindVirtualService, Meta: Meta{Name: "p"}}, FormatJSON); err == nil {
		t.Error("Marshal accepted a nil spec")
	}
}

func TestEqual(t *testing.T) {
	base := mustDecode(t, richYAML)[0]
	clone := func(mut func(o *Object)) *Object {
		c := *base
		c.Spec = proto.Clone(base.Spec)
		c.Meta.Labels = map[string]string{}
		for k, v := range base.Meta.Labels {
			c.Meta.Labels[k] = v
		}
		mut(&c)
		return &c
	}
	tests := []struct {
		name string
		o    *Object
		want bool
	}{
		{"identical", clone(func(*Object) {}), true},
		{"server-set metadata", clone(func(o *Object) {
			o.Meta.ResourceVersion, o.Meta.Generation, o.Meta.CreationTimestamp, o.APIVersion = "9", 4, time.Now(), "networking.istio.io/v1"
		}), true},
		{"spec", clone(func(o *Object) { o.Spec.(*networking.VirtualService).Hosts[0] = "other" }), false},
		{"label", clone(func(o *Object) { o.Meta.Labels["app"] = "x" }), false},
		{"annotation", clone(func(o *Object) { o.Meta.Annotations = nil }), false},
		{"name", clone(func(o *Object) { o.Meta.Name = "other" }), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := Equal(base, tt.o); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !Equal(nil, nil) {
		t.Error("Equal(nil, nil) = false")
	}
	noLabels, emptyLabels := clone(func(o *Object) { o.Meta.Labels = nil }), clone(func(o *Object) { o.Meta.Labels = map[string]string{} })
	if !Equal(noLabels, emptyLabels) {
		t.Error("nil and empty labels differ")
	}
}

func TestDecodeList(t *testing.T) {
	objs := mustDecode(t, seedYAML)
	js, err := MarshalList(objs, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	back := mustDecode(t, string(js))
	if len(back) != 2 || !Equal(back[0], objs[0]) || !Equal(back[1], objs[1]) {
		t.Fatalf("JSON List did not decode back: %v", back)
	}
	bad := strings.Replace(string(js), `"weight": 100`, `"weight": 101`, 1)
	_, err = Decode("list.json", strings.NewReader(bad))
	want := "list.json: document 1: VirtualService catalog: items[0].spec.http[0].route[0].weight: must be between 0 and 100, got 101"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}
