package analyze

import (
	"fmt"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// snapshot decodes YAML documents, fills the namespace as the CLI does, and
// builds a model from them.
func snapshot(t *testing.T, ns string, docs ...string) *model.Snapshot {
	t.Helper()
	objs, err := config.Decode("test.yaml", strings.NewReader(strings.Join(docs, "\n---\n")))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	for _, o := range objs {
		if o.Meta.Namespace == "" {
			o.Meta.Namespace = ns
		}
	}
	return model.Build(1, objs)
}

func analyzeStrings(t *testing.T, ns string, docs ...string) []string {
	t.Helper()
	var out []string
	for _, m := range Analyze(snapshot(t, ns, docs...)) {
		out = append(out, m.String())
	}
	return out
}

const seedVS = `apiVersion: networking.istio.io/v1alpha3
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
      weight: 100`

const seedDR = `apiVersion: networking.istio.io/v1alpha3
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
    name: version-v2`

const drV1Only = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog}
spec:
  host: catalog
  subsets: [{name: version-v1, labels: {version: v1}}]`

// catalogSE defines catalog with one v1 endpoint and, optionally, more ports.
func catalogSE(extraPorts string) string {
	return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: catalog}
spec:
  hosts: [catalog.coolapp.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}` + extraPorts + `]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}`
}

func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSeed(t *testing.T) {
	// The subset exists; only the missing ServiceEntry is worth a word.
	expect(t, analyzeStrings(t, "coolapp", seedVS, seedDR),
		"Warning [WEFT0102] VirtualService coolapp/catalog spec.http[0].route[0].destination.host: host \"catalog\" (catalog.coolapp.svc.cluster.local) is not defined by any ServiceEntry; requests to it will fail with 503")
	expect(t, analyzeStrings(t, "coolapp", seedVS, seedDR, catalogSE("")))
}

func TestUndefinedSubset(t *testing.T) {
	expect(t, analyzeStrings(t, "coolapp", seedVS, catalogSE("")),
		`Warning [WEFT0101] VirtualService coolapp/catalog spec.http[0].route[0].destination.subset: subset "version-v2" is not defined by any DestinationRule for host catalog.coolapp.svc.cluster.local; requests will fail with 503`)
	expect(t, analyzeStrings(t, "coolapp", seedVS, drV1Only, catalogSE("")),
		`Warning [WEFT0101] VirtualService coolapp/catalog spec.http[0].route[0].destination.subset: subset "version-v2" is not defined by DestinationRule coolapp/catalog, which applies to host catalog.coolapp.svc.cluster.local; requests will fail with 503`)
	// A rule in another namespace applies when the client's has none.
	otherNS := strings.Replace(seedDR, "name: catalog\nspec:\n  host: catalog", "name: catalog\n  namespace: infra\nspec:\n  host: catalog.coolapp.svc.cluster.local", 1)
	expect(t, analyzeStrings(t, "coolapp", seedVS, otherNS, catalogSE("")))
}

func TestUnknownHost(t *testing.T) {
	vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext}
spec:
  hosts: [ext]
  http:
  - route: [{destination: {host: api.example.com}}]
    mirror: {host: en.wiki.org}
  tcp:
  - route: [{destination: {host: db.prod}}]`
	wildcard := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wiki}
spec: {hosts: ["*.wiki.org"], resolution: NONE, ports: [{number: 80, name: http, protocol: HTTP}]}`
	expect(t, analyzeStrings(t, "ns", vs, wildcard),
		"Warning [WEFT0102] VirtualService ns/ext spec.http[0].route[0].destination.host: host api.example.com is not defined by any ServiceEntry; requests to it will fail with 503",
		"Warning [WEFT0102] VirtualService ns/ext spec.tcp[0].route[0].destination.host: host db.prod is not defined by any ServiceEntry; requests to it will fail with 503")
}

func TestWeights(t *testing.T) {
	vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - route:
    - {destination: {host: catalog}, weight: 60}
    - {destination: {host: catalog}, weight: 30}
  - route:
    - {destination: {host: catalog}, weight: 50}
  - route:
    - {destination: {host: catalog}}
  - route:
    - {destination: {host: catalog}, weight: 100}
  - route:
    - {destination: {host: catalog}, weight: 70}
    - {destination: {host: catalog}, weight: 30}`
	expect(t, analyzeStrings(t, "coolapp", vs, catalogSE("")),
		"Warning [WEFT0103] VirtualService coolapp/catalog spec.http[0].route: weights of 2 destinations sum to 90, not 100; traffic will not be split as the weights suggest",
		"Warning [WEFT0103] VirtualService coolapp/catalog spec.http[1].route: weights of 1 destinations sum to 50, not 100; traffic will not be split as the weights suggest")
}

func TestConflictingVirtualServices(t *testing.T) {
	vs := func(name, host, gateways string) string {
		return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ` + name + `}
spec:
  hosts: [` + host + `]
  gateways: ` + gateways + `
  http: [{route: [{destination: {host: catalog}}]}]`
	}
	gw := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web}
spec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: ["*"]}]}`
	got := analyzeStrings(t, "coolapp", catalogSE(""), gw,
		vs("a", "catalog", "[]"), vs("b", "catalog.coolapp.svc.cluster.local", "[mesh]"),
		vs("c", "shop.example.com", "[web]"), vs("d", "shop.example.com", "[coolapp/web]"),
		vs("e", "shop.example.com", "[mesh]"))
	expect(t, got,
		"Warning [WEFT0104] VirtualService coolapp/a spec.hosts[0]: host catalog.coolapp.svc.cluster.local on gateway mesh is also routed by VirtualService coolapp/b; only one VirtualService per host and gateway is applied predictably",
		"Warning [WEFT0104] VirtualService coolapp/b spec.hosts[0]: host catalog.coolapp.svc.cluster.local on gateway mesh is also routed by VirtualService coolapp/a; only one VirtualService per host and gateway is applied predictably",
		"Warning [WEFT0104] VirtualService coolapp/c spec.hosts[0]: host shop.example.com on gateway coolapp/web is also routed by VirtualService coolapp/d; only one VirtualService per host and gateway is applied predictably",
		"Warning [WEFT0104] VirtualService coolapp/d spec.hosts[0]: host shop.example.com on gateway coolapp/web is also routed by VirtualService coolapp/c; only one VirtualService per host and gateway is applied predictably")
}

func TestUnknownGateway(t *testing.T) {
	vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  gateways: [mesh, web, istio-system/ingress, coolapp/web]
  http:
  - match: [{gateways: [nope]}]
    route: [{destination: {host: catalog}}]`
	gw := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: ["*"]}]}`
	expect(t, analyzeStrings(t, "coolapp", vs, gw, catalogSE("")),
		"Error [WEFT0105] VirtualService coolapp/catalog spec.gateways[1]: gateway coolapp/web does not exist; routes bound to it are not served by any gateway",
		"Error [WEFT0105] VirtualService coolapp/catalog spec.gateways[3]: gateway coolapp/web does not exist; routes bound to it are not served by any gateway",
		"Error [WEFT0105] VirtualService coolapp/catalog spec.http[0].match[0].gateways[0]: gateway coolapp/nope does not exist; routes bound to it are not served by any gateway")
}

func TestEmptySubset(t *testing.T) {
	dr := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog}
spec:
  host: catalog
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v3, labels: {version: v3, track: stable}}`
	expect(t, analyzeStrings(t, "coolapp", dr, catalogSE("")),
		`Info [WEFT0106] DestinationRule coolapp/catalog spec.subsets[1]: subset "v3" selects no endpoints of catalog.coolapp.svc.cluster.local (none has labels track=stable,version=v3); requests routed to it will fail with 503`)
	// Without a known service there is nothing to select from, and nothing to say.
	expect(t, analyzeStrings(t, "coolapp", dr))
}

func TestDestinationPort(t *testing.T) {
	vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - route: [{destination: {host: catalog}}]
  - route: [{destination: {host: catalog, port: {number: 8080}}}]
  - route: [{destination: {host: catalog, port: {number: 9090}}}]`
	expect(t, analyzeStrings(t, "coolapp", vs, catalogSE(", {number: 9090, name: grpc, protocol: GRPC}")),
		"Warning [WEFT0107] VirtualService coolapp/catalog spec.http[0].route[0].destination: service catalog.coolapp.svc.cluster.local has several ports (80, 9090); set port.number to say which one this destination means",
		"Warning [WEFT0107] VirtualService coolapp/catalog spec.http[1].route[0].destination.port.number: port 8080 is not a port of service catalog.coolapp.svc.cluster.local (ports: 80, 9090); requests will fail with 503")
	// With a single port, leaving it out is fine.
	expect(t, analyzeStrings(t, "coolapp", strings.Replace(vs, "port: {number: 9090}", "port: {number: 80}", 1), catalogSE("")),
		"Warning [WEFT0107] VirtualService coolapp/catalog spec.http[1].route[0].destination.port.number: port 8080 is not a port of service catalog.coolapp.svc.cluster.local (ports: 80); requests will fail with 503")
}

func TestDuplicateServiceEntryHost(t *testing.T) {
	other := strings.Replace(catalogSE(""), "name: catalog", "name: catalog-copy", 1)
	expect(t, analyzeStrings(t, "coolapp", catalogSE(""), other),
		"Warning [WEFT0108] ServiceEntry coolapp/catalog-copy spec.hosts[0]: host catalog.coolapp.svc.cluster.local is already defined by ServiceEntry coolapp/catalog; this entry is ignored for it")
}

func TestMessageOrderIsDeterministic(t *testing.T) {
	var docs []string
	for _, n := range []string{"b", "a", "c"} {
		docs = append(docs, strings.Replace(seedVS, "name: catalog\n", "name: "+n+"\n", 1))
	}
	want := analyzeStrings(t, "coolapp", docs...)
	if len(want) != 9 || !strings.Contains(want[0], "coolapp/a ") || !strings.Contains(want[8], "coolapp/c ") {
		t.Fatalf("unexpected messages:\n%s", strings.Join(want, "\n"))
	}
	for i := 0; i < 20; i++ {
		expect(t, analyzeStrings(t, "coolapp", docs...), want...)
	}
}

func TestNaturalLess(t *testing.T) {
	if !naturalLess("spec.http[2].route", "spec.http[10].route") || naturalLess("spec.http[10]", "spec.http[2]") {
		t.Error("indexes not compared as numbers")
	}
	if !naturalLess("spec.hosts[0]", "spec.http[0]") {
		t.Error("names not compared as text")
	}
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		l, min Level
		want   bool
	}{
		{Error, Warning, true}, {Warning, Warning, true}, {Info, Warning, false},
		{Warning, Error, false}, {Info, Info, true}, {Level("Bogus"), Info, false},
	} {
		if got := tc.l.AtLeast(tc.min); got != tc.want {
			t.Errorf("%s.AtLeast(%s) = %v", tc.l, tc.min, got)
		}
	}
	for in, want := range map[string]Level{"info": Info, "Warn": Warning, "WARNING": Warning, "error": Error} {
		if got, err := ParseLevel(in); got != want || err != nil {
			t.Errorf("ParseLevel(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("fatal"); err == nil {
		t.Error("ParseLevel(fatal): no error")
	}
}

// TestEveryCodeNamed: the status writer needs a name for every code.
func TestEveryCodeNamed(t *testing.T) {
	for _, code := range []string{CodeInvalidObject, CodeShadowedServiceEntry, CodeUndefinedSubset, CodeUnknownHost, CodeWeightSum,
		CodeConflictingRoutes, CodeUnknownGateway, CodeEmptySubset, CodeUnknownPort, CodeDuplicateHost, CodeRetryBudget,
		CodeHashNoEffect, CodeIneffectiveFault, CodeProtocolMismatch, CodeUnknownPrincipal, CodeMTLSConflict,
		CodeUnservedMTLSPort, CodeNonMemberWorkloads, CodeIgnoredMemberRoll} {
		if Name(code) == "" {
			t.Errorf("code %s has no name", code)
		}
	}
}

// TestConflictsNameAFewAndCountTheRest: n VirtualServices for one host get
// one WEFT0104 each, naming three of the others and counting the rest, so
// the analysis grows with n, not n² (issue 14: 10,000 of them made 1.89 GB
// of messages).
func TestConflictsNameAFewAndCountTheRest(t *testing.T) {
	const n = 200
	var objs []*config.Object
	for i := range n {
		o, err := config.Decode("vs.yaml", strings.NewReader(fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs-%03d, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]`, i)))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	total, count := 0, 0
	for _, m := range Analyze(model.Build(1, objs)) {
		if m.Code != CodeConflictingRoutes {
			continue
		}
		count++
		total += len(m.Text)
		var named []string
		for i := 0; len(named) < 3; i++ {
			if name := fmt.Sprintf("vs-%03d", i); name != m.Object.Name {
				named = append(named, "default/"+name)
			}
		}
		want := "is also routed by VirtualService " + strings.Join(named, ", ") + " and 196 more;"
		if !strings.Contains(m.Text, want) {
			t.Fatalf("%s: %q\nwant it to contain %q", m.Object, m.Text, want)
		}
	}
	if count != n {
		t.Errorf("%d WEFT0104 messages, want one per VirtualService (%d)", count, n)
	}
	if total > 250*n {
		t.Errorf("WEFT0104 texts total %d bytes for %d VirtualServices; want at most 250 each", total, n)
	}
}
