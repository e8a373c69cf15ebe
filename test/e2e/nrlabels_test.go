package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestNoRouteLabels: a request no route takes is counted with Istio's
// "unknown" destination service, never with a name and namespace read out
// of the gateway's address or the Host header; routed requests still name
// their service.
func TestNoRouteLabels(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.apply("default", `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [shop.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  gateways: [shop]
  http:
  - route:
    - destination: {host: echo, port: {number: 8080}}
`)
	eventually(t, 30*time.Second, "the gateway routes shop.example.com to echo", func() error {
		code, body, err := get(m.gateway, "shop.example.com", "/", nil)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v %.100q", code, err, body)
		}
		return nil
	})
	// No route: the gateway's own address (what curl sends by default) and
	// a host nobody configured.
	for _, host := range []string{"", "foo.example.com"} {
		if code, body, err := get(m.gateway, host, "/", nil); err != nil || code != 404 {
			t.Fatalf("Host %q: %d %v %.100q, want 404 (NR)", host, code, err, body)
		}
	}

	eventually(t, 20*time.Second, "the NR requests in the control plane's /metrics", func() error {
		b, err := httpGet("http://" + m.api + "/metrics")
		if err != nil {
			return err
		}
		var nr, routed int
		for _, line := range strings.Split(b, "\n") {
			if !strings.HasPrefix(line, "istio_requests_total{") || !strings.Contains(line, `reporter="source"`) {
				continue
			}
			switch {
			case strings.Contains(line, `response_flags="NR"`):
				for _, want := range []string{`destination_service="unknown"`, `destination_service_name="unknown"`, `destination_service_namespace="unknown"`} {
					if !strings.Contains(line, want) {
						t.Fatalf("an NR request is labelled without %s:\n%s", want, line)
					}
				}
				nr++
			case strings.Contains(line, `destination_workload="echo-v1"`):
				for _, want := range []string{`destination_service="echo.default.svc.cluster.local"`, `destination_service_name="echo"`, `destination_service_namespace="default"`} {
					if !strings.Contains(line, want) {
						t.Fatalf("a request routed to echo is labelled without %s:\n%s", want, line)
					}
				}
				routed++
			}
		}
		if nr == 0 || routed == 0 {
			return fmt.Errorf("%d NR and %d routed series so far", nr, routed)
		}
		return nil
	})
}
