package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/xds/server"
	"github.com/weft-mesh/weft/xds/translate"
)

// proxySource answers the API's questions about connected proxies from the
// xDS server's bookkeeping: what each proxy is and what it ACKed.
type proxySource struct{ c *ControlPlane }

func (p proxySource) Proxies() []api.ProxyInfo {
	var out []api.ProxyInfo
	for _, ci := range p.c.xds.Connections() {
		out = append(out, api.ProxyInfo{
			ID: ci.ID, Name: ci.Meta.Name, Namespace: ci.Meta.Namespace, Workload: ci.Meta.WorkloadName,
			Type: string(ci.Meta.Type), Admin: ci.Meta.Admin, Labels: ci.Meta.Labels, Connected: true, ConnectedAt: ci.ConnectedAt,
			Acked: ci.Acked, LastNack: ci.LastNack,
			Revision: ci.Sync.Revision, Sync: apiSyncState[ci.Sync.State], SyncDetail: ci.Sync.Detail, SyncedRevision: ci.Sync.SyncedRevision,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// apiSyncState names the xDS server's sync states in the API's terms.
var apiSyncState = map[string]string{server.Synced: api.SyncSynced, server.Pending: api.SyncPending, server.NACKed: api.SyncNACKed}

var typeURLs = map[string]string{
	"listeners": resource.ListenerType,
	"routes":    resource.RouteType,
	"clusters":  resource.ClusterType,
	"endpoints": resource.EndpointType,
	"secrets":   server.SecretType,
}

func (p proxySource) ProxyConfig(id, kind string) ([]byte, error) {
	url, ok := typeURLs[kind]
	if !ok {
		return nil, fmt.Errorf("unknown config kind %q: want listeners, routes, clusters, endpoints or secrets", kind)
	}
	version, res, ok := p.c.xds.Acked(id, url)
	if !ok {
		return nil, fmt.Errorf("proxy %s has not ACKed any %s", id, kind)
	}
	if url == server.SecretType {
		return dumpSecrets(version, res)
	}
	return translate.Dump(res)
}

// dumpSecrets renders secrets as Envoy's /config_dump shows them: a
// SecretsConfigDump of dynamic active secrets, private keys redacted (the
// xDS server's Acked has redacted them already; redacting again here keeps
// this function safe on its own).
func dumpSecrets(version string, res []proto.Message) ([]byte, error) {
	d := &admin.SecretsConfigDump{}
	for _, m := range res {
		s, ok := m.(*tlsv3.Secret)
		if !ok {
			return nil, fmt.Errorf("secrets dump: unexpected %T", m)
		}
		a, err := anypb.New(ca.Redact(s))
		if err != nil {
			return nil, fmt.Errorf("secrets dump: wrap %s: %w", s.GetName(), err)
		}
		d.DynamicActiveSecrets = append(d.DynamicActiveSecrets, &admin.SecretsConfigDump_DynamicSecret{
			Name: s.GetName(), VersionInfo: version, Secret: a,
		})
	}
	a, err := anypb.New(d)
	if err != nil {
		return nil, fmt.Errorf("secrets dump: %w", err)
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(&admin.ConfigDump{Configs: []*anypb.Any{a}})
	if err != nil {
		return nil, fmt.Errorf("secrets dump: marshal: %w", err)
	}
	// protojson varies its whitespace between builds; indent it ourselves.
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, fmt.Errorf("secrets dump: indent: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}
