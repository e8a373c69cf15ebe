package config

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// seedYAML is the canonical example from the Istio docs' subset trap.
const seedYAML = `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts:
  - catalog
  http:
  - route:
    - destination:
        host: catalog
        subset: version-v2
      weight: 100
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata:
  creationTimestamp: null
  name: catalog
spec:
  host: catalog
  subsets:
  - labels:
      version: v1
    name: version-v1
  - labels:
      version: v2
    name: version-v2
`

func mustDecode(t *testing.T, in string) []*Object {
	t.Helper()
	objs, err := Decode("test.yaml", strings.NewReader(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return objs
}

func TestDecodeSeed(t *testing.T) {
	objs := mustDecode(t, seedYAML)
	if len(objs) != 2 {
		t.Fatalf("got %d objects, want 2", len(objs))
	}
	wantVS := &networking.VirtualService{
		Hosts: []string{"catalog"},
		Http: []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{{
			Destination: &networking.Destination{Host: "catalog", Subset: "version-v2"}, Weight: 100,
		}}}},
	}
	vs := objs[0]
	if vs.Kind != KindVirtualService || vs.APIVersion != "networking.istio.io/v1alpha3" || vs.Meta.Name != "catalog" || vs.Meta.Namespace != "" {
		t.Errorf("VirtualService header = %+v", vs)
	}
	if !proto.Equal(vs.Spec, wantVS) {
		t.Errorf("VirtualService spec = %v, want %v", vs.Spec, wantVS)
	}
	wantDR := &networking.DestinationRule{Host: "catalog", Subsets: []*networking.Subset{
		{Name: "version-v1", Labels: map[string]string{"version": "v1"}},
		{Name: "version-v2", Labels: map[string]string{"version": "v2"}},
	}}
	if dr := objs[1]; dr.Kind != KindDestinationRule || !proto.Equal(dr.Spec, wantDR) || !dr.Meta.CreationTimestamp.IsZero() {
		t.Errorf("DestinationRule = %+v, spec %v", dr, dr.Spec)
	}
}

func TestDecodeDocuments(t *testing.T) {
	in := "# leading comment\n---\n" + seedYAML + "---\n# only a comment\n---\n\n---\n" +
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: web}\n" +
		"spec: {servers: [{port: {number: 80, protocol: HTTP, name: http}, hosts: ['*']}]}\n---\n"
	objs := mustDecode(t, in)
	var got []string
	for _, o := range objs {
		got = append(got, o.Key().String())
	}
	want := "VirtualService /catalog,DestinationRule /catalog,Gateway web/gw"
	if strings.Join(got, ",") != want {
		t.Errorf("objects = %v, want %s", got, want)
	}
}

func TestDecodeAcceptedForms(t *testing.T) {
	in := `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
  uid: 0b6b9e6c
  resourceVersion: "42"
  generation: 3
  managedFields: [{manager: kubectl}]
  labels: {app: reviews}
  annotations: {note: "x"}
spec:
  host: reviews
  export_to: ["."]
  traffic_policy:
    loadBalancer: {simple: 4}
    connectionPool:
      tcp: {connectTimeout: 250ms, maxConnections: "100"}
      http: {h2UpgradePolicy: UPGRADE}
    outlierDetection:
      consecutive5xxErrors: 7
      interval: 1m
      baseEjectionTime: 1.5s
      maxEjectionPercent: 1e1
status:
  observedGeneration: 3
`
	objs := mustDecode(t, in)
	o := objs[0]
	dr := o.Spec.(*networking.DestinationRule)
	tp := dr.GetTrafficPolicy()
	switch {
	case o.Meta.Namespace != "shop" || o.Meta.Labels["app"] != "reviews" || o.Meta.Annotations["note"] != "x":
		t.Errorf("meta = %+v", o.Meta)
	case o.Meta.ResourceVersion != "" || o.Meta.Generation != 0:
		t.Errorf("server-set metadata kept: %+v", o.Meta)
	case len(dr.GetExportTo()) != 1:
		t.Errorf("snake_case field not decoded: %v", dr)
	case tp.GetLoadBalancer().GetSimple() != networking.LoadBalancerSettings_ROUND_ROBIN:
		t.Errorf("enum by number: %v", tp.GetLoadBalancer())
	case tp.GetConnectionPool().GetTcp().GetConnectTimeout().AsDuration().String() != "250ms":
		t.Errorf("connectTimeout = %v", tp.GetConnectionPool().GetTcp().GetConnectTimeout())
	case tp.GetConnectionPool().GetTcp().GetMaxConnections() != 100:
		t.Errorf("quoted integer: %v", tp.GetConnectionPool().GetTcp())
	case tp.GetOutlierDetection().GetInterval().AsDuration().String() != "1m0s" ||
		tp.GetOutlierDetection().GetBaseEjectionTime().AsDuration().String() != "1.5s":
		t.Errorf("durations = %v", tp.GetOutlierDetection())
	case tp.GetOutlierDetection().GetConsecutive_5XxErrors().GetValue() != 7:
		t.Errorf("wrapper as bare number: %v", tp.GetOutlierDetection())
	case tp.GetOutlierDetection().GetMaxEjectionPercent() != 10:
		t.Errorf("exponent integer: %v", tp.GetOutlierDetection())
	}
}

func TestDecodeErrors(t *testing.T) {
	const vsHead = "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: catalog, namespace: default}\n"
	const okRoute = "spec:\n  hosts: [catalog]\n  http:\n  - route:\n    - destination: {host: catalog}\n"
	tests := []struct {
		name, in string
		field    string // of the first error
		msg      string // substring of the first error's Msg
		kind     Kind
		objName  string
	}{
		{"unknown field", vsHead + "spec:\n  hosts: [catalog]\n  http:\n  - route:\n    - destination: {host: catalog, subsett: v2}\n",
			"spec.http[0].route[0].destination.subsett", `unknown field; did you mean "subset"?`, KindVirtualService, "catalog"},
		{"not a list", vsHead + "spec:\n  hosts: catalog\n  http: [{route: [{destination: {host: catalog}}]}]\n",
			"spec.hosts", `must be a list, got string "catalog"`, KindVirtualService, "catalog"},
		{"number for string", vsHead + "spec:\n  hosts: [catalog]\n  http: [{route: [{destination: {host: catalog, subset: 1.0}}]}]\n",
			"spec.http[0].route[0].destination.subset", "must be a string, got number 1", KindVirtualService, "catalog"},
		{"weight range", vsHead + "spec:\n  hosts: [catalog]\n  http: [{route: [{destination: {host: catalog}, weight: 120}]}]\n",
			"spec.http[0].route[0].weight", "must be between 0 and 100, got 120", KindVirtualService, "catalog"},
		{"int32 overflow", vsHead + "spec:\n  hosts: [catalog]\n  http: [{route: [{destination: {host: catalog}, weight: 3000000000}]}]\n",
			"spec.http[0].route[0].weight", "out of range", KindVirtualService, "catalog"},
		{"negative unsigned", vsHead + "spec:\n  hosts: [catalog]\n  http: [{route: [{destination: {host: catalog, port: {number: -1}}}]}]\n",
			"spec.http[0].route[0].destination.port.number", "must not be negative", KindVirtualService, "catalog"},
		{"bad duration", vsHead + okRoute + "    timeout: soon\n",
			"spec.http[0].timeout", `invalid duration "soon"`, KindVirtualService, "catalog"},
		{"duration as number", vsHead + okRoute + "    timeout: 10\n",
			"spec.http[0].timeout", "must be a duration string", KindVirtualService, "catalog"},
		{"negative duration", vsHead + okRoute + "    timeout: -1s\n",
			"spec.http[0].timeout", "must not be negative", KindVirtualService, "catalog"},
		{"oneof twice", vsHead + okRoute + "    match: [{uri: {exact: /a, prefix: /}}]\n",
			"spec.http[0].match[0].uri.prefix", `cannot be set together with "exact"`, KindVirtualService, "catalog"},
		{"json and proto name", vsHead + "spec:\n  hosts: [catalog]\n  exportTo: [a]\n  export_to: [b]\n  http: [{route: [{destination: {host: catalog}}]}]\n",
			"spec.exportTo", "given twice", KindVirtualService, "catalog"},
		{"bool", vsHead + okRoute + "    match: [{ignoreUriCase: \"yes\"}]\n",
			"spec.http[0].match[0].ignoreUriCase", "must be true or false", KindVirtualService, "catalog"},
		{"wrapper", vsHead + okRoute + "    mirrorPercent: lots\n",
			"spec.http[0].mirrorPercent", "must be an integer", KindVirtualService, "catalog"},
		{"map value", vsHead + okRoute + "    match: [{headers: {x-user: exact}}]\n",
			"spec.http[0].match[0].headers[x-user]", "must be an object", KindVirtualService, "catalog"},
		{"enum", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec: {hosts: [a.com], resolution: MAGIC}\n",
			"spec.resolution", `unknown value "MAGIC"; must be one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS`, KindServiceEntry, "ext"},
		{"unknown kind", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {}\n",
			"kind", `unsupported kind "Service"`, "", ""},
		{"missing kind", "apiVersion: v1\nmetadata: {name: a}\nspec: {}\n", "kind", "required", "", ""},
		{"wrong group", "apiVersion: security.istio.io/v1\nkind: Gateway\nmetadata: {name: a}\nspec: {}\n",
			"apiVersion", "belongs to API group networking.istio.io", KindGateway, "a"},
		{"wrong version", "apiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata: {name: a}\nspec: {}\n",
			"apiVersion", `unsupported version "v2"`, KindGateway, "a"},
		{"missing name", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {namespace: x}\nspec: {}\n",
			"metadata.name", "required", KindGateway, ""},
		{"bad name", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: My_GW}\nspec: {}\n",
			"metadata.name", `"My_GW" is not a valid name`, KindGateway, "My_GW"},
		{"bad namespace", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: a.b}\nspec: {}\n",
			"metadata.namespace", "not a valid namespace", KindGateway, "gw"},
		{"label not string", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, labels: {enabled: yes}}\nspec: {}\n",
			"metadata.labels[enabled]", "must be a string, got boolean true", KindGateway, "gw"},
		{"metadata typo", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namepsace: x}\nspec: {}\n",
			"metadata.namepsace", "unknown field", KindGateway, "gw"},
		{"missing spec", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n",
			"spec", "required", KindGateway, "gw"},
		{"spec not object", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: [1]\n",
			"spec", "must be an object", KindGateway, "gw"},
		{"unknown top-level", "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspecs: {}\nspec: {servers: []}\n",
			"spec.servers", "at least one server", KindGateway, "gw"},
		{"not a mapping", "just a string\n", "", "document must be a mapping", "", ""},
		{"syntax", "kind: [\n", "", "invalid YAML", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode("f.yaml", strings.NewReader("# header\n---\n"+tt.in))
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("err = %v, want an ErrorList", err)
			}
			var found *Error
			for _, e := range list {
				if e.Field == tt.field && strings.Contains(e.Msg, tt.msg) {
					found = e
				}
			}
			if found == nil {
				t.Fatalf("no error at %q containing %q in:\n%v", tt.field, tt.msg, err)
			}
			if found.Source != "f.yaml" || found.Doc != 1 || found.Kind != tt.kind || found.Name != tt.objName {
				t.Errorf("context = %q doc %d %q %q, want f.yaml doc 1 %q %q", found.Source, found.Doc, found.Kind, found.Name, tt.kind, tt.objName)
			}
		})
	}
}

// TestDecodeNames applies Kubernetes' rules: an object name is a DNS-1123
// subdomain (at most 253 characters, no limit per dot-separated part, as
// the API server checks custom resources), a namespace a DNS-1123 label.
func TestDecodeNames(t *testing.T) {
	long := strings.Repeat("a", 75)             // Istio's tunneling tests name a VirtualService so
	part := strings.Repeat("b", 100)            // a part longer than a DNS label
	max := part + "." + part + "." + part[:51]  // 253
	over := part + "." + part + "." + part[:52] // 254
	for name, ok := range map[string]bool{
		long: true, max: true, "a.b-c.d": true, "0a": true, long + ".x": true,
		over: false, "a..b": false, ".a": false, "a.": false, "-a": false, "a-": false, "A": false, "a_b": false, "a.-b": false,
	} {
		_, err := Decode("f.yaml", strings.NewReader("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: "+name+
			"}\nspec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: ['*']}]}\n"))
		if got := err == nil; got != ok {
			t.Errorf("name %q (%d characters): accepted %v, want %v (%v)", name, len(name), got, ok, err)
		}
	}
	for ns, ok := range map[string]bool{strings.Repeat("n", 63): true, strings.Repeat("n", 64): false, "a.b": false} {
		_, err := Decode("f.yaml", strings.NewReader("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: "+ns+
			"}\nspec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: ['*']}]}\n"))
		if got := err == nil; got != ok {
			t.Errorf("namespace %q: accepted %v, want %v (%v)", ns, got, ok, err)
		}
	}
}

func TestDecodeErrorRendering(t *testing.T) {
	in := seedYAML + "---\napiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: catalog, namespace: default}\n" +
		"spec:\n  hosts: [catalog]\n  http: [{route: [{destination: {host: catalog}, weight: 120}]}]\n"
	objs, err := Decode("catalog-vs.yaml", strings.NewReader(in))
	want := "catalog-vs.yaml: document 3: VirtualService default/catalog: spec.http[0].route[0].weight: must be between 0 and 100, got 120"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if len(objs) != 2 {
		t.Errorf("got %d good objects alongside the error, want 2", len(objs))
	}
}

func TestDecodeReportsEveryError(t *testing.T) {
	in := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [a]
  http:
  - route:
    - destination: {hots: a}
      weight: 120
    timeout: 0s
---
apiVersion: networking.istio.io/v1
kind: Nope
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 70000, protocol: HTTP}
    hosts: []
`
	_, err := Decode("-", strings.NewReader(in))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Field)
		if e.Source != "-" {
			t.Errorf("source = %q", e.Source)
		}
	}
	want := []string{
		"spec.http[0].route[0].destination.hots", "spec.http[0].route[0].destination.host",
		"spec.http[0].route[0].weight", "spec.http[0].timeout",
		"kind", "metadata", "spec",
		"spec.servers[0].port.number", "spec.servers[0].hosts",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("fields =\n%v\nwant\n%v\nfull:\n%v", got, want, err)
	}
	if list[4].Doc != 2 || list[7].Doc != 3 {
		t.Errorf("docs = %d, %d; want 2, 3", list[4].Doc, list[5].Doc)
	}
}

func TestDecodeSyntaxErrorLine(t *testing.T) {
	in := seedYAML + "---\nkind: Gateway\nmetadata:\n  name: gw\n bad: indent\n"
	_, err := Decode("f.yaml", strings.NewReader(in))
	// The parser blames the mapping that starts on line 32 of the input,
	// line 2 of its document.
	if err == nil || !strings.Contains(err.Error(), "document 3: invalid YAML: yaml: line 32:") {
		t.Errorf("err = %v, want it to point at line 32", err)
	}
}

func TestErrorListDefaultNamespace(t *testing.T) {
	_, err := Decode("f.yaml", strings.NewReader("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {servers: []}\n"))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatal(err)
	}
	list.DefaultNamespace("default")
	if want := "f.yaml: document 1: Gateway default/gw: spec.servers: at least one server is required"; list.Error() != want {
		t.Errorf("got %q, want %q", list.Error(), want)
	}
}

// TestDecodeObject reads a custom resource as the API server returns it:
// server-set metadata and status are accepted, and a bad spec is refused
// with the field named, as `weft apply` would.
func TestDecodeObject(t *testing.T) {
	good := `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService",
	  "metadata":{"name":"r","namespace":"ns","uid":"u-1","resourceVersion":"42","generation":3,
	    "creationTimestamp":"2025-01-01T00:00:00Z","managedFields":[{"manager":"kubectl"}]},
	  "spec":{"hosts":["r"],"http":[{"route":[{"destination":{"host":"r"}}]}]},
	  "status":{"observedGeneration":2}}`
	o, err := DecodeObject("cluster", []byte(good))
	if err != nil {
		t.Fatalf("DecodeObject: %v", err)
	}
	if o.Key() != (Key{KindVirtualService, "ns", "r"}) || o.Spec.(*networking.VirtualService).GetHosts()[0] != "r" {
		t.Fatalf("decoded %v %v", o.Key(), o.Spec)
	}
	bad := `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"r","namespace":"ns"},
	  "spec":{"hosts":["r"],"http":[{"route":[{"destination":{"host":"r"},"weight":-5}]}]}}`
	_, err = DecodeObject("cluster", []byte(bad))
	var list ErrorList
	if !errors.As(err, &list) || !strings.Contains(err.Error(), "cluster: VirtualService ns/r: spec.http[0].route[0].weight") {
		t.Fatalf("want a field error naming the object, got %v", err)
	}
	for _, in := range []string{`[1]`, `{`, `{"kind":"List","apiVersion":"v1","items":[]}`} {
		if _, err := DecodeObject("cluster", []byte(in)); err == nil {
			t.Errorf("DecodeObject(%s): want an error", in)
		}
	}
}
