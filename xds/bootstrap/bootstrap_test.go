package bootstrap

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weft-mesh/weft/xds/node"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "caller-1", Namespace: "shop", WorkloadName: "caller", ServiceAccount: "caller",
		Labels: map[string]string{"app": "caller"}}
	if err := Write(Options{Dir: dir, XDSAddress: "127.0.0.1:15010", Node: meta}); err != nil {
		t.Fatal(err)
	}
	if err := WriteCertificate(dir, Certificate{CertChainPEM: []byte("chain"), KeyPEM: []byte("key"), RootPEM: []byte("root")}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XDSServers []struct {
			ServerURI    string `json:"server_uri"`
			ChannelCreds []struct {
				Type   string            `json:"type"`
				Config map[string]string `json:"config"`
			} `json:"channel_creds"`
		} `json:"xds_servers"`
		Node                 json.RawMessage `json:"node"`
		CertificateProviders map[string]struct {
			PluginName string         `json:"plugin_name"`
			Config     map[string]any `json:"config"`
		} `json:"certificate_providers"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("bootstrap is not JSON: %v\n%s", err, b)
	}
	if len(doc.XDSServers) != 1 || doc.XDSServers[0].ServerURI != "127.0.0.1:15010" || doc.XDSServers[0].ChannelCreds[0].Type != "tls" ||
		doc.XDSServers[0].ChannelCreds[0].Config["certificate_file"] != filepath.Join(dir, CertFile) {
		t.Errorf("xds_servers: %+v", doc.XDSServers)
	}
	p, ok := doc.CertificateProviders["default"]
	if !ok || p.PluginName != "file_watcher" || p.Config["private_key_file"] != filepath.Join(dir, KeyFile) || p.Config["ca_certificate_file"] != filepath.Join(dir, RootFile) {
		t.Errorf("certificate_providers: %+v", doc.CertificateProviders)
	}
	var n core.Node
	if err := protojson.Unmarshal(doc.Node, &n); err != nil {
		t.Fatalf("node: %v", err)
	}
	got, err := node.Parse(&n)
	if err != nil || !got.GRPC() || got.ID() != meta.ID() || got.ServiceAccount != "caller" || got.Labels["app"] != "caller" {
		t.Errorf("node parses as %+v, %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
}
