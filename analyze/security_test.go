package analyze

import (
	"strings"
	"testing"
)

// dbWorkloads: service db in namespace shop, served by a sidecar instance
// (db-v1, port 9080 behind service port 80) and one without a sidecar.
const dbWorkloads = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.shop.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 9080}]
  workloadSelector: {labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-v1, namespace: shop}
spec: {address: 127.0.0.1, ports: {http: 41000}, serviceAccount: db, labels: {app: db, version: v1, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-legacy, namespace: shop}
spec: {address: 127.0.0.2, labels: {app: db, version: legacy}}`

// only returns the messages with one of the given codes.
func only(msgs []string, codes ...string) []string {
	var out []string
	for _, m := range msgs {
		for _, c := range codes {
			if strings.Contains(m, "["+c+"]") {
				out = append(out, m)
			}
		}
	}
	return out
}

func TestUnknownPrincipal(t *testing.T) {
	ap := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-access, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/shop/sa/db
        - cluster.local/ns/shop/sa/default
        - cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account
        - cluster.local/ns/shop/sa/ghost
        - sleep
        - "*"
        - cluster.local/ns/other/*
    - source: {namespaces: [shop, istio-system, nowhere, "dev-*"]}
    when:
    - {key: source.namespace, values: [gone]}
    - {key: source.principal, values: [cluster.local/ns/shop/sa/db]}`
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, ap), CodeUnknownPrincipal),
		`Warning [WEFT0201] AuthorizationPolicy shop/db-access spec.rules[0].from[0].source.principals[3]: no workload runs as service account ghost in namespace shop, so principal "cluster.local/ns/shop/sa/ghost" matches no caller (yet)`,
		`Warning [WEFT0201] AuthorizationPolicy shop/db-access spec.rules[0].from[0].source.principals[4]: principal "sleep" is not of the form TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT, so no workload has it`,
		`Warning [WEFT0201] AuthorizationPolicy shop/db-access spec.rules[0].from[1].source.namespaces[2]: namespace nowhere has no workloads, so this value matches no caller (yet)`,
		`Warning [WEFT0201] AuthorizationPolicy shop/db-access spec.rules[0].when[0].values[0]: namespace gone has no workloads, so this value matches no caller (yet)`)
}

func TestMTLSConflict(t *testing.T) {
	dr := func(tls string) string {
		return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: shop}
spec:
  host: db
` + tls
	}
	permissive := `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: PERMISSIVE}}`
	strictPort := `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  portLevelMtls: {41000: {mode: STRICT}}`

	disable := dr("  trafficPolicy: {tls: {mode: DISABLE}}\n")
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, disable), CodeMTLSConflict),
		`Error [WEFT0202] DestinationRule shop/db spec.trafficPolicy.tls.mode: tls mode DISABLE sends plaintext to shop/db-v1:41000, which require mutual TLS (PeerAuthentication STRICT); those requests will fail. Use ISTIO_MUTUAL, or leave tls out for automatic mTLS`)
	// PERMISSIVE takes plaintext; a port-level STRICT brings the conflict back.
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, disable, permissive), CodeMTLSConflict))
	if got := only(analyzeStrings(t, "shop", dbWorkloads, disable, permissive, strictPort), CodeMTLSConflict); len(got) != 1 {
		t.Errorf("port-level STRICT: %v", got)
	}
	// Modes that work with STRICT, and a port-level override that fixes it.
	for _, ok := range []string{
		dr("  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n"),
		dr("  trafficPolicy:\n    tls: {mode: DISABLE}\n    portLevelSettings: [{port: {number: 80}, tls: {mode: ISTIO_MUTUAL}}]\n"),
		dr("  subsets: [{name: legacy, labels: {version: legacy}, trafficPolicy: {tls: {mode: DISABLE}}}]\n"),
	} {
		expect(t, only(analyzeStrings(t, "shop", dbWorkloads, ok), CodeMTLSConflict))
	}
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, dr(`  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {portLevelSettings: [{port: {number: 80}, tls: {mode: SIMPLE}}]}
`)), CodeMTLSConflict),
		`Error [WEFT0202] DestinationRule shop/db spec.subsets[0].trafficPolicy.portLevelSettings[0].tls.mode: tls mode SIMPLE sends TLS without the mesh's client certificate to shop/db-v1:41000, which require mutual TLS (PeerAuthentication STRICT); those requests will fail. Use ISTIO_MUTUAL, or leave tls out for automatic mTLS`)
}

func TestUnservedMTLSPort(t *testing.T) {
	pa := func(selector string) string {
		return `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {` + selector + `}}
  portLevelMtls: {80: {mode: DISABLE}, 9080: {mode: DISABLE}, 41000: {mode: DISABLE}, 5432: {mode: PERMISSIVE}}`
	}
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, pa("app: db")), CodeUnservedMTLSPort),
		`Warning [WEFT0203] PeerAuthentication shop/db spec.portLevelMtls[5432]: none of the 2 workloads this policy selects serves port 5432 (they serve 80, 9080, 41000); the setting has no effect`)
	// No workload selected yet: nothing to compare against.
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, pa("app: cache")), CodeUnservedMTLSPort))
}

func TestMemberRolls(t *testing.T) {
	roll := func(ns, members string) string {
		return `apiVersion: maistra.io/v1
kind: ServiceMeshMemberRoll
metadata: {name: default, namespace: ` + ns + `}
spec: {members: [` + members + `]}`
	}
	web := `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: web}
spec: {address: 127.0.0.3}`
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, web, roll("istio-system", "shop")), CodeNonMemberWorkloads, CodeIgnoredMemberRoll),
		`Warning [WEFT0204] ServiceMeshMemberRoll istio-system/default spec.members: namespace web has workloads (web-1) but no member roll lists it: their proxies get no configuration and no certificate, and STRICT workloads refuse their traffic`)
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, web, roll("istio-system", "shop, web")), CodeNonMemberWorkloads, CodeIgnoredMemberRoll))
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, web, roll("istio-system", "'*'")), CodeNonMemberWorkloads, CodeIgnoredMemberRoll))
	expect(t, only(analyzeStrings(t, "shop", dbWorkloads, web, roll("shop", "shop")), CodeNonMemberWorkloads, CodeIgnoredMemberRoll),
		`Warning [WEFT0205] ServiceMeshMemberRoll shop/default: a ServiceMeshMemberRoll takes effect only in the root namespace istio-system; this one is ignored`)
}

// TestPodsAreWorkloads: in Kubernetes mode pods are the inline endpoints
// of their Services' ServiceEntries, naming their workload; policies see
// them as workloads (principals, member rolls), once per workload.
func TestPodsAreWorkloads(t *testing.T) {
	pods := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: bookinfo, annotations: {weft.io/origin: kubernetes}}
spec:
  hosts: [reviews.bookinfo.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http}]
  endpoints:
  - {address: 10.244.0.5, serviceAccount: bookinfo-reviews, labels: {app: reviews, weft.io/workload: reviews-v1}}
  - {address: 10.244.0.6, serviceAccount: bookinfo-reviews, labels: {app: reviews, weft.io/workload: reviews-v1}}
  - {address: 192.0.2.1}`
	ap := `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a, namespace: bookinfo}
spec:
  rules:
  - from:
    - source: {principals: [cluster.local/ns/bookinfo/sa/bookinfo-reviews, cluster.local/ns/bookinfo/sa/ghost]}`
	expect(t, only(analyzeStrings(t, "bookinfo", pods, ap), CodeUnknownPrincipal),
		`Warning [WEFT0201] AuthorizationPolicy bookinfo/a spec.rules[0].from[0].source.principals[1]: no workload runs as service account ghost in namespace bookinfo, so principal "cluster.local/ns/bookinfo/sa/ghost" matches no caller (yet)`)
	roll := `apiVersion: maistra.io/v1
kind: ServiceMeshMemberRoll
metadata: {name: default, namespace: istio-system}
spec: {members: [shop]}`
	expect(t, only(analyzeStrings(t, "bookinfo", pods, roll), CodeNonMemberWorkloads),
		`Warning [WEFT0204] ServiceMeshMemberRoll istio-system/default spec.members: namespace bookinfo has workloads (reviews-v1) but no member roll lists it: their proxies get no configuration and no certificate, and STRICT workloads refuse their traffic`)
}
