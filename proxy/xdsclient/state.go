package xdsclient

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/runtime"
	"github.com/weft-mesh/weft/proxy/sds"
)

// The five types the client subscribes to.
const (
	typeSecret   = resource.SecretType
	typeCluster  = resource.ClusterType
	typeEndpoint = resource.EndpointType
	typeListener = resource.ListenerType
	typeRoute    = resource.RouteType
)

// typeOrder is make-before-break: what is referenced comes before what
// references it (secrets before the clusters and listeners whose TLS uses
// them).
var typeOrder = []string{typeSecret, typeCluster, typeEndpoint, typeListener, typeRoute}

func isKnown(t string) bool { return slices.Contains(typeOrder, t) }

// isNamed reports whether t is subscribed by resource name rather than by
// wildcard; for those, a response updates only the names it carries.
func isNamed(t string) bool { return t == typeEndpoint || t == typeRoute }

// pick returns the subscription of a named type.
func pick(t string, eds, rds []string) []string {
	if t == typeEndpoint {
		return eds
	}
	return rds
}

// shortType turns a type URL into its message name for logs and errors.
func shortType(t string) string {
	t = strings.TrimPrefix(t, resource.APITypePrefix)
	if i := strings.LastIndexByte(t, '.'); i >= 0 {
		return t[i+1:]
	}
	return t
}

func emptyResources() *runtime.Resources {
	return &runtime.Resources{
		Listeners: map[string]*listener.Listener{},
		Routes:    map[string]*route.RouteConfiguration{},
		Clusters:  map[string]*cluster.Cluster{},
		Endpoints: map[string]*endpoint.ClusterLoadAssignment{},
		Secrets:   map[string]*tlsv3.Secret{},
	}
}

// sortedMessages returns the resources of type t in r, sorted by name.
// Secrets come back as redacted copies: this feeds config dumps.
func sortedMessages(r *runtime.Resources, t string) []proto.Message {
	switch t {
	case typeSecret:
		out := sortedValues(r.Secrets)
		for i, m := range out {
			out[i] = sds.Redact(m.(*tlsv3.Secret))
		}
		return out
	case typeCluster:
		return sortedValues(r.Clusters)
	case typeEndpoint:
		return sortedValues(r.Endpoints)
	case typeListener:
		return sortedValues(r.Listeners)
	case typeRoute:
		return sortedValues(r.Routes)
	}
	return nil
}

func sortedValues[M proto.Message](m map[string]M) []proto.Message {
	out := make([]proto.Message, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

// candidate builds the full resource set that would result from accepting
// resp, without changing the client. changed is false when accepting it
// would leave the state as it is (a resend, typically after a reconnect),
// so the runtime need not be asked again. Callers hold c.mu.
func (c *Client) candidate(resp *discovery.DiscoveryResponse) (cand *runtime.Resources, changed bool, err error) {
	t := resp.GetTypeUrl()
	cur := c.res
	cand = &runtime.Resources{
		Listeners: cur.Listeners,
		Routes:    cur.Routes,
		Clusters:  cur.Clusters,
		Endpoints: cur.Endpoints,
		Secrets:   cur.Secrets,
	}
	first := !c.received[t]
	anys := resp.GetResources()
	switch t {
	case typeSecret:
		// Subscribed by wildcard: a response is the whole set.
		got, err := decode(t, anys, func() *tlsv3.Secret { return new(tlsv3.Secret) })
		if err != nil {
			return nil, false, err
		}
		cand.Secrets = got
		changed = first || !equalMaps(cur.Secrets, got)
	case typeCluster:
		got, err := decode(t, anys, func() *cluster.Cluster { return new(cluster.Cluster) })
		if err != nil {
			return nil, false, err
		}
		cand.Clusters = got
		// Endpoints of clusters that are gone are unsubscribed with them.
		cand.Endpoints = keep(cur.Endpoints, edsNamesOf(got))
		changed = first || !equalMaps(cur.Clusters, got)
	case typeListener:
		got, err := decode(t, anys, func() *listener.Listener { return new(listener.Listener) })
		if err != nil {
			return nil, false, err
		}
		names, err := rdsNamesOf(got)
		if err != nil {
			return nil, false, err
		}
		cand.Listeners = got
		cand.Routes = keep(cur.Routes, names)
		changed = first || !equalMaps(cur.Listeners, got)
	case typeEndpoint:
		got, err := decode(t, anys, func() *endpoint.ClusterLoadAssignment { return new(endpoint.ClusterLoadAssignment) })
		if err != nil {
			return nil, false, err
		}
		cand.Endpoints, changed = merge(cur.Endpoints, got, c.edsNames)
		changed = changed || first
	case typeRoute:
		got, err := decode(t, anys, func() *route.RouteConfiguration { return new(route.RouteConfiguration) })
		if err != nil {
			return nil, false, err
		}
		cand.Routes, changed = merge(cur.Routes, got, c.rdsNames)
		changed = changed || first
	default:
		return nil, false, fmt.Errorf("unsupported resource type %q", t)
	}
	return cand, changed, nil
}

// named is what every subscribed resource type has in common.
type named interface {
	proto.Message
	Validate() error
}

// decode unmarshals and validates every resource of a response of type
// t. Any resource of another type, without a name, repeated, or failing
// the proto's declared constraints rejects the whole response, as Envoy
// does.
func decode[M named](t string, anys []*anypb.Any, newM func() M) (map[string]M, error) {
	out := make(map[string]M, len(anys))
	for i, a := range anys {
		if a.GetTypeUrl() != t {
			return nil, fmt.Errorf("resources[%d]: type %q in a %s response", i, a.GetTypeUrl(), shortType(t))
		}
		m := newM()
		if err := anypb.UnmarshalTo(a, m, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("resources[%d]: decode %s: %w", i, shortType(t), err)
		}
		name := resourceName(m)
		if name == "" {
			return nil, fmt.Errorf("resources[%d]: %s without a name", i, shortType(t))
		}
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("%s %q: %w", shortType(t), name, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s %q: sent twice in one response", shortType(t), name)
		}
		out[name] = m
	}
	return out, nil
}

// resourceName is the name a resource is subscribed and replaced by.
func resourceName(m proto.Message) string {
	switch m := m.(type) {
	case *cluster.Cluster:
		return m.GetName()
	case *listener.Listener:
		return m.GetName()
	case *route.RouteConfiguration:
		return m.GetName()
	case *endpoint.ClusterLoadAssignment:
		return m.GetClusterName()
	case *tlsv3.Secret:
		return m.GetName()
	}
	return ""
}

// keep returns the entries of m whose names are in names.
func keep[M any](m map[string]M, names []string) map[string]M {
	out := make(map[string]M, len(names))
	for _, n := range names {
		if v, ok := m[n]; ok {
			out[n] = v
		}
	}
	return out
}

// merge applies a named-type response: in State of the World, an EDS or RDS
// response updates the resources it names and leaves the others as they are.
// Resources not subscribed are ignored (a server may answer a wildcard).
func merge[M proto.Message](cur, got map[string]M, subscribed []string) (map[string]M, bool) {
	out := maps.Clone(cur)
	changed := false
	for n, v := range got {
		if !slices.Contains(subscribed, n) {
			continue
		}
		if old, ok := cur[n]; !ok || !proto.Equal(old, v) {
			changed = true
		}
		out[n] = v
	}
	return out, changed
}

func equalMaps[M proto.Message](a, b map[string]M) bool {
	if len(a) != len(b) {
		return false
	}
	for n, v := range a {
		w, ok := b[n]
		if !ok || !proto.Equal(v, w) {
			return false
		}
	}
	return true
}

// edsNamesOf returns the EDS subscription for clusters: the service_name of
// every EDS cluster, or its name when service_name is empty, sorted.
func edsNamesOf(clusters map[string]*cluster.Cluster) []string {
	var out []string
	for name, cl := range clusters {
		if cl.GetType() != cluster.Cluster_EDS {
			continue
		}
		if sn := cl.GetEdsClusterConfig().GetServiceName(); sn != "" {
			name = sn
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// rdsNamesOf returns the RDS subscription for listeners: the
// route_config_name of every http_connection_manager using rds, sorted.
func rdsNamesOf(listeners map[string]*listener.Listener) ([]string, error) {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(listeners)) {
		l := listeners[name]
		chains := l.GetFilterChains()
		if d := l.GetDefaultFilterChain(); d != nil {
			chains = append(slices.Clip(chains), d)
		}
		for ci, fc := range chains {
			for fi, f := range fc.GetFilters() {
				tc := f.GetTypedConfig()
				if tc == nil || !tc.MessageIs((*hcm.HttpConnectionManager)(nil)) {
					continue
				}
				m := new(hcm.HttpConnectionManager)
				path := fmt.Sprintf("filter_chains[%d].filters[%d]", ci, fi)
				if ci == len(l.GetFilterChains()) {
					path = fmt.Sprintf("default_filter_chain.filters[%d]", fi)
				}
				if err := tc.UnmarshalTo(m); err != nil {
					return nil, fmt.Errorf("listener %q: %s.typed_config: %w", name, path, err)
				}
				if rds := m.GetRds(); rds != nil {
					if rds.GetRouteConfigName() == "" {
						return nil, fmt.Errorf("listener %q: %s: rds.route_config_name is empty", name, path)
					}
					out = append(out, rds.GetRouteConfigName())
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
