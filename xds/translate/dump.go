package translate

import (
	"bytes"
	"encoding/json"
	"fmt"

	admin "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Dump renders resources the way Envoy's /config_dump does: a ConfigDump
// whose configs are Clusters-, Endpoints-, Listeners- and RoutesConfigDump
// entries (only the kinds present), in JSON with Envoy's snake_case field
// names, so tooling written for Envoy reads it unchanged.
func Dump(res []proto.Message) ([]byte, error) { return DumpVersion("", res) }

// DumpVersion is Dump with version_info set on every entry, e.g. the
// version a proxy ACKed.
func DumpVersion(version string, res []proto.Message) ([]byte, error) {
	var (
		clusters  = &admin.ClustersConfigDump{VersionInfo: version}
		endpoints = &admin.EndpointsConfigDump{}
		listeners = &admin.ListenersConfigDump{VersionInfo: version}
		routes    = &admin.RoutesConfigDump{}
	)
	for _, m := range res {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("config dump: wrap %T: %w", m, err)
		}
		switch v := m.(type) {
		case *cluster.Cluster:
			clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters,
				&admin.ClustersConfigDump_DynamicCluster{VersionInfo: version, Cluster: a})
		case *endpoint.ClusterLoadAssignment:
			endpoints.DynamicEndpointConfigs = append(endpoints.DynamicEndpointConfigs,
				&admin.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: version, EndpointConfig: a})
		case *listener.Listener:
			listeners.DynamicListeners = append(listeners.DynamicListeners, &admin.ListenersConfigDump_DynamicListener{
				Name: v.GetName(), ActiveState: &admin.ListenersConfigDump_DynamicListenerState{VersionInfo: version, Listener: a},
			})
		case *route.RouteConfiguration:
			routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs,
				&admin.RoutesConfigDump_DynamicRouteConfig{VersionInfo: version, RouteConfig: a})
		default:
			return nil, fmt.Errorf("config dump: unsupported resource type %T", m)
		}
	}
	out := &admin.ConfigDump{}
	// Envoy's own order: clusters before endpoints, listeners before routes.
	for _, d := range []struct {
		msg proto.Message
		n   int
	}{
		{clusters, len(clusters.DynamicActiveClusters)},
		{endpoints, len(endpoints.DynamicEndpointConfigs)},
		{listeners, len(listeners.DynamicListeners)},
		{routes, len(routes.DynamicRouteConfigs)},
	} {
		if d.n == 0 {
			continue
		}
		a, err := anypb.New(d.msg)
		if err != nil {
			return nil, fmt.Errorf("config dump: wrap %T: %w", d.msg, err)
		}
		out.Configs = append(out.Configs, a)
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("config dump: marshal: %w", err)
	}
	// protojson deliberately varies its whitespace between builds; re-indent
	// so dumps can be diffed and compared in tests.
	var compact, pretty bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return nil, fmt.Errorf("config dump: compact: %w", err)
	}
	if err := json.Indent(&pretty, compact.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("config dump: indent: %w", err)
	}
	pretty.WriteByte('\n')
	return pretty.Bytes(), nil
}
