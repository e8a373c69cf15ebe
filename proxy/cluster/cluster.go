// Package cluster compiles Envoy v3 Cluster and ClusterLoadAssignment
// resources into immutable upstream clusters: a set of healthy endpoints, the
// load balancer chosen by the cluster's lb_policy, circuit-breaker thresholds,
// outlier detection and per-cluster HTTP/1.1 transports, plaintext or TLS per
// endpoint (transport_socket, transport_socket_matches).
//
// What must outlive one compiled configuration (circuit-breaker counters,
// outlier ejections, pooled upstream connections) lives in a State owned by
// the proxy and shared by every Cluster compiled through it.
package cluster

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/weft-mesh/weft/proxy/capture"
	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/lb/leastrequest"
	"github.com/weft-mesh/weft/proxy/lb/maglev"
	"github.com/weft-mesh/weft/proxy/lb/originaldst"
	"github.com/weft-mesh/weft/proxy/lb/random"
	"github.com/weft-mesh/weft/proxy/lb/ringhash"
	"github.com/weft-mesh/weft/proxy/lb/roundrobin"
	"github.com/weft-mesh/weft/proxy/mtls"
)

// DefaultConnectTimeout is used when a cluster has no connect_timeout.
const DefaultConnectTimeout = 10 * time.Second

// Cluster is a compiled upstream cluster. Its configuration is immutable; its
// counters and ejection state are shared, through the State it was compiled
// with, with the clusters of the same name in earlier and later configs.
type Cluster struct {
	// Name is the cluster's xDS name, e.g. "outbound|8080||catalog.default.svc.cluster.local".
	Name string
	// Type is "EDS", "STATIC" or "ORIGINAL_DST".
	Type string
	// Policy is the load-balancing policy.
	Policy lb.Policy
	// ConnectTimeout bounds dialing an endpoint.
	ConnectTimeout time.Duration
	// Endpoints are the healthy endpoints the balancer picks from (none for
	// ORIGINAL_DST, whose endpoint is each request's own destination).
	Endpoints []*lb.Endpoint
	// Balancer picks among all Endpoints, ignoring outlier ejections; Pick
	// is what the data path uses.
	Balancer lb.Balancer
	// Limits are the circuit-breaker thresholds.
	Limits Thresholds
	// Outlier is the outlier-detection configuration, nil when disabled.
	Outlier *OutlierConfig
	// HTTP holds the upstream connection settings (those of endpoints
	// using the default transport socket).
	HTTP HTTPSettings
	// TLS is the transport socket of endpoints no transport_socket_matches
	// entry selects; nil is plaintext.
	TLS *mtls.Upstream

	sockets   []socket                    // transport_socket_matches, then the default
	epSocket  map[*lb.Endpoint]int        // index into sockets, for endpoints not on the default
	epTrans   map[*lb.Endpoint]*transport // nil when every endpoint uses transport
	factory   lb.Factory
	shared    *shared          // counters and hosts of this cluster name
	hosts     map[string]*host // by endpoint address; nil without outlier detection
	picker    atomic.Pointer[picker]
	building  atomic.Bool
	transport *transport
}

// Pick returns the endpoint for r (which may be nil for TCP connections),
// or nil when the cluster has no healthy endpoint. Hosts ejected by outlier
// detection are skipped; when every host is ejected, Pick chooses among all
// of them, as Envoy does below its healthy panic threshold. Pick is
// lock-free.
func (c *Cluster) Pick(r *http.Request, h lb.Hash) *lb.Endpoint {
	if c.hosts == nil || c.shared.ejected.Load() == 0 {
		return c.Balancer.Pick(r, h)
	}
	return c.currentPicker().b.Pick(r, h)
}

// PickConn returns the endpoint for a TCP connection down: for an
// ORIGINAL_DST cluster its original destination (none when down was not
// redirected: it would lead back to where it already is), otherwise what
// Pick chooses without a request.
func (c *Cluster) PickConn(down net.Conn) *lb.Endpoint {
	if c.Policy == lb.ClusterProvided {
		if dst, ok := capture.Destination(down); ok {
			return originaldst.Endpoint(dst)
		}
		return nil
	}
	return c.Pick(nil, lb.Hash{})
}

// AssignmentName returns the name of the ClusterLoadAssignment an EDS cluster
// reads its endpoints from: eds_cluster_config.service_name if set, else the
// cluster's name.
func AssignmentName(c *clusterv3.Cluster) string {
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.GetName()
}

// Compile validates c and builds a Cluster with a private State: counters
// and ejections start from zero. Proxies use State.Compile instead so that
// they survive configuration swaps. For EDS clusters cla holds the endpoints
// (nil means none yet); for STATIC clusters cla is ignored and the inline
// load_assignment is used.
func Compile(c *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) (*Cluster, error) {
	return NewState(StateOptions{}).Compile(c, cla)
}

func (s *State) compile(c *clusterv3.Cluster, cla *endpointv3.ClusterLoadAssignment) (*Cluster, error) {
	if err := contract.CheckFields(c, "name", "type", "eds_cluster_config", "connect_timeout",
		"lb_policy", "load_assignment", "metadata", "alt_stat_name", "circuit_breakers",
		"outlier_detection", "typed_extension_protocol_options", "ring_hash_lb_config",
		"maglev_lb_config", "original_dst_lb_config", "cleanup_interval", "common_lb_config",
		"transport_socket", "transport_socket_matches", "upstream_bind_config"); err != nil {
		return nil, err
	}
	if c.GetName() == "" {
		return nil, fmt.Errorf("name: empty")
	}
	out := &Cluster{Name: c.GetName(), ConnectTimeout: DefaultConnectTimeout}
	if d := c.GetConnectTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return nil, fmt.Errorf("connect_timeout: must be a positive duration")
		}
		out.ConnectTimeout = d.AsDuration()
	}
	if err := contract.CheckFields(c.GetCommonLbConfig(), "healthy_panic_threshold"); err != nil {
		return nil, fmt.Errorf("common_lb_config.%w", err)
	}
	var err error
	if out.factory, err = balancer(c, out); err != nil {
		return nil, err
	}
	switch c.GetType() {
	case clusterv3.Cluster_EDS:
		out.Type = "EDS"
		if c.LoadAssignment != nil {
			return nil, fmt.Errorf("load_assignment: not allowed for an EDS cluster")
		}
		if err := contract.CheckFields(c.GetEdsClusterConfig(), "eds_config", "service_name"); err != nil {
			return nil, fmt.Errorf("eds_cluster_config.%w", err)
		}
	case clusterv3.Cluster_STATIC:
		out.Type = "STATIC"
		if c.LoadAssignment == nil {
			return nil, fmt.Errorf("load_assignment: required for a STATIC cluster")
		}
		cla = c.LoadAssignment
	case clusterv3.Cluster_ORIGINAL_DST:
		out.Type = "ORIGINAL_DST"
		if c.LoadAssignment != nil || c.EdsClusterConfig != nil {
			return nil, fmt.Errorf("type: an ORIGINAL_DST cluster takes no endpoints")
		}
		cla = nil
	default:
		return nil, fmt.Errorf("type: unsupported %s", c.GetType())
	}
	if (out.Type == "ORIGINAL_DST") != (out.Policy == lb.ClusterProvided) {
		return nil, fmt.Errorf("lb_policy: CLUSTER_PROVIDED goes with type ORIGINAL_DST and only with it")
	}
	if out.Type != "ORIGINAL_DST" && (c.GetOriginalDstLbConfig() != nil || c.CleanupInterval != nil) {
		return nil, fmt.Errorf("original_dst_lb_config: only for an ORIGINAL_DST cluster")
	}
	if err := parseSockets(c, out); err != nil {
		return nil, err
	}
	eps, err := endpoints(cla, out.socketOf)
	if err != nil {
		if c.GetType() == clusterv3.Cluster_STATIC {
			return nil, fmt.Errorf("load_assignment.%w", err)
		}
		return nil, fmt.Errorf("endpoints %q: %w", cla.GetClusterName(), err)
	}
	if out.Limits, err = thresholds(c.GetCircuitBreakers()); err != nil {
		return nil, fmt.Errorf("circuit_breakers.%w", err)
	}
	if out.Outlier, err = outlierConfig(c.GetOutlierDetection()); err != nil {
		return nil, fmt.Errorf("outlier_detection.%w", err)
	}
	if out.HTTP, err = httpSettings(c, out); err != nil {
		return nil, err
	}
	out.Endpoints = eps
	out.Balancer = out.factory(eps)
	s.attach(out)
	return out, nil
}

// balancer validates the lb_policy and its config and returns its factory.
func balancer(c *clusterv3.Cluster, out *Cluster) (lb.Factory, error) {
	if c.GetRingHashLbConfig() != nil && c.GetLbPolicy() != clusterv3.Cluster_RING_HASH {
		return nil, fmt.Errorf("ring_hash_lb_config: only with lb_policy RING_HASH")
	}
	if c.GetMaglevLbConfig() != nil && c.GetLbPolicy() != clusterv3.Cluster_MAGLEV {
		return nil, fmt.Errorf("maglev_lb_config: only with lb_policy MAGLEV")
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		out.Policy = lb.RoundRobin
		return roundrobin.New, nil
	case clusterv3.Cluster_RANDOM:
		out.Policy = lb.Random
		return random.New, nil
	case clusterv3.Cluster_LEAST_REQUEST:
		out.Policy = lb.LeastRequest
		return leastrequest.New, nil
	case clusterv3.Cluster_RING_HASH:
		out.Policy = lb.RingHash
		cfg, err := ringHashConfig(c.GetRingHashLbConfig())
		if err != nil {
			return nil, fmt.Errorf("ring_hash_lb_config.%w", err)
		}
		return func(eps []*lb.Endpoint) lb.Balancer { return ringhash.New(eps, cfg) }, nil
	case clusterv3.Cluster_MAGLEV:
		out.Policy = lb.Maglev
		size, err := maglevTableSize(c.GetMaglevLbConfig())
		if err != nil {
			return nil, fmt.Errorf("maglev_lb_config.%w", err)
		}
		return func(eps []*lb.Endpoint) lb.Balancer { return maglev.New(eps, size) }, nil
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		out.Policy = lb.ClusterProvided
		o := c.GetOriginalDstLbConfig()
		if err := contract.CheckFields(o, "use_http_header", "http_header_name"); err != nil {
			return nil, fmt.Errorf("original_dst_lb_config.%w", err)
		}
		b := &originaldst.Balancer{}
		if o.GetUseHttpHeader() {
			b.Header = o.GetHttpHeaderName()
			if b.Header == "" {
				b.Header = originaldst.DefaultHeader
			}
		}
		return func([]*lb.Endpoint) lb.Balancer { return b }, nil
	}
	return nil, fmt.Errorf("lb_policy: unsupported %s", c.GetLbPolicy())
}

// Endpoints validates a ClusterLoadAssignment and returns its healthy
// endpoints at the best (lowest) priority that has any. A nil cla yields no
// endpoints.
//
// Weights follow Envoy's locality-weighted semantics: when every locality has
// a load_balancing_weight, an endpoint's share is its locality's share times
// its share within the locality. When each locality's weight is the sum of its
// endpoints' weights (as weft's control plane sends), that reduces to the plain
// endpoint weight. Without locality weights, endpoint weights are used alone.
func Endpoints(cla *endpointv3.ClusterLoadAssignment) ([]*lb.Endpoint, error) {
	return endpoints(cla, nil)
}

// endpoints is Endpoints, calling socketOf (when not nil) with each healthy
// endpoint and its metadata.
func endpoints(cla *endpointv3.ClusterLoadAssignment, socketOf func(*lb.Endpoint, *corev3.Metadata)) ([]*lb.Endpoint, error) {
	if cla == nil {
		return nil, nil
	}
	if err := contract.CheckFields(cla, "cluster_name", "endpoints", "policy"); err != nil {
		return nil, err
	}
	type group struct {
		locW uint32
		sumW uint64
		eps  []*lb.Endpoint
	}
	byPrio := map[uint32][]*group{}
	best := ^uint32(0)
	allLocW := true
	for i, lle := range cla.GetEndpoints() {
		if err := contract.CheckFields(lle, "locality", "lb_endpoints", "load_balancing_weight", "priority"); err != nil {
			return nil, fmt.Errorf("endpoints[%d].%w", i, err)
		}
		g := &group{}
		if w := lle.GetLoadBalancingWeight(); w != nil {
			if w.GetValue() == 0 {
				return nil, fmt.Errorf("endpoints[%d].load_balancing_weight: must be at least 1", i)
			}
			g.locW = w.GetValue()
		} else {
			allLocW = false
		}
		loc := locality(lle.GetLocality())
		for j, lbe := range lle.GetLbEndpoints() {
			ep, healthy, err := endpoint(lbe, loc)
			if err != nil {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d].%w", i, j, err)
			}
			if healthy {
				if socketOf != nil {
					socketOf(ep, lbe.GetMetadata())
				}
				g.eps = append(g.eps, ep)
				g.sumW += uint64(ep.Weight)
			}
		}
		if len(g.eps) > 0 {
			byPrio[lle.GetPriority()] = append(byPrio[lle.GetPriority()], g)
			best = min(best, lle.GetPriority())
		}
	}
	groups := byPrio[best]
	if len(groups) == 0 {
		return nil, nil
	}
	exact := true // every locality weight equals its endpoints' sum
	for _, g := range groups {
		if uint64(g.locW) != g.sumW {
			exact = false
		}
	}
	var out []*lb.Endpoint
	if !allLocW || exact {
		for _, g := range groups {
			out = append(out, g.eps...)
		}
		return out, nil
	}
	// Locality-weighted: effective share = locW/sumLocW * w/sumW(locality),
	// scaled to integers (max 10000) for the balancers.
	var maxEff float64
	effs := map[*lb.Endpoint]float64{}
	for _, g := range groups {
		for _, e := range g.eps {
			f := float64(g.locW) * float64(e.Weight) / float64(g.sumW)
			effs[e] = f
			maxEff = max(maxEff, f)
		}
	}
	for _, g := range groups {
		for _, e := range g.eps {
			e.Weight = uint32(max(1, effs[e]/maxEff*10000+0.5))
			out = append(out, e)
		}
	}
	return out, nil
}

func endpoint(lbe *endpointv3.LbEndpoint, loc string) (*lb.Endpoint, bool, error) {
	if err := contract.CheckFields(lbe, "endpoint", "health_status", "load_balancing_weight", "metadata"); err != nil {
		return nil, false, err
	}
	ep := lbe.GetEndpoint()
	if ep == nil {
		return nil, false, fmt.Errorf("endpoint: required")
	}
	if err := contract.CheckFields(ep, "address", "hostname", "health_check_config"); err != nil {
		return nil, false, fmt.Errorf("endpoint.%w", err)
	}
	addr, err := SocketAddress(ep.GetAddress())
	if err != nil {
		return nil, false, fmt.Errorf("endpoint.address.%w", err)
	}
	w := uint32(1)
	if lw := lbe.GetLoadBalancingWeight(); lw != nil {
		if lw.GetValue() == 0 {
			return nil, false, fmt.Errorf("load_balancing_weight: must be at least 1")
		}
		w = lw.GetValue()
	}
	healthy := false
	switch lbe.GetHealthStatus() {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
		healthy = true
	}
	return &lb.Endpoint{Address: addr, Locality: loc, Weight: w, Meta: endpointMeta(lbe.GetMetadata())}, healthy, nil
}

// endpointMeta reads the workload identity the control plane puts in an
// endpoint's filter_metadata["istio"] (workload, namespace,
// service_account, labels.app, labels.version); nil when there is none.
// Unknown keys are ignored: metadata is informational.
func endpointMeta(md *corev3.Metadata) *lb.Metadata {
	f := md.GetFilterMetadata()["istio"].GetFields()
	if len(f) == 0 {
		return nil
	}
	labels := f["labels"].GetStructValue().GetFields()
	m := &lb.Metadata{
		Workload:       f["workload"].GetStringValue(),
		Namespace:      f["namespace"].GetStringValue(),
		ServiceAccount: f["service_account"].GetStringValue(),
		App:            labels["app"].GetStringValue(),
		Version:        labels["version"].GetStringValue(),
	}
	return m
}

// SocketAddress validates a core Address holding a TCP socket_address with a
// port_value and returns it as "host:port". Error messages name the field
// relative to the Address.
func SocketAddress(a *corev3.Address) (string, error) {
	if a == nil {
		return "", fmt.Errorf("socket_address: required")
	}
	if err := contract.CheckFields(a, "socket_address"); err != nil {
		return "", err
	}
	sa := a.GetSocketAddress()
	if sa == nil {
		return "", fmt.Errorf("socket_address: required")
	}
	if err := contract.CheckFields(sa, "address", "port_value", "protocol", "ipv4_compat"); err != nil {
		return "", fmt.Errorf("socket_address.%w", err)
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return "", fmt.Errorf("socket_address.protocol: unsupported %s", sa.GetProtocol())
	}
	if sa.GetAddress() == "" {
		return "", fmt.Errorf("socket_address.address: empty")
	}
	if sa.GetPortValue() > 65535 {
		return "", fmt.Errorf("socket_address.port_value: %d out of range", sa.GetPortValue())
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))), nil
}

func locality(l *corev3.Locality) string {
	if l == nil {
		return ""
	}
	return l.GetRegion() + "/" + l.GetZone() + "/" + l.GetSubZone()
}
