package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTCPAuthorization: an AuthorizationPolicy on a TCP workload admits the
// ingress gateway's identity and closes connections from any other, as
// Istio documents for TCP traffic (only source and port fields apply).
func TestTCPAuthorization(t *testing.T) {
	// Gateway port 31400 (Istio's TCP example) on a port weft up binds first.
	m := upMesh(t, "", "--gateway-port-map", "31400="+anyPort)
	m.runEnv("default", "db", "app=db,version=v1", nil, "--protocol", "tcp", "--", weftBin, "demo-app", "echo", "tcp")
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
kind: VirtualService
metadata: {name: db}
spec:
  hosts: ["*"]
  gateways: [tcp-gw]
  tcp:
  - match: [{port: %[1]s}]
    route:
    - destination: {host: db, port: {number: 8080}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-clients}
spec:
  selector: {matchLabels: {app: db}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}
`, port))
	ask := func(addr string) (string, error) {
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
	gw := m.gatewayPorts[31400]
	eventually(t, 30*time.Second, "the gateway's identity is admitted", func() error {
		line, err := ask(gw)
		if err != nil || !strings.HasSuffix(line, ": ping") {
			return fmt.Errorf("%q %v", line, err)
		}
		return nil
	})

	// Another mesh identity, straight to the workload over mTLS: closed
	// before any byte reaches the app.
	ca := meshCA(t, m)
	in := m.inbound("default", "db", "v1")
	if line, err := askTLS(t, ca, "spiffe://cluster.local/ns/default/sa/intruder", in); err == nil && line != "" {
		t.Fatalf("an identity the policy does not name got an answer: %q", line)
	}
	if line, err := askTLS(t, ca, "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account", in); err != nil || !strings.HasSuffix(line, ": ping") {
		t.Fatalf("the admitted identity, directly: %q %v", line, err)
	}

	// DENY on the port closes the gateway's connections too.
	m.apply("default", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-maintenance}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
  - to:
    - operation: {ports: ["8080"]}
`)
	eventually(t, 20*time.Second, "DENY closes TCP connections", func() error {
		if line, err := ask(gw); err == nil && line != "" {
			return fmt.Errorf("still answered %q", line)
		}
		return nil
	})
}

// askTLS sends one line to addr over mutual TLS as SPIFFE ID id and
// returns the answer line.
func askTLS(t *testing.T, ca *authority, id, addr string) (string, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, mtlsConfig(ca.clientCert(t, id), ca.pool, nil))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(conn, "ping")
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}
