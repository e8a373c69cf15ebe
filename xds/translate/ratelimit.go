package translate

import (
	"fmt"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrl "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/config"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
)

// RateLimitStatPrefix is the stat_prefix of every local_ratelimit config.
const RateLimitStatPrefix = "http_local_rate_limiter"

// rateLimitFilter builds the HCM's local_ratelimit filter and the
// per-route configs from the RateLimits selecting the proxy (sorted by
// namespace/name). A RateLimit without routes is the HCM's bucket; one
// naming routes gives each of those routes its own bucket, which replaces
// the HCM's for requests on that route. When several RateLimits claim the
// HCM or one route, the first wins: buckets do not stack. With only
// per-route limits, the HCM filter carries no bucket and passes everything
// the routes do not limit.
func (g *generator) rateLimitFilter(rls []*config.Object) (*hcm.HttpFilter, map[string]*anypb.Any) {
	var whole *anypb.Any
	routes := map[string]*anypb.Any{}
	for _, o := range rls {
		rl, ok := o.Spec.(*weftv1alpha1.RateLimit)
		if !ok {
			continue
		}
		cfg, err := localRateLimit(rl.GetLimit())
		if err != nil {
			g.r.problem("RateLimit %s/%s: %v", o.Meta.Namespace, o.Meta.Name, err)
			continue
		}
		a := g.toAny(fmt.Sprintf("RateLimit %s/%s", o.Meta.Namespace, o.Meta.Name), cfg)
		if a == nil {
			continue
		}
		if len(rl.GetRoutes()) == 0 {
			if whole == nil {
				whole = a
			}
			continue
		}
		for _, r := range rl.GetRoutes() {
			if _, taken := routes[r]; !taken {
				routes[r] = a
			}
		}
	}
	switch {
	case whole != nil:
		return httpFilter(rateLimitFilterName, whole), routes
	case len(routes) > 0:
		return httpFilter(rateLimitFilterName, mustAny(&localrl.LocalRateLimit{StatPrefix: RateLimitStatPrefix})), routes
	}
	return nil, nil
}

// localRateLimit is the token bucket of one RateLimit.
func localRateLimit(l *weftv1alpha1.Limit) (*localrl.LocalRateLimit, error) {
	switch {
	case l == nil:
		return nil, fmt.Errorf("limit: required")
	case l.GetRequests() == 0:
		return nil, fmt.Errorf("limit.requests: must be > 0")
	case l.GetPer() == nil:
		return nil, fmt.Errorf("limit.per: required")
	case l.GetPer().CheckValid() != nil || l.GetPer().AsDuration() < time.Millisecond:
		return nil, fmt.Errorf("limit.per: %v is less than 1ms", l.GetPer().AsDuration())
	}
	burst := l.GetBurst()
	if burst == 0 {
		burst = l.GetRequests()
	}
	all := func(key string) *core.RuntimeFractionalPercent {
		return &core.RuntimeFractionalPercent{
			DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED},
			RuntimeKey:   key,
		}
	}
	return &localrl.LocalRateLimit{
		StatPrefix: RateLimitStatPrefix,
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     burst,
			TokensPerFill: wrapperspb.UInt32(l.GetRequests()),
			FillInterval:  durationpb.New(l.GetPer().AsDuration()),
		},
		FilterEnabled:           all("local_rate_limit_enabled"),
		FilterEnforced:          all("local_rate_limit_enforced"),
		EnableXRatelimitHeaders: ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
	}, nil
}

// applyRouteLimits gives every route of rc that a RateLimit names its
// local_ratelimit config. Each Envoy route gets its own copy, so its own
// bucket.
func (g *generator) applyRouteLimits(rc *route.RouteConfiguration) {
	limits := g.security().routeLimits
	if len(limits) == 0 {
		return
	}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			cfg, ok := limits[r.GetName()]
			if !ok {
				continue
			}
			if r.TypedPerFilterConfig == nil {
				r.TypedPerFilterConfig = map[string]*anypb.Any{}
			}
			r.TypedPerFilterConfig[rateLimitFilterName] = proto.Clone(cfg).(*anypb.Any)
		}
	}
}
