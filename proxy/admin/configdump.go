package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	// Typed configs nested in listeners and clusters must be resolvable to
	// print them as JSON; these are the ones the control plane emits.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/weft-mesh/weft/proxy/sds"
	"github.com/weft-mesh/weft/proxy/xdsclient"
)

// dumpKinds are the values of /config_dump?resource=, in Envoy's dump order.
var dumpKinds = []string{"clusters", "endpoints", "listeners", "routes", "secrets"}

// configDump serves Envoy's ConfigDump shape: {"configs": [...]} with one
// *ConfigDump message per resource kind, fields in snake_case.
func (s *Server) configDump(w http.ResponseWriter, r *http.Request) {
	kinds := dumpKinds
	if k := r.URL.Query().Get("resource"); k != "" {
		if !slices.Contains(dumpKinds, k) {
			text(w, http.StatusBadRequest, fmt.Sprintf("resource=%s: want one of %s", k, strings.Join(dumpKinds, ", ")))
			return
		}
		kinds = []string{k}
	}
	var acked map[string]xdsclient.AckedType
	if s.opts.Config != nil {
		acked = s.opts.Config.Acked()
	}
	body, err := ConfigDump(acked, kinds...)
	if err != nil {
		s.log.Error("config dump", "err", err)
		text(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// ConfigDump renders acked (type URL -> last ACKed) as Envoy's
// envoy.admin.v3.ConfigDump JSON, with the given kinds (clusters,
// endpoints, listeners, routes, secrets) in that order; none means all.
// Private keys read "[redacted]", in secrets and in any TLS context
// inlined in a listener or cluster, as Envoy shows them.
func ConfigDump(acked map[string]xdsclient.AckedType, kinds ...string) ([]byte, error) {
	if len(kinds) == 0 {
		kinds = dumpKinds
	}
	dump := &adminv3.ConfigDump{}
	for _, k := range kinds {
		m, err := kindDump(k, acked)
		if err != nil {
			return nil, err
		}
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump %s: %w", k, err)
		}
		dump.Configs = append(dump.Configs, a)
	}
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(dump)
	if err != nil {
		return nil, fmt.Errorf("config dump: encode: %w", err)
	}
	// protojson varies its whitespace on purpose; re-indenting gives people
	// and scripts a stable layout.
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, fmt.Errorf("config dump: indent: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// kindDump builds the admin message for one kind. Per-resource version_info
// is the type's ACKed version: in State of the World it is the version of
// the whole set the resource arrived in.
func kindDump(kind string, acked map[string]xdsclient.AckedType) (proto.Message, error) {
	switch kind {
	case "clusters":
		a := acked[resource.ClusterType]
		d := &adminv3.ClustersConfigDump{VersionInfo: a.Version}
		for _, m := range a.Resources {
			c, ok := m.(*cluster.Cluster)
			if !ok {
				return nil, fmt.Errorf("config dump clusters: unexpected %T", m)
			}
			packed, err := anypb.New(sds.Redact(c))
			if err != nil {
				return nil, fmt.Errorf("config dump cluster %q: %w", c.GetName(), err)
			}
			d.DynamicActiveClusters = append(d.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
				VersionInfo: a.Version, Cluster: packed,
			})
		}
		return d, nil
	case "endpoints":
		a := acked[resource.EndpointType]
		d := &adminv3.EndpointsConfigDump{}
		for _, m := range a.Resources {
			e, ok := m.(*endpoint.ClusterLoadAssignment)
			if !ok {
				return nil, fmt.Errorf("config dump endpoints: unexpected %T", m)
			}
			packed, err := anypb.New(e)
			if err != nil {
				return nil, fmt.Errorf("config dump endpoints %q: %w", e.GetClusterName(), err)
			}
			d.DynamicEndpointConfigs = append(d.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
				VersionInfo: a.Version, EndpointConfig: packed,
			})
		}
		return d, nil
	case "listeners":
		a := acked[resource.ListenerType]
		d := &adminv3.ListenersConfigDump{VersionInfo: a.Version}
		for _, m := range a.Resources {
			l, ok := m.(*listener.Listener)
			if !ok {
				return nil, fmt.Errorf("config dump listeners: unexpected %T", m)
			}
			packed, err := anypb.New(sds.Redact(l))
			if err != nil {
				return nil, fmt.Errorf("config dump listener %q: %w", l.GetName(), err)
			}
			d.DynamicListeners = append(d.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
				Name:        l.GetName(),
				ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: a.Version, Listener: packed},
			})
		}
		return d, nil
	case "routes":
		a := acked[resource.RouteType]
		d := &adminv3.RoutesConfigDump{}
		for _, m := range a.Resources {
			rc, ok := m.(*route.RouteConfiguration)
			if !ok {
				return nil, fmt.Errorf("config dump routes: unexpected %T", m)
			}
			packed, err := anypb.New(rc)
			if err != nil {
				return nil, fmt.Errorf("config dump route config %q: %w", rc.GetName(), err)
			}
			d.DynamicRouteConfigs = append(d.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
				VersionInfo: a.Version, RouteConfig: packed,
			})
		}
		return d, nil
	case "secrets":
		a := acked[sds.TypeURL]
		d := &adminv3.SecretsConfigDump{}
		for _, m := range a.Resources {
			sec, ok := m.(*tlsv3.Secret)
			if !ok {
				return nil, fmt.Errorf("config dump secrets: unexpected %T", m)
			}
			packed, err := anypb.New(sds.Redact(sec))
			if err != nil {
				return nil, fmt.Errorf("config dump secret %q: %w", sec.GetName(), err)
			}
			d.DynamicActiveSecrets = append(d.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
				Name: sec.GetName(), VersionInfo: a.Version, Secret: packed,
			})
		}
		return d, nil
	}
	return nil, fmt.Errorf("config dump: unknown resource kind %q", kind)
}
