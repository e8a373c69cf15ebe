package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestBadInputRefused: invalid YAML is refused whole, naming the file,
// document, object and field, and the mesh keeps its last good config.
func TestBadInputRefused(t *testing.T) {
	m := upMesh(t, "coolapp")
	eventually(t, 60*time.Second, "demo answers", func() error {
		_, err := tally(m.gateway, 5)
		return err
	})
	m.apply("coolapp", drV1V2)
	m.apply("coolapp", splitVS(100, 0))
	expectOnly(t, m, "v1")

	cases := []struct{ name, yaml, want string }{
		// One VirtualService, refused for its weight alone (not also for
		// being given twice in the request).
		{"weight out of range", strings.Replace(splitVS(0, 100), "weight: 0", "weight: 120", 1), "spec.http[0].route[0].weight: must be between 0 and 100, got 120"},
		{"unknown field", strings.Replace(splitVS(0, 100), "hosts:", "hostz:", 1), "hostz"},
		{"bad regex", `apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - match:
    - uri: {regex: "/api/(v1"}
    route:
    - destination: {host: catalog, subset: version-v2}
`, "spec.http[0].match[0].uri.regex"},
		{"bad duration", `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - timeout: 5 seconds
    route:
    - destination: {host: catalog, subset: version-v2}
`, "spec.http[0].timeout"},
		{"unknown kind", "apiVersion: networking.istio.io/v1\nkind: VirtualServis\nmetadata: {name: x}\nspec: {}\n", "VirtualServis"},
		{"missing host", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: catalog}\nspec:\n  subsets: [{name: a, labels: {version: v2}}]\n", "spec.host"},
	}
	for _, tc := range cases {
		// A good document first: the whole apply must still be refused.
		out, code := m.weft(drV1V2+"---\n"+tc.yaml, "apply", "-n", "coolapp", "-f", "-")
		if code == 0 {
			t.Errorf("%s: apply succeeded, want refusal:\n%s", tc.name, out)
			continue
		}
		if !strings.Contains(out, tc.want) || !strings.Contains(out, "document") {
			t.Errorf("%s: error should name the document and %q, got:\n%s", tc.name, tc.want, out)
		}
		if strings.Contains(out, "more than once") {
			t.Errorf("%s: refused for another reason too, got:\n%s", tc.name, out)
		}
	}
	// Nothing changed: still all v1.
	c, err := tally(m.gateway, 50)
	if err != nil || c["v1"] != 50 {
		t.Fatalf("after refused applies want all v1, got %v %v", c, err)
	}
}

// TestStrictApply: --strict refuses an apply analysis warns about.
func TestStrictApply(t *testing.T) {
	m := upMesh(t, "")
	out, code := m.weft(splitVS(50, 50), "apply", "--strict", "-n", "coolapp", "-f", "-")
	if code == 0 || !strings.Contains(out, "WEFT01") {
		t.Fatalf("strict apply of a VirtualService to undefined subsets: want refusal with a WEFT code, got %d:\n%s", code, out)
	}
	out, _ = m.weft("", "get", "virtualservices", "-n", "coolapp")
	if strings.Contains(out, "catalog") {
		t.Fatalf("strict refusal must store nothing, got:\n%s", out)
	}
}
