package controlplane

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/server"
)

// Files in the state directory.
const (
	// JoinTokenFile holds the mesh-wide join token (JoinScopeMesh only).
	JoinTokenFile = "join-token"
	// APITokenFile holds the token the HTTP API requires for writes.
	APITokenFile = "api-token"
	// CADir holds the self-signed root when no plug-in CA is given.
	CADir = "ca"
)

// The control plane's own identity, in its xDS serving certificate. No
// proxy may claim it.
const (
	controlPlaneNamespace      = model.RootNamespace
	controlPlaneServiceAccount = "weft-controlplane"
)

// xdsCertTTL is the lifetime of the xDS serving certificate; it is
// re-issued at half of it, on the next handshake.
const xdsCertTTL = 24 * time.Hour

// ControlPlaneID returns the SPIFFE ID the control plane's xDS certificate
// carries in a trust domain.
func ControlPlaneID(trustDomain string) string {
	return ca.SPIFFEID(trustDomain, controlPlaneNamespace, controlPlaneServiceAccount)
}

// loadOrCreateToken returns the token in path, generating it (32 random
// bytes, base64url, mode 0600) when the file does not exist.
func loadOrCreateToken(path string) (string, error) {
	for range 2 {
		data, err := os.ReadFile(path)
		if err == nil {
			tok := strings.TrimSpace(string(data))
			if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
				return "", fmt.Errorf("token file %s: want one non-empty word; remove it to generate a new token", path)
			}
			return tok, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("token file: %w", err)
		}
		tok, err := newToken()
		if err != nil {
			return "", err
		}
		// O_EXCL: a second control plane starting on the same directory
		// at the same moment reads the first one's token instead.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		_, werr := f.WriteString(tok + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(path)
			return "", fmt.Errorf("token file %s: %w", path, werr)
		}
		return tok, nil
	}
	return "", fmt.Errorf("token file %s: created and removed concurrently", path)
}

// newToken returns a fresh secret token: 32 random bytes, base64url.
func newToken() (string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

// setupSecurity loads or creates the CA and both tokens.
func (c *ControlPlane) setupSecurity() error {
	authority, err := ca.Load(ca.Options{
		Dir: filepath.Join(c.opts.StateDir, CADir), CACertsDir: c.opts.CACertsDir, TrustDomain: c.opts.TrustDomain,
	})
	if err != nil {
		return err
	}
	c.ca = authority
	c.caSource = c.opts.CACertsDir
	if c.caSource == "" {
		c.caSource = filepath.Join(c.opts.StateDir, CADir)
	}
	if err := c.setupJoinTokens(); err != nil {
		return err
	}
	if c.apiToken, err = loadOrCreateToken(filepath.Join(c.opts.StateDir, APITokenFile)); err != nil {
		return fmt.Errorf("API token: %w", err)
	}
	return nil
}

// admit is the xDS server's admission check: the proxy's namespace must be
// a mesh member, and no proxy may take the control plane's identity.
func (c *ControlPlane) admit(m *node.Meta) error {
	if m.Namespace == controlPlaneNamespace && m.ServiceAccount == controlPlaneServiceAccount {
		return fmt.Errorf("service account %s/%s is reserved for the control plane", controlPlaneNamespace, controlPlaneServiceAccount)
	}
	if ok, reason := c.snap.Load().IsMember(m.Namespace); !ok {
		return errors.New(reason)
	}
	return nil
}

// issueWorkloadCert issues a certificate for the workload identity
// ns/sa (API POST /api/v1/certificates), as for a proxy of that identity:
// refused outside the mesh and for the control plane's own.
func (c *ControlPlane) issueWorkloadCert(ns, sa string) (*api.Certificate, error) {
	meta := &node.Meta{Type: node.Sidecar, Namespace: ns, ServiceAccount: sa, Name: "certificate"}
	id, err := server.Identity(c.opts.TrustDomain, meta)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrRefused, err)
	}
	if err := c.admit(meta); err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrRefused, err)
	}
	svid, err := c.ca.Issue(id, c.opts.CertTTL)
	if err != nil {
		return nil, err
	}
	return &api.Certificate{ID: id, CertChain: string(svid.CertChainPEM), PrivateKey: string(svid.KeyPEM), Root: string(c.ca.RootPEM()), NotAfter: svid.NotAfter}, nil
}

// xdsServerOptions returns the gRPC transport for the xDS listener (see
// xdscreds.go): TLS with a mesh-CA certificate, taking client
// certificates, required when the address is reachable from other hosts;
// on loopback plaintext too.
func (c *ControlPlane) xdsServerOptions() ([]grpc.ServerOption, error) {
	hosts, err := certHosts(c.opts.XDSAddr)
	if err != nil {
		return nil, fmt.Errorf("xds address: %w", err)
	}
	if c.kube != nil {
		// Injected proxies dial the Service istiod in the control plane's
		// namespace, as Istio's do.
		hosts = append(hosts, "istiod."+c.kube.Namespace+".svc", "istiod."+c.kube.Namespace+".svc.cluster.local")
	}
	sc, err := c.ca.NewServerCert(hosts, []string{ControlPlaneID(c.opts.TrustDomain)}, xdsCertTTL)
	if err != nil {
		return nil, fmt.Errorf("xds TLS: %w", err)
	}
	c.xdsTLS = !isLoopback(c.opts.XDSAddr)
	return []grpc.ServerOption{xdsCreds(c.xdsTLSConfig(sc), !c.xdsTLS)}, nil
}

// certHosts are the names proxies may dial addr by: its host, or for an
// unspecified host (all interfaces) this machine's name, "localhost" and
// every interface address.
func certHosts(addr string) ([]string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return []string{host}, nil
	}
	hosts := []string{"localhost"}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			hosts = append(hosts, ipn.IP.String())
		}
	}
	return hosts, nil
}

// isLoopback reports whether host:port is reachable from this machine only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// jwksURIs returns the jwksUri of every RequestAuthentication rule in snap.
func jwksURIs(snap *model.Snapshot) map[string]bool {
	out := map[string]bool{}
	for _, o := range snap.Objects(config.KindRequestAuthentication) {
		ra, ok := o.Spec.(*security.RequestAuthentication)
		if !ok {
			continue
		}
		for _, r := range ra.GetJwtRules() {
			if u := r.GetJwksUri(); u != "" {
				out[u] = true
			}
		}
	}
	return out
}

// CA returns the mesh's certificate authority.
func (c *ControlPlane) CA() *ca.CA { return c.ca }

// JoinToken returns the mesh-wide join token (also in
// STATE_DIR/join-token), "" unless Options.JoinTokenScope is
// JoinScopeMesh. Proxies this process starts take a scoped one from
// MintJoinToken instead.
func (c *ControlPlane) JoinToken() string { return c.joinToken }

// APIToken returns the token the HTTP API requires for writes (also in
// STATE_DIR/api-token).
func (c *ControlPlane) APIToken() string { return c.apiToken }

// XDSTLS reports whether the xDS listener serves TLS; proxies then need
// the mesh root, CA().RootFile(), to dial it.
func (c *ControlPlane) XDSTLS() bool { return c.xdsTLS }

// TrustDomain returns the SPIFFE trust domain of issued identities.
func (c *ControlPlane) TrustDomain() string { return c.opts.TrustDomain }
