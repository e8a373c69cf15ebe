package translate

import (
	"math"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/model"
)

// HTTPProtocolOptionsKey is the typed_extension_protocol_options key Envoy
// reads upstream HTTP settings from.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// Envoy's outlier detection defaults. Istio leaves them to Envoy; weft
// writes them out so every proxy reads the same numbers from the config.
const (
	defaultOutlierInterval    = 10 * time.Second
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionPercent = 10
	defaultConsecutive5xx     = 5
	enforcingAlways           = 100
)

// defaultCircuitBreakers are Istio's circuit breakers for every cluster
// whose DestinationRule sets no connectionPool (and the base of those that
// do): every threshold at its maximum. Envoy's own defaults (1024
// connections, pending and active requests, 3 concurrent retries) are
// left out on purpose: 3 retries across a whole cluster "has shown to be
// insufficient during pod churn", when an instance goes away under load
// and every request routed to it needs a retry before the new endpoints
// arrive.
func defaultCircuitBreakers() *cluster.CircuitBreakers {
	return &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{{
		Priority:           core.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(math.MaxUint32),
		MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
		MaxRequests:        wrapperspb.UInt32(math.MaxUint32),
		MaxRetries:         wrapperspb.UInt32(math.MaxUint32),
		TrackRemaining:     true,
	}}}
}

// applyConnectionPool translates connectionPool into circuit breakers,
// connect_timeout and upstream HTTP protocol options. As in Istio, a limit
// left unset means "unlimited" (MaxUint32), not Envoy's default of 1024:
// writing a connectionPool for one limit must not impose the others; and
// without a connectionPool every limit is unlimited.
func applyConnectionPool(c *cluster.Cluster, port *model.Port, cp *networking.ConnectionPoolSettings) {
	c.CircuitBreakers = defaultCircuitBreakers()
	if cp == nil {
		return
	}
	th := c.CircuitBreakers.Thresholds[0]
	limit := func(dst **wrapperspb.UInt32Value, n int32) {
		if n > 0 {
			*dst = wrapperspb.UInt32(uint32(n))
		}
	}
	limit(&th.MaxConnections, cp.GetTcp().GetMaxConnections())
	limit(&th.MaxPendingRequests, cp.GetHttp().GetHttp1MaxPendingRequests())
	limit(&th.MaxRequests, cp.GetHttp().GetHttp2MaxRequests())
	limit(&th.MaxRetries, cp.GetHttp().GetMaxRetries())
	if ct := cp.GetTcp().GetConnectTimeout(); ct != nil {
		c.ConnectTimeout = durationpb.New(ct.AsDuration())
	}
	h := cp.GetHttp()
	if !port.IsHTTP() || h.GetIdleTimeout() == nil && h.GetMaxRequestsPerConnection() <= 0 {
		return
	}
	common := &core.HttpProtocolOptions{}
	if it := h.GetIdleTimeout(); it != nil {
		common.IdleTimeout = durationpb.New(it.AsDuration())
	}
	if n := h.GetMaxRequestsPerConnection(); n > 0 {
		common.MaxRequestsPerConnection = wrapperspb.UInt32(uint32(n))
	}
	opts := &upstreamhttp.HttpProtocolOptions{
		CommonHttpProtocolOptions: common,
		// Envoy refuses HttpProtocolOptions without an upstream protocol
		// choice; HTTP/1.1 is what the weft proxy speaks upstream.
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
					HttpProtocolOptions: &core.Http1ProtocolOptions{},
				},
			},
		},
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{HTTPProtocolOptionsKey: mustAny(opts)}
}

// applyOutlierDetection translates outlierDetection. consecutive5xxErrors
// wins over the legacy consecutiveErrors; with neither, Envoy's default of
// 5 applies, written out. A count of 0 disables that detector, which Envoy
// expresses as enforcement 0. minHealthPercent is not part of the contract.
func applyOutlierDetection(c *cluster.Cluster, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	out := &cluster.OutlierDetection{
		Interval:           durationpb.New(defaultOutlierInterval),
		BaseEjectionTime:   durationpb.New(defaultBaseEjectionTime),
		MaxEjectionPercent: wrapperspb.UInt32(defaultMaxEjectionPercent),
	}
	var n uint32 = defaultConsecutive5xx
	switch {
	case od.GetConsecutive_5XxErrors() != nil:
		n = od.GetConsecutive_5XxErrors().GetValue()
	case od.GetConsecutiveErrors() > 0: //nolint:staticcheck // legacy field, still accepted
		n = uint32(od.GetConsecutiveErrors()) //nolint:staticcheck
	}
	out.Consecutive_5Xx, out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(n), enforcing(n)
	if g := od.GetConsecutiveGatewayErrors(); g != nil {
		out.ConsecutiveGatewayFailure, out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(g.GetValue()), enforcing(g.GetValue())
	}
	if d := od.GetInterval(); d != nil {
		out.Interval = durationpb.New(d.AsDuration())
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		out.BaseEjectionTime = durationpb.New(d.AsDuration())
	}
	if p := od.GetMaxEjectionPercent(); p > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(p))
	}
	c.OutlierDetection = out
}

// enforcing turns a detector on (100%) when its threshold is positive.
func enforcing(threshold uint32) *wrapperspb.UInt32Value {
	if threshold == 0 {
		return wrapperspb.UInt32(0)
	}
	return wrapperspb.UInt32(enforcingAlways)
}
