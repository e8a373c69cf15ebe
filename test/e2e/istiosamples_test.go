package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestIstioConfigAccepted applies Istio's tunneling test configuration
// (config/testdata/istio): names longer than 63 characters and
// DestinationRule subsets without labels are valid Istio, so weft takes
// them; an EnvoyFilter is refused with what to use instead.
func TestIstioConfigAccepted(t *testing.T) {
	m := upMesh(t, "")
	// weft runs in the mesh's folder: give it absolute paths.
	testdata, err := filepath.Abs("../../config/testdata/istio")
	if err != nil {
		t.Fatal(err)
	}
	dir := testdata + "/tests/integration/pilot/testdata/tunneling/"
	args := []string{"apply", "-n", "default"}
	for _, f := range []string{"destination-rule.yaml", "gateway/tcp/gateway.yaml", "gateway/tcp/virtual-service.yaml", "sidecar/virtual-service.yaml"} {
		args = append(args, "-f", dir+f)
	}
	if out, code := m.weft("", append(args, "--dry-run")...); code != 0 {
		t.Fatalf("weft apply --dry-run of Istio's tunneling config: exit %d\n%s", code, out)
	}
	if out, code := m.weft("", args...); code != 0 {
		t.Fatalf("weft apply of Istio's tunneling config: exit %d\n%s", code, out)
	}
	const long = "egress-gw-route-outbound-traffic-to-external-svc-via-external-forward-proxy" // 75 characters
	if out, code := m.weft("", "get", "virtualservice", long); code != 0 || !strings.Contains(out, long) {
		t.Errorf("weft get virtualservice %s: exit %d\n%s", long, code, out)
	}
	out, code := m.weft("", "get", "destinationrule", "tunnel-outbound-traffic-to-external-svc-via-external-forward-proxy", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "name: external-svc-tcp") || strings.Contains(out, "labels:") {
		t.Errorf("the label-less subsets were not stored as written: exit %d\n%s", code, out)
	}

	out, code = m.weft("", "apply", "--dry-run", "-f", testdata+"/samples/ratelimit/local-rate-limit-service.yaml")
	if code == 0 || !strings.Contains(out, "EnvoyFilter is not supported") || !strings.Contains(out, "RateLimit (weft.io/v1alpha1") {
		t.Errorf("EnvoyFilter with a local rate limit: exit %d, want a refusal pointing to RateLimit:\n%s", code, out)
	}
}
