package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const waitGateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wait-gateway}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
`

func waitVS(rev int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wait-probe}
spec:
  hosts: ['*']
  gateways: [wait-gateway]
  http:
  - directResponse:
      status: 200
      body: {string: "rev-%d"}
`, rev)
}

// Item 11: after `weft apply --wait` returns, every proxy serves the new
// configuration: no request gets a stale answer. The same for delete.
func TestApplyWaitLeavesNoStaleAnswer(t *testing.T) {
	m := upMesh(t, "")
	// Two sidecars connected besides the gateway: the wait covers them all.
	m.echo("default", "echo", "v1")
	m.echo("default", "echo", "v2")
	eventually(t, 30*time.Second, "both sidecars connected", func() error {
		var r struct{ Proxies []struct{ Connected bool } }
		if err := jsonGet("http://"+m.api+"/api/v1/proxies", &r); err != nil {
			return err
		}
		if len(r.Proxies) < 3 {
			return fmt.Errorf("%d proxies", len(r.Proxies))
		}
		return nil
	})
	inEffect := regexp.MustCompile(`revision (\d+) in effect: (\d+) proxies ACKed it`)
	for rev := 0; rev <= 10; rev++ {
		src := waitVS(rev)
		if rev == 0 {
			src = waitGateway + "---\n" + src
		}
		out, code := m.weft(src, "apply", "--wait", "--timeout", "30s", "-f", "-")
		mm := inEffect.FindStringSubmatch(out)
		if code != 0 || mm == nil {
			t.Fatalf("apply --wait (rev-%d): exit %d\n%s", rev, code, out)
		}
		if n, _ := strconv.Atoi(mm[2]); n < 3 {
			t.Errorf("apply --wait counted %d proxies, want the gateway and both sidecars:\n%s", n, out)
		}
		want := fmt.Sprintf("rev-%d", rev)
		for i := 0; i < 20; i++ {
			code, body, err := get(m.gateway, "", "/", nil)
			if err != nil || code != 200 || body != want {
				t.Fatalf("request %d right after apply --wait returned: %d %q %v, want 200 %q", i, code, body, err, want)
			}
		}
	}
	out, code := m.weft("", "delete", "virtualservice", "wait-probe", "--wait")
	if code != 0 || !strings.Contains(out, "in effect") {
		t.Fatalf("delete --wait: %d\n%s", code, out)
	}
	for i := 0; i < 20; i++ {
		if code, body, err := get(m.gateway, "", "/", nil); err != nil || code != 404 {
			t.Fatalf("request %d right after delete --wait: %d %q %v, want 404 (no route)", i, code, body, err)
		}
	}
	// The API says the same for the current revision.
	var sync struct {
		Revision int64
		Synced   bool
	}
	if err := jsonGet("http://"+m.api+"/api/v1/sync", &sync); err != nil || !sync.Synced || sync.Revision == 0 {
		t.Errorf("GET /api/v1/sync: %+v %v", sync, err)
	}
}
