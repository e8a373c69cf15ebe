package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// externalTLS serves HTTPS on loopback with a certificate for host from ca;
// with clientCA set it requires a client certificate from that CA. It
// answers "external over TLS" and, when the caller showed one, the client
// certificate's first URI SAN.
func externalTLS(t *testing.T, ca *authority, host string, clientCA *authority) string {
	t.Helper()
	leaf := ca.serverCert(t, host)
	cfg := &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.cert)
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "external over TLS to %s", r.TLS.ServerName)
		if len(r.TLS.PeerCertificates) > 0 && len(r.TLS.PeerCertificates[0].URIs) > 0 {
			fmt.Fprintf(w, " from %s", r.TLS.PeerCertificates[0].URIs[0])
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// writePEM writes the CA certificate, or a client certificate and key, as
// PEM files in dir and returns their paths.
func writePEM(t *testing.T, dir, name string, der []byte, key any) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if key != nil {
		b, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		keyFile = filepath.Join(dir, name+"-key.pem")
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// TestTLSOrigination follows Istio's egress TLS origination task: the mesh
// calls a service outside it in plain HTTP and the gateway's proxy opens
// TLS to it (DestinationRule SIMPLE), verifying the server against the
// given CA; with MUTUAL it also presents a client certificate. A CA that
// does not match the server's fails the request instead of trusting it.
func TestTLSOrigination(t *testing.T) {
	extCA := strangerCA(t) // the outside world's CA, not the mesh's
	clientCA := strangerCA(t)
	simple := externalTLS(t, extCA, "api.external.test", nil)
	mutual := externalTLS(t, extCA, "secure.external.test", clientCA)
	files := t.TempDir()
	caFile, _ := writePEM(t, files, "external-ca", extCA.cert.Raw, nil)
	wrongCA, _ := writePEM(t, files, "wrong-ca", strangerCA(t).cert.Raw, nil)
	client := clientCA.clientCert(t, "spiffe://cluster.local/ns/default/sa/egress")
	certFile, keyFile := writePEM(t, files, "client", client.Certificate[0], client.PrivateKey)

	m := upMesh(t, "")
	entry := func(name, host, addr string) string {
		h, p, _ := net.SplitHostPort(addr)
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s]
  location: MESH_EXTERNAL
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: %s}
  resolution: STATIC
  endpoints:
  - address: %s
---
`, name, host, p, h)
	}
	dr := func(name, host, tlsFields string) string {
		return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s}
spec:
  host: %s
  trafficPolicy:
    tls:
%s---
`, name, host, tlsFields)
	}
	m.apply("default", entry("api", "api.external.test", simple)+entry("secure", "secure.external.test", mutual)+
		dr("api", "api.external.test", "      mode: SIMPLE\n      sni: api.external.test\n      caCertificates: "+caFile+"\n")+
		dr("secure", "secure.external.test", "      mode: MUTUAL\n      sni: secure.external.test\n      caCertificates: "+caFile+
			"\n      clientCertificate: "+certFile+"\n      privateKey: "+keyFile+"\n")+
		edgeGateway+`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: egress}
spec:
  hosts: ["*"]
  gateways: [edge]
  http:
  - match: [{uri: {prefix: /secure}}]
    route: [{destination: {host: secure.external.test}}]
  - route: [{destination: {host: api.external.test}}]
`)
	expect := func(path, want string) {
		t.Helper()
		eventually(t, 20*time.Second, path, func() error {
			code, body, err := get(m.gateway, "", path, nil)
			if err != nil || code != 200 || body != want {
				return fmt.Errorf("%d %v %q, want 200 %q", code, err, body, want)
			}
			return nil
		})
	}
	expect("/", "external over TLS to api.external.test")
	expect("/secure", "external over TLS to secure.external.test from spiffe://cluster.local/ns/default/sa/egress")

	// Trusting another CA, the origination fails (503), never falls back.
	m.apply("default", dr("api", "api.external.test", "      mode: SIMPLE\n      sni: api.external.test\n      caCertificates: "+wrongCA+"\n"))
	eventually(t, 20*time.Second, "a server the CA file does not vouch for is refused", func() error {
		code, body, err := get(m.gateway, "", "/", nil)
		if err != nil || code != 503 || strings.Contains(body, "external over TLS") {
			return fmt.Errorf("%d %v %q, want 503", code, err, body)
		}
		return nil
	})
}
