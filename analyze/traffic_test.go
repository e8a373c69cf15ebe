package analyze

import (
	"strings"
	"testing"
)

func TestRetryBudget(t *testing.T) {
	vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - timeout: 2s
    retries: {attempts: 3, perTryTimeout: 1s}
    route: [{destination: {host: catalog}}]
  - timeout: 3s
    retries: {attempts: 3, perTryTimeout: 1s}
    route: [{destination: {host: catalog}}]
  - retries: {attempts: 5, perTryTimeout: 1s}
    route: [{destination: {host: catalog}}]
  - timeout: 1s
    retries: {attempts: 0, perTryTimeout: 2s}
    route: [{destination: {host: catalog}}]`
	expect(t, analyzeStrings(t, "coolapp", vs, catalogSE("")),
		"Warning [WEFT0109] VirtualService coolapp/catalog spec.http[0].retries: retries.attempts (3) × perTryTimeout (1s) = 3s is longer than the route timeout (2s); the timeout cuts retries short, so at most 2 attempt(s) can run in full")
}

func TestHashNoEffect(t *testing.T) {
	dr := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog}
spec:
  host: catalog
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    portLevelSettings:
    - port: {number: 80}
      loadBalancer: {consistentHash: {useSourceIp: true}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: s, ttl: 0s}}}}
  - name: v3
    labels: {version: v3}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}`
	// The service has two endpoints (v1, v2): the top level is fine; v1 has one, v3 none.
	expect(t, analyzeStrings(t, "coolapp", dr, catalogSE("")),
		`Info [WEFT0110] DestinationRule coolapp/catalog spec.subsets[0].trafficPolicy.loadBalancer.consistentHash: consistentHash has no effect: subset "v1" of catalog.coolapp.svc.cluster.local has 1 endpoint(s), and hashing only chooses between two or more`,
		`Info [WEFT0106] DestinationRule coolapp/catalog spec.subsets[1]: subset "v3" selects no endpoints of catalog.coolapp.svc.cluster.local (none has labels version=v3); requests routed to it will fail with 503`,
		`Info [WEFT0110] DestinationRule coolapp/catalog spec.subsets[1].trafficPolicy.loadBalancer.consistentHash: consistentHash has no effect: subset "v3" of catalog.coolapp.svc.cluster.local has 0 endpoint(s), and hashing only chooses between two or more`)
	// One endpoint in the whole service: the top-level and port-level settings are reported too.
	oneEP := strings.Replace(catalogSE(""), "\n  - {address: 10.0.0.2, labels: {version: v2}}", "", 1)
	got := analyzeStrings(t, "coolapp", dr, oneEP)
	want := []string{
		`Info [WEFT0110] DestinationRule coolapp/catalog spec.trafficPolicy.loadBalancer.consistentHash: consistentHash has no effect: service catalog.coolapp.svc.cluster.local has 1 endpoint(s), and hashing only chooses between two or more`,
		`Info [WEFT0110] DestinationRule coolapp/catalog spec.trafficPolicy.portLevelSettings[0].loadBalancer.consistentHash: consistentHash has no effect: service catalog.coolapp.svc.cluster.local has 1 endpoint(s), and hashing only chooses between two or more`,
	}
	for _, w := range want {
		if !contains(got, w) {
			t.Errorf("missing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	// DNS services may have more addresses than endpoints: not judged.
	dns := strings.Replace(oneEP, "resolution: STATIC", "resolution: DNS", 1)
	for _, m := range analyzeStrings(t, "coolapp", dr, dns) {
		if strings.Contains(m, "WEFT0110") {
			t.Errorf("DNS service judged: %s", m)
		}
	}
}

func TestIneffectiveFaultAndMirror(t *testing.T) {
	dr := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: catalog}
spec:
  host: catalog
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]`
	vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: catalog}
spec:
  hosts: [catalog]
  http:
  - fault:
      delay: {fixedDelay: 1s, percentage: {value: 0}}
      abort: {httpStatus: 500, percentage: {value: 0.0}}
    route: [{destination: {host: catalog, subset: v1}}]
  - fault:
      abort: {httpStatus: 500}
    mirror: {host: catalog.coolapp.svc.cluster.local, subset: v1}
    route: [{destination: {host: catalog, subset: v1}}]
  - mirror: {host: catalog, subset: v2}
    mirrors:
    - destination: {host: catalog, subset: v1, port: {number: 80}}
    route: [{destination: {host: catalog, subset: v1}}]`
	expect(t, analyzeStrings(t, "coolapp", dr, vs, catalogSE("")),
		"Warning [WEFT0111] VirtualService coolapp/catalog spec.http[0].fault.abort.percentage.value: abort percentage is 0: no request will ever be aborted",
		"Warning [WEFT0111] VirtualService coolapp/catalog spec.http[0].fault.delay.percentage.value: delay percentage is 0 or unset: no request will ever be delayed (set percentage.value)",
		"Warning [WEFT0111] VirtualService coolapp/catalog spec.http[1].mirror: mirror to catalog.coolapp.svc.cluster.local subset v1, which the route already sends its traffic to; every request is handled twice by the same destination",
		"Warning [WEFT0111] VirtualService coolapp/catalog spec.http[2].mirrors[0].destination: mirror to catalog.coolapp.svc.cluster.local subset v1 port 80, which the route already sends its traffic to; every request is handled twice by the same destination")
}

func TestProtocolMismatch(t *testing.T) {
	db := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.coolapp.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}, {number: 8080, name: admin, protocol: HTTP}]
  endpoints: [{address: 10.0.0.9}]`
	vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mixed}
spec:
  hosts: [catalog, db]
  http:
  - route: [{destination: {host: db, port: {number: 5432}}}]
  - route: [{destination: {host: db, port: {number: 8080}}}]
  tcp:
  - match: [{port: 80}, {port: 5432}]
    route: [{destination: {host: db, port: {number: 5432}}}]
  - route: [{destination: {host: db, port: {number: 5432}}}]`
	expect(t, analyzeStrings(t, "coolapp", db, vs, catalogSE("")),
		"Warning [WEFT0112] VirtualService coolapp/mixed spec.http[0].route[0].destination: http route to port 5432 of db.coolapp.svc.cluster.local, which the service declares as TCP; HTTP requests will not be understood there (use a tcp route, or declare the port HTTP)",
		"Warning [WEFT0112] VirtualService coolapp/mixed spec.tcp[0].match[0].port: tcp route on port 80 of catalog.coolapp.svc.cluster.local, which the service declares as HTTP; requests to that port are routed by the http section, so this route never applies",
		"Warning [WEFT0112] VirtualService coolapp/mixed spec.tcp[1]: tcp route for catalog.coolapp.svc.cluster.local, whose ports are all HTTP (80); requests are routed by the http section, so this route never applies")
	// Bound to a Gateway, match ports are the Gateway's: not judged.
	gw := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp}
spec: {servers: [{port: {number: 80, protocol: TCP}, hosts: ["*"]}]}`
	gwVS := strings.Replace(vs, "  hosts: [catalog, db]\n", "  hosts: [catalog, db]\n  gateways: [tcp]\n", 1)
	got := analyzeStrings(t, "coolapp", db, gwVS, gw, catalogSE(""))
	for _, m := range got {
		if strings.Contains(m, "spec.tcp") {
			t.Errorf("gateway-bound tcp route judged: %s", m)
		}
	}
}
