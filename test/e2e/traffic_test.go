package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPRouteFeatures checks rewrite, header edits, redirect, direct
// response, mirroring and CORS end to end, with YAML as Istio documents it.
func TestHTTPRouteFeatures(t *testing.T) {
	m := upMesh(t, "")
	m.apply("default", permissive) // the test steers instances directly
	m.echo("default", "echo", "v1")
	m.echo("default", "echo", "v2")
	m.apply("default", edgeGateway+`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: features}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - name: old-api
    match: [{uri: {prefix: /v1/legacy}}]
    redirect: {uri: /v2/current, redirectCode: 308}
  - name: maintenance
    match: [{uri: {exact: /status}}]
    directResponse:
      status: 503
      body: {string: "down for maintenance"}
  - name: api
    match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /}
    headers:
      request:
        set: {x-tenant: blue}
        remove: [x-debug]
      response:
        add: {x-served-by: weft}
    route:
    - destination: {host: echo, subset: v1}
    mirror: {host: echo, subset: v2}
    mirrorPercentage: {value: 100}
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-tenant]
      maxAge: 24h
`)
	eventually(t, 60*time.Second, "api route serves", func() error {
		code, body, err := get(m.gateway, "", "/api/headers", nil)
		if err != nil || code != 200 || !strings.Contains(body, `"x-tenant":"blue"`) {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})

	// Rewrite /api/headers -> /headers, request header set and remove.
	req, _ := http.NewRequest("GET", "http://"+m.gateway+"/api/headers", nil)
	req.Header.Set("x-debug", "1")
	req.Header.Set("x-tenant", "red")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var seen map[string]string
	json.NewDecoder(resp.Body).Decode(&seen)
	resp.Body.Close()
	if seen["x-tenant"] != "blue" || seen["x-debug"] != "" || resp.Header.Get("x-echo-version") != "v1" {
		t.Fatalf("upstream saw %v (version %s); want x-tenant set to blue, x-debug removed, served by v1", seen, resp.Header.Get("x-echo-version"))
	}
	if resp.Header.Get("x-served-by") != "weft" {
		t.Errorf("response header x-served-by: got %q", resp.Header.Get("x-served-by"))
	}

	// Mirror: v2 gets a copy of each request; the client only sees v1.
	mirrored := func() int {
		code, body, err := get(m.inbound("default", "echo", "v2"), "", "/count", nil)
		if err != nil || code != 200 {
			t.Fatalf("v2 direct: %d %v", code, err)
		}
		var n int
		fmt.Sscanf(body[strings.LastIndex(body, ":")+1:], "%d", &n)
		return n
	}
	before := mirrored()
	for i := 0; i < 10; i++ {
		if _, body, _ := get(m.gateway, "", "/api/x", nil); !strings.HasPrefix(body, "echo v1") {
			t.Fatalf("client answer must come from v1, got %q", body)
		}
	}
	eventually(t, 10*time.Second, "mirror copies reach v2", func() error {
		if n := mirrored(); n < before+11 { // +1: this check itself
			return fmt.Errorf("v2 saw %d mirrored requests, want 10", n-before-1)
		}
		return nil
	})

	// Redirect and direct response.
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get("http://" + m.gateway + "/v1/legacy/items?page=2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 308 || !strings.Contains(loc, "/v2/current") {
		t.Errorf("redirect: got %d Location %q", resp.StatusCode, loc)
	}
	if code, body, _ := get(m.gateway, "", "/status", nil); code != 503 || body != "down for maintenance" {
		t.Errorf("direct response: got %d %q", code, body)
	}

	// CORS preflight.
	pre, _ := http.NewRequest("OPTIONS", "http://"+m.gateway+"/api/x", nil)
	pre.Header.Set("Origin", "https://shop.example.com")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	resp, err = client.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("CORS preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestTCPRoutes: a database-like TCP service goes through the mesh: the
// gateway's TCP server splits connections 80/20 by weight, into sidecars
// that proxy raw TCP to the app.
func TestTCPRoutes(t *testing.T) {
	// Gateway port 31400 (Istio's TCP example) on a port weft up binds first.
	m := upMesh(t, "", "--gateway-port-map", "31400="+anyPort)
	for _, v := range []string{"v1", "v2"} {
		m.runEnv("default", "tcp-echo", "app=tcp-echo,version="+v, nil, "--protocol", "tcp", "--", weftBin, "demo-app", "echo", "tcp")
	}
	const port = "31400"
	m.apply("default", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %[1]s, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo}
spec:
  host: tcp-echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: ["*"]
  gateways: [tcp-gw]
  tcp:
  - match: [{port: %[1]s}]
    route:
    - destination: {host: tcp-echo, subset: v1, port: {number: 8080}}
      weight: 80
    - destination: {host: tcp-echo, subset: v2, port: {number: 8080}}
      weight: 20
`, port))
	addr := m.gatewayPorts[31400]
	ask := func() (string, error) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintln(c, "ping")
		line, err := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line), err
	}
	eventually(t, 60*time.Second, "TCP route serves both versions", func() error {
		seen := map[string]bool{}
		for i := 0; i < 30; i++ {
			line, err := ask()
			if err != nil {
				return err
			}
			seen[strings.Fields(line)[0]] = true
		}
		if !seen["v1"] || !seen["v2"] {
			return fmt.Errorf("saw %v", seen)
		}
		return nil
	})
	const n = 500
	v2 := 0
	for i := 0; i < n; i++ {
		line, err := ask()
		if err != nil || !strings.HasSuffix(line, ": ping") {
			t.Fatalf("connection %d: %q %v", i, line, err)
		}
		if strings.HasPrefix(line, "v2 ") {
			v2++
		}
	}
	if !within(v2, n, 0.2) {
		t.Fatalf("80/20 TCP split: %d of %d connections to v2", v2, n)
	}
}
