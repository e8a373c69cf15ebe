// Package bootstrap writes what a proxyless gRPC application needs to
// join the mesh: gRPC's xDS bootstrap file (GRPC_XDS_BOOTSTRAP) and the
// workload certificate files it names. The application is unmodified
// gRPC-Go (or Java, C++): it dials xds:///HOST:PORT, and with the
// credentials/xds client credentials talks mutual TLS to sidecars.
//
// The bootstrap names the control plane's xDS address with TLS channel
// credentials from the workload's certificate (the control plane
// authenticates the application by it: gRPC cannot send a join token),
// the node as weft's node IDs and metadata spell it, with GENERATOR
// "grpc", and a file_watcher certificate provider "default" over the same
// files, which the clusters sent to gRPC nodes name for their TLS. gRPC
// reads the bootstrap once at start; the provider re-reads the
// certificate files every RefreshInterval, so rewriting them (`weft
// bootstrap grpc --watch`) rotates the certificate.
package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/translate"
)

// File names in the output directory.
const (
	File     = "bootstrap.json"
	CertFile = "cert-chain.pem"
	KeyFile  = "key.pem"
	RootFile = "root-cert.pem"
)

// DefaultRefreshInterval is how often gRPC's file_watcher re-reads the
// certificate files.
const DefaultRefreshInterval = 10 * time.Second

// Options say what to write.
type Options struct {
	Dir             string     // output directory (absolute paths are written)
	XDSAddress      string     // the control plane's xDS, host:port
	Node            *node.Meta // the application; Generator is set to grpc
	RefreshInterval time.Duration
}

// Certificate is the workload certificate to write.
type Certificate struct {
	CertChainPEM, KeyPEM, RootPEM []byte
}

// Write writes the bootstrap file into o.Dir.
func Write(o Options) error {
	if o.XDSAddress == "" || o.Node == nil || o.Dir == "" {
		return errors.New("bootstrap: directory, xDS address and node are required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	meta := *o.Node
	meta.Generator = node.GeneratorGRPC
	n := meta.Node()
	md, err := protojson.Marshal(n.GetMetadata())
	if err != nil {
		return fmt.Errorf("bootstrap: node metadata: %w", err)
	}
	files := map[string]string{
		"certificate_file":    filepath.Join(dir, CertFile),
		"private_key_file":    filepath.Join(dir, KeyFile),
		"ca_certificate_file": filepath.Join(dir, RootFile),
	}
	provider := map[string]any{"refresh_interval": o.RefreshInterval.String()}
	for k, v := range files {
		provider[k] = v
	}
	doc := map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      o.XDSAddress,
			"channel_creds":   []any{map[string]any{"type": "tls", "config": files}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{
			"id":       n.GetId(),
			"cluster":  n.GetCluster(),
			"metadata": json.RawMessage(md),
			"locality": map[string]any{},
		},
		"certificate_providers": map[string]any{
			translate.GRPCCertProvider: map[string]any{"plugin_name": "file_watcher", "config": provider},
		},
		"server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%s",
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return writeFile(filepath.Join(dir, File), append(b, '\n'), 0o644)
}

// WriteCertificate writes the certificate files into dir, each replaced
// whole (renamed into place), so a watcher never reads half a file. One
// reading between two of the files may find a chain that does not match
// its key: gRPC's file watcher then keeps the certificate it has and
// takes the new pair at its next refresh.
func WriteCertificate(dir string, c Certificate) error {
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{RootFile, c.RootPEM, 0o644}, {CertFile, c.CertChainPEM, 0o644}, {KeyFile, c.KeyPEM, 0o600}} {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
