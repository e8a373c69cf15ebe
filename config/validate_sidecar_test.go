package config

import "testing"

func TestSidecarValidation(t *testing.T) {
	if info, ok := LookupKind("sidecars"); !ok || info.Kind != KindSidecar || info.PreferredAPIVersion() != "networking.istio.io/v1" {
		t.Fatalf("LookupKind(sidecars) = %+v, %v", info, ok)
	}
	for _, spec := range []string{
		"  egress:\n  - hosts: [\"./*\", \"istio-system/*\"]\n",
		"  workloadSelector: {labels: {app: reviews}}\n  egress:\n  - hosts: [\"bookinfo/ratings.bookinfo.svc.cluster.local\", \"*/*.example.com\", \"~/*\"]\n",
		"  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
	} {
		if errs := decodeSpec(t, KindSidecar, spec); len(errs) > 0 {
			t.Errorf("valid Sidecar %q refused: %v", spec, errs)
		}
	}
	for _, tc := range []struct{ spec, field, msg string }{
		{"  workloadSelector: {labels: {app: reviews}}\n", "spec", "empty Sidecar"},
		{"  egress:\n  - hosts: [reviews]\n", "spec.egress[0].hosts[0]", "NAMESPACE/HOST"},
		{"  egress:\n  - hosts: [\"Bad_NS/*\"]\n", "spec.egress[0].hosts[0]", "namespace part"},
		{"  egress:\n  - hosts: [\"./bad host\"]\n", "spec.egress[0].hosts[0]", "invalid egress host"},
		{"  egress:\n  - {}\n", "spec.egress[0].hosts", "at least one host"},
		{"  egress:\n  - port: {number: 80, protocol: HTTP, name: http}\n    hosts: [\"./*\"]\n", "spec.egress[0].port", "not supported"},
		{"  ingress:\n  - port: {number: 80, protocol: HTTP, name: http}\n    defaultEndpoint: 127.0.0.1:8080\n", "spec.ingress", "not supported"},
		{"  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress}}\n", "spec.outboundTrafficPolicy.egressProxy", "not supported"},
		{"  workloadSelector: {labels: {app: \"a*\"}}\n  egress: [{hosts: [\"./*\"]}]\n", "spec.workloadSelector.labels[app]", "wildcards"},
	} {
		expectErrorAt(t, decodeSpec(t, KindSidecar, tc.spec), KindSidecar, tc.field, tc.msg)
	}
}

func TestExportToValidation(t *testing.T) {
	for _, spec := range []string{
		"  hosts: [reviews]\n  exportTo: [\".\", bookinfo]\n  http: [{route: [{destination: {host: reviews}}]}]\n",
		"  hosts: [reviews]\n  exportTo: [\"*\"]\n  http: [{route: [{destination: {host: reviews}}]}]\n",
		"  hosts: [reviews]\n  exportTo: [\"~\"]\n  http: [{route: [{destination: {host: reviews}}]}]\n",
	} {
		if errs := decodeSpec(t, KindVirtualService, spec); len(errs) > 0 {
			t.Errorf("valid exportTo %q refused: %v", spec, errs)
		}
	}
	expectErrorAt(t, decodeSpec(t, KindVirtualService, "  hosts: [reviews]\n  exportTo: [\"~\", \".\"]\n  http: [{route: [{destination: {host: reviews}}]}]\n"),
		KindVirtualService, "spec.exportTo[0]", "cannot be combined")
	expectErrorAt(t, decodeSpec(t, KindDestinationRule, "  host: reviews\n  exportTo: [Not_A_Namespace]\n"),
		KindDestinationRule, "spec.exportTo[0]", "invalid namespace")
	expectErrorAt(t, decodeSpec(t, KindServiceEntry, "  hosts: [api.example.com]\n  exportTo: [\"a/b\"]\n  ports: [{number: 443, name: https, protocol: HTTPS}]\n"),
		KindServiceEntry, "spec.exportTo[0]", "invalid namespace")
}
