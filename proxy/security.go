package proxy

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/weft-mesh/weft/ca"
)

// JoinTokenEnv is the environment variable that may hold the join token.
const JoinTokenEnv = "WEFT_JOIN_TOKEN"

// ReadJoinTokenFile reads a join token file: its content without
// surrounding white space, which must be one non-empty word.
func ReadJoinTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read join token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("read join token: %s is empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("read join token: %s holds more than one word", path)
	}
	return tok, nil
}

// xdsTLSConfig returns the TLS client configuration for the xDS address:
// verifying against the roots in caRoot when set, else nil (plaintext),
// which is refused for an address that is not loopback. serverName, when
// set, is the name the control plane's certificate must carry instead of
// the address's host: in a cluster proxies dial the istiod Service's
// ClusterIP (no DNS needed) and verify istiod.istio-system.svc.
func xdsTLSConfig(addr, caRoot, serverName string) (*tls.Config, error) {
	if caRoot == "" {
		if serverName != "" {
			return nil, fmt.Errorf("proxy: an xDS server name (%s) needs the mesh root (--ca-root) to verify it against", serverName)
		}
		if !IsLoopback(addr) {
			return nil, fmt.Errorf("proxy: xDS address %s is not a loopback address: give the mesh root (--ca-root) so the stream is TLS and the join token does not travel in clear", addr)
		}
		return nil, nil
	}
	roots, err := ca.ReadRoots(caRoot)
	if err != nil {
		return nil, fmt.Errorf("proxy: --ca-root: %w", err)
	}
	cfg := ca.ClientTLS(roots)
	cfg.ServerName = serverName
	return cfg, nil
}

// IsLoopback reports whether host:port (or a bare host) names this
// machine only: localhost or a loopback IP.
func IsLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
