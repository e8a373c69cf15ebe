package translate

import (
	"sort"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// ConnectTimeout is the connect_timeout of every generated cluster.
const ConnectTimeout = 10 * time.Second

// clusters emits an EDS cluster and its ClusterLoadAssignment for every
// port of every service the scope sees (exportTo, Sidecar egress hosts),
// and one more per DestinationRule subset. Each cluster gets the traffic
// policy Istio would apply to it: the rule's policy (or its
// portLevelSettings entry for the port) with the subset's fields laid
// over it.
func (g *generator) clusters() {
	for _, svc := range g.services() {
		g.serviceClusters(svc, g.s.DestinationRule(g.p.Namespace, svc.Hostname))
	}
}

// serviceClusters emits the clusters of one service under rule dro (nil
// for none).
func (g *generator) serviceClusters(svc *model.Service, dro *config.Object) {
	var dr *networking.DestinationRule
	if dro != nil {
		dr = dro.Spec.(*networking.DestinationRule)
	}
	for _, port := range svc.Ports {
		g.addCluster(svc, port, "", nil, mergePolicy(dr.GetTrafficPolicy(), nil, port.Number), dro)
		for _, ss := range dr.GetSubsets() {
			if ss.GetName() == "" {
				continue // config validation rejects it; nothing sensible to name
			}
			g.addCluster(svc, port, ss.GetName(), ss.GetLabels(), mergePolicy(dr.GetTrafficPolicy(), ss.GetTrafficPolicy(), port.Number), dro)
		}
	}
}

// addCluster emits one outbound cluster outbound|PORT|SUBSET|HOST with
// policy (from DestinationRule dr, possibly nil) applied and, unless the
// policy makes it ORIGINAL_DST (which has no endpoints to assign), its
// ClusterLoadAssignment: as an item of g.clusterItems, made once for as
// long as what it is made of is unchanged.
func (g *generator) addCluster(svc *model.Service, port *model.Port, subsetName string, subset map[string]string, policy *networking.TrafficPolicy, dr *config.Object) {
	name := ClusterName(port.Number, subsetName, svc.Hostname)
	key := clusterKey{flavor: flavorOf(g.p), svc: svc, port: port.Number, subset: subsetName, dr: dr, peer: g.s.Epochs().PeerAuth, td: g.opts.TrustDomain,
		down: g.downSidecars(svc)}
	v, ok := g.items.get(key)
	if !ok {
		v = g.items.put(key, g.newClusterItem(name, svc, port, subsetName, subset, policy, dr))
	}
	it := v.(*clusterItem)
	g.clusterItems = append(g.clusterItems, it)
	if it.hash != nil {
		g.hashes[name] = it.hash
	}
}

// downSidecars names the sidecars of svc's endpoints that are down
// (Options.ProxyDown), which its assignments mark UNHEALTHY: usually none.
func (g *generator) downSidecars(svc *model.Service) string {
	if g.opts.ProxyDown == nil {
		return ""
	}
	var b strings.Builder
	for _, e := range svc.Endpoints {
		if e.Proxy != "" && g.opts.ProxyDown(e.Proxy) {
			b.WriteString(e.Proxy)
			b.WriteByte(0)
		}
	}
	return b.String()
}

// newClusterItem generates one cluster (and assignment) alone, so the
// item holds its problems only, and keeps them encoded, not as messages.
func (g *generator) newClusterItem(name string, svc *model.Service, port *model.Port, subsetName string, subset map[string]string, policy *networking.TrafficPolicy, dr *config.Object) *clusterItem {
	one := &generator{s: g.s, p: g.p, r: newResources(), opts: g.opts, hashes: map[string]*route.RouteAction_HashPolicy{},
		scope: g.scope, made: map[proto.Message]*madeResource{}}
	one.makeCluster(name, svc, port, subsetName, subset, policy, dr)
	c, cla := one.r.Clusters[name], one.r.Endpoints[name]
	it := &clusterItem{name: name, hash: one.hashes[name], problems: one.r.problems}
	if g.p.GRPC() {
		if c = grpcCluster(c, cla); c == nil {
			return it
		}
	}
	it.clusterRes = compactResource(name, c)
	it.eds, _ = edsName(c)
	if cla != nil {
		it.claRes = compactResource(name, cla)
	}
	return it
}

// makeCluster generates one outbound cluster and its assignment.
func (g *generator) makeCluster(name string, svc *model.Service, port *model.Port, subsetName string, subset map[string]string, policy *networking.TrafficPolicy, dr *config.Object) {
	c := edsCluster(name)
	applyLoadBalancer(c, policy.GetLoadBalancer())
	applyConnectionPool(c, port, policy.GetConnectionPool())
	applyOutlierDetection(c, policy.GetOutlierDetection())
	g.upstreamTLS(c, svc, port.Number, subsetName, subset, policy.GetTls(), dr)
	if hp := hashPolicy(policy.GetLoadBalancer().GetConsistentHash()); hp != nil {
		g.hashes[name] = hp
	}
	g.r.Clusters[name] = c
	if c.GetType() == cluster.Cluster_EDS {
		g.r.Endpoints[name] = g.loadAssignment(name, svc, port, subset)
	}
}

func edsCluster(name string) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       durationpb.New(ConnectTimeout),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
	}
}

// loadAssignment groups the service's endpoints (those carrying every label
// in subset) by locality. Endpoints whose sidecar lost its xDS stream
// (Options.ProxyDown) are UNHEALTHY.
func (g *generator) loadAssignment(name string, svc *model.Service, port *model.Port, subset map[string]string) *endpoint.ClusterLoadAssignment {
	groups := map[string]*endpoint.LocalityLbEndpoints{}
	for _, e := range svc.Endpoints {
		if !e.Matches(subset) {
			continue
		}
		grp := groups[e.Locality]
		if grp == nil {
			grp = &endpoint.LocalityLbEndpoints{Locality: locality(e.Locality)}
			groups[e.Locality] = grp
		}
		le := lbEndpoint(e, port, g.endpointMetadata(e), g.endpointSidecarTLS(e, port))
		if e.Proxy != "" && g.opts.ProxyDown != nil && g.opts.ProxyDown(e.Proxy) {
			le.HealthStatus = core.HealthStatus_UNHEALTHY
		}
		grp.LbEndpoints = append(grp.LbEndpoints, le)
	}
	cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
	for _, l := range sortedKeys(groups) {
		grp := groups[l]
		// The sum of the endpoints taking traffic: an unhealthy one's share
		// goes to the others, as if it had left.
		var sum uint32
		for _, le := range grp.LbEndpoints {
			if le.GetHealthStatus() != core.HealthStatus_UNHEALTHY {
				sum += le.GetLoadBalancingWeight().GetValue()
			}
		}
		grp.LoadBalancingWeight = wrapperspb.UInt32(max(sum, 1))
		cla.Endpoints = append(cla.Endpoints, grp)
	}
	return cla
}

func locality(s string) *core.Locality {
	parts := strings.SplitN(s, "/", 3)
	l := &core.Locality{Region: parts[0]}
	if len(parts) > 1 {
		l.Zone = parts[1]
	}
	if len(parts) > 2 {
		l.SubZone = parts[2]
	}
	return l
}

// lbEndpoint builds one endpoint with md (if any) as its istio metadata;
// tlsMode marks it as a sidecar taking mTLS, for the cluster's
// transport_socket_matches.
func lbEndpoint(e *model.Endpoint, port *model.Port, md *structpb.Struct, tlsMode bool) *endpoint.LbEndpoint {
	le := &endpoint.LbEndpoint{
		HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
			Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
				Protocol: core.SocketAddress_TCP, Address: e.Address,
				PortSpecifier: &core.SocketAddress_PortValue{PortValue: e.PortFor(port)},
			}}},
		}},
		// Envoy requires weights >= 1; model already defaults 0 to 1.
		LoadBalancingWeight: wrapperspb.UInt32(max(e.Weight, 1)),
	}
	fm := map[string]*structpb.Struct{}
	if md != nil {
		fm["istio"] = md
	}
	if tlsMode {
		fm[TransportSocketMatchKey] = tlsModeMetadata()
	}
	if len(fm) > 0 {
		le.Metadata = &core.Metadata{FilterMetadata: fm}
	}
	return le
}

// endpointMetadata carries the workload identity so proxies can label
// their stats and access logs with it, as Istio's proxies do. It is built
// once per endpoint and shared by the endpoint's clusters.
func (g *generator) endpointMetadata(e *model.Endpoint) *structpb.Struct {
	md, ok := g.istioMD[e]
	if !ok {
		md = newEndpointMetadata(e)
		if g.istioMD == nil {
			g.istioMD = map[*model.Endpoint]*structpb.Struct{}
		}
		g.istioMD[e] = md
	}
	return md
}

func newEndpointMetadata(e *model.Endpoint) *structpb.Struct {
	fields := map[string]*structpb.Value{}
	if e.WorkloadName != "" {
		fields["workload"] = structpb.NewStringValue(e.WorkloadName)
	}
	if e.Namespace != "" {
		fields["namespace"] = structpb.NewStringValue(e.Namespace)
	}
	if e.ServiceAccount != "" {
		fields["service_account"] = structpb.NewStringValue(e.ServiceAccount)
	}
	if len(e.Labels) > 0 {
		lf := map[string]*structpb.Value{}
		for k, v := range e.Labels {
			lf[k] = structpb.NewStringValue(v)
		}
		fields["labels"] = structpb.NewStructValue(&structpb.Struct{Fields: lf})
	}
	if len(fields) == 0 {
		return nil
	}
	return &structpb.Struct{Fields: fields}
}

// sortedPorts returns port numbers ascending.
func sortedPorts[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
