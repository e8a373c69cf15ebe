package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weft-mesh/weft/internal/testnet"
)

// edgeGateway is the ingress gateway's Gateway "edge": plain HTTP on port
// 80 for every host, followed by the document separator.
const edgeGateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
`

// edge routes everything on the gateway to the echo service, with the
// HTTPRoute fields given (indented YAML under the route).
func edge(routeFields string) string {
	return edgeGateway + `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo-edge}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - route:
    - destination: {host: echo}
` + routeFields
}

var echoLine = regexp.MustCompile(`^echo (v\d) from '([^']+)': \d+$`)

// instanceOf returns the echo instance that answered, or "".
func instanceOf(body string) string {
	if m := echoLine.FindStringSubmatch(body); m != nil {
		return m[2]
	}
	return ""
}

// waitServing waits until the gateway answers 200 from echo.
func waitServing(t *testing.T, m *mesh, want int) {
	t.Helper()
	eventually(t, 60*time.Second, "echo answers through the gateway", func() error {
		seen := map[string]bool{}
		for i := 0; i < 4*want; i++ {
			code, body, err := get(m.gateway, "", "/", nil)
			if err != nil {
				return err
			}
			if code == 200 {
				seen[instanceOf(body)] = true
			}
		}
		if len(seen) < want {
			return fmt.Errorf("saw %d instances, want %d", len(seen), want)
		}
		return nil
	})
}

func TestRetryHidesFlakyInstance(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.echo("default", "echo", "v2", "ECHO_FAIL=503", "ECHO_FAIL_EVERY=2")
	m.apply("default", edge("    retries: {attempts: 0}\n"))
	// Both instances registered (a 503 before that is the gateway's "no
	// healthy upstream", not the flaky instance's).
	waitServing(t, m, 2)
	// Without retries the flaky instance shows through.
	eventually(t, 60*time.Second, "failures visible without retries", func() error {
		for i := 0; i < 40; i++ {
			if code, _, err := get(m.gateway, "", "/", nil); err == nil && code == 503 {
				return nil
			}
		}
		return fmt.Errorf("no 503 seen")
	})
	m.apply("default", edge("    retries: {attempts: 3, retryOn: 5xx}\n"))
	m.gatewayConfigHas("routes", `"retry_on": "5xx"`, `"num_retries": 3`)
	for i := 0; i < 300; i++ {
		code, body, err := get(m.gateway, "", "/", nil)
		if err != nil || code != 200 {
			t.Fatalf("request %d with retries: %d %q %v", i, code, body, err)
		}
	}
}

func TestOutlierDetectionEjectsAndReturns(t *testing.T) {
	m := upMesh(t, "")
	m.apply("default", permissive) // the test steers instances directly
	m.echo("default", "echo", "v1")
	m.echo("default", "echo", "v2")
	m.apply("default", edge("    retries: {attempts: 0}\n")+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 2s
      maxEjectionPercent: 100
`)
	waitServing(t, m, 2)
	bad := m.inbound("default", "echo", "v2")
	control(t, bad, "fail=503")
	// A few failures reach the client, then v2 is ejected: every answer
	// comes from v1.
	eventually(t, 30*time.Second, "failing instance ejected", func() error {
		for i := 0; i < 30; i++ {
			code, body, err := get(m.gateway, "", "/", nil)
			if err != nil {
				return err
			}
			if code != 200 || !strings.Contains(body, "echo v1") {
				return fmt.Errorf("request %d: %d %q", i, code, body)
			}
		}
		return nil
	})
	control(t, bad, "fail=0")
	eventually(t, 30*time.Second, "healed instance back in rotation", func() error {
		for i := 0; i < 20; i++ {
			_, body, err := get(m.gateway, "", "/", nil)
			if err != nil {
				return err
			}
			if strings.Contains(body, "echo v2") {
				return nil
			}
		}
		return fmt.Errorf("v2 not seen")
	})
}

// control changes an echo instance's behaviour through its sidecar.
func control(t *testing.T, addr, query string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/control?"+query, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("control %s: %d", query, resp.StatusCode)
	}
}

func TestCircuitBreakerOverflow(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.apply("default", edge("    retries: {attempts: 0}\n")+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
`)
	waitServing(t, m, 1)
	// Four slow requests at once: one in service, one pending, the rest
	// overflow and are answered by the proxy itself.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	overloaded := 0
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://"+m.gateway+"/delay/2s", nil)
			resp, err := client.Do(req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				codes[0]++
				return
			}
			resp.Body.Close()
			codes[resp.StatusCode]++
			if resp.Header.Get("x-envoy-overloaded") == "true" {
				overloaded++
			}
		}()
	}
	wg.Wait()
	if codes[503] == 0 || codes[200] == 0 || overloaded != codes[503] {
		t.Fatalf("want some 200s and some 503 overflows marked x-envoy-overloaded, got codes %v (%d overloaded)", codes, overloaded)
	}
}

func TestConsistentHashAffinity(t *testing.T) {
	m := upMesh(t, "")
	for _, v := range []string{"v1", "v2", "v3"} {
		m.echo("default", "echo", v)
	}
	m.apply("default", edge("")+`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: affinity, ttl: 3600s}
`)
	waitServing(t, m, 3) // all three: an instance joining later would move keys
	// The first answer sets the cookie; with it every request sticks.
	var cookie string
	eventually(t, 10*time.Second, "Set-Cookie for session affinity", func() error {
		resp, err := client.Get("http://" + m.gateway + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == "affinity" {
				cookie = c.Name + "=" + c.Value
				return nil
			}
		}
		return fmt.Errorf("no affinity cookie in %v", resp.Header)
	})
	seen := map[string]int{}
	for i := 0; i < 50; i++ {
		_, body, err := get(m.gateway, "", "/", map[string]string{"Cookie": cookie})
		if err != nil {
			t.Fatal(err)
		}
		seen[instanceOf(body)]++
	}
	if len(seen) != 1 {
		t.Fatalf("cookie %s should pin one instance, got %v", cookie, seen)
	}

	// A header hash: each user sticks to one instance; users spread.
	m.apply("default", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
`)
	m.gatewayConfigHas("routes", `"header_name": "x-user"`)
	all := map[string]bool{}
	for u := 0; u < 12; u++ {
		user := map[string]string{"x-user": fmt.Sprintf("user-%d", u)}
		first := ""
		for i := 0; i < 10; i++ {
			_, body, err := get(m.gateway, "", "/", user)
			if err != nil {
				t.Fatal(err)
			}
			got := instanceOf(body)
			if i == 0 {
				first = got
			} else if got != first {
				t.Fatalf("user-%d moved from %s to %s", u, first, got)
			}
		}
		all[first] = true
	}
	if len(all) < 2 {
		t.Errorf("12 users all hashed to one of 3 instances: %v", all)
	}
}

func TestFaultInjection(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.apply("default", edge(`    fault:
      abort: {httpStatus: 500, percentage: {value: 30}}
`))
	// The gateway injects aborts as soon as it has the route, whether or
	// not echo is registered yet: wait for both kinds of answer.
	eventually(t, 60*time.Second, "aborts injected and echo answering", func() error {
		seen := map[int]bool{}
		for i := 0; i < 40; i++ {
			if code, _, err := get(m.gateway, "", "/", nil); err == nil {
				seen[code] = true
			}
		}
		if !seen[500] || !seen[200] {
			return fmt.Errorf("answers %v, want 500 and 200", seen)
		}
		return nil
	})
	const n = 1000
	aborted := 0
	for i := 0; i < n; i++ {
		code, body, err := get(m.gateway, "", "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case code == 500 && body == "fault filter abort":
			aborted++
		case code != 200:
			t.Fatalf("unexpected answer %d %q", code, body)
		}
	}
	if !within(aborted, n, 0.3) {
		t.Fatalf("abort percentage 30: %d of %d aborted", aborted, n)
	}

	m.apply("default", edge(`    fault:
      delay: {fixedDelay: 300ms, percentage: {value: 100}}
`))
	eventually(t, 10*time.Second, "delay injected", func() error {
		start := time.Now()
		if _, _, err := get(m.gateway, "", "/", nil); err != nil {
			return err
		}
		if time.Since(start) < 300*time.Millisecond {
			return fmt.Errorf("not delayed yet")
		}
		return nil
	})
	for i := 0; i < 5; i++ {
		start := time.Now()
		code, _, err := get(m.gateway, "", "/", nil)
		if err != nil || code != 200 {
			t.Fatalf("delayed request: %d %v", code, err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("a 100%% delay of 300ms answered after %v", d)
		}
	}
}

func TestRouteTimeout(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.apply("default", edge("    timeout: 500ms\n    retries: {attempts: 0}\n"))
	waitServing(t, m, 1)
	start := time.Now()
	code, body, err := get(m.gateway, "", "/delay/10s", nil)
	elapsed := time.Since(start)
	if err != nil || code != 504 || body != "upstream request timeout" {
		t.Fatalf("want 504 upstream request timeout, got %d %q %v", code, body, err)
	}
	// The 504 is the route timeout's (the upstream would have answered
	// 200 after 10 s), and a timer never fires early.
	if elapsed < 500*time.Millisecond {
		t.Fatalf("timeout of 500ms fired after %v", elapsed)
	}
}

// TestDeadUpstreamFailsFast is SockShop's lesson: an instance that is gone
// is answered for at once, not waited on.
func TestDeadUpstreamFailsFast(t *testing.T) {
	m := upMesh(t, "")
	dead := testnet.Refusing(t) // bound, never listening: connections are refused
	host, port, _ := strings.Cut(dead, ":")
	m.apply("default", edge("    retries: {attempts: 0}\n")+fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo.default.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: %s
    ports: {http: %s}
`, host, port))
	// The gateway answers for the instance that is gone, with Envoy's
	// connection failure, rather than leaving the client waiting.
	eventually(t, 30*time.Second, "dead upstream answered", func() error {
		code, body, err := get(m.gateway, "", "/", nil)
		if err != nil {
			return err
		}
		if code != 503 || !strings.Contains(body, "connection failure") {
			return fmt.Errorf("got %d %q", code, body)
		}
		return nil
	})
}
