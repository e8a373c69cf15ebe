package controlplane

import (
	"fmt"
	"sort"

	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weft-mesh/weft/api"
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
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

var typeURLs = map[string]string{
	"listeners": resource.ListenerType,
	"routes":    resource.RouteType,
	"clusters":  resource.ClusterType,
	"endpoints": resource.EndpointType,
}

func (p proxySource) ProxyConfig(id, kind string) ([]byte, error) {
	url, ok := typeURLs[kind]
	if !ok {
		return nil, fmt.Errorf("unknown config kind %q: want listeners, routes, clusters or endpoints", kind)
	}
	_, res, ok := p.c.xds.Acked(id, url)
	if !ok {
		return nil, fmt.Errorf("proxy %s has not ACKed any %s", id, kind)
	}
	return translate.Dump(res)
}
