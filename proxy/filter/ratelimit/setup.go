package ratelimit

import (
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	lrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
)

// Name is the filter's Envoy name.
const Name = "envoy.filters.http.local_ratelimit"

// MinFillInterval is the shortest token_bucket.fill_interval accepted (the
// RateLimit object's own lower bound for limit.per).
const MinFillInterval = time.Millisecond

// order puts a route's own rate limit first in its chain, before fault
// (100) and cors (200), as in the contract's HCM order.
const order = 50

func init() {
	filter.Register(Name, order, func(cfg *anypb.Any) (filter.Filter, error) {
		l, err := Parse(cfg, true, nil)
		if err != nil {
			return nil, err
		}
		return l, nil
	})
	filter.RegisterHCM(Name, func(cfg *anypb.Any, _ filter.HCMOptions) (filter.Filter, error) {
		l, err := Parse(cfg, false, nil)
		if l == nil || err != nil {
			return nil, err // a nil *Limiter must not become a non-nil Filter
		}
		return l, nil
	})
}

// Parse validates an envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
// packed in cfg and compiles it, with a fresh bucket on clock (nil:
// Monotonic). perRoute is true for a route's typed_per_filter_config,
// where token_bucket is required; at the HCM a config without token_bucket
// limits nothing and Parse returns nil.
func Parse(cfg *anypb.Any, perRoute bool, clock Clock) (*Limiter, error) {
	m := &lrlv3.LocalRateLimit{}
	if err := cfg.UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	return ParseMessage(m, perRoute, clock)
}

// ParseMessage validates m; see Parse and README.md.
func ParseMessage(m *lrlv3.LocalRateLimit, perRoute bool, clock Clock) (*Limiter, error) {
	if err := contract.CheckFields(m, "stat_prefix", "status", "token_bucket", "filter_enabled", "filter_enforced",
		"enable_x_ratelimit_headers", "local_rate_limit_per_downstream_connection"); err != nil {
		return nil, err
	}
	if m.GetStatPrefix() == "" {
		return nil, fmt.Errorf("stat_prefix: required")
	}
	if m.GetLocalRateLimitPerDownstreamConnection() {
		return nil, fmt.Errorf("local_rate_limit_per_downstream_connection: unsupported value true")
	}
	tb := m.GetTokenBucket()
	if tb == nil {
		if perRoute {
			return nil, fmt.Errorf("token_bucket: required in a route's config")
		}
		return nil, nil
	}
	if err := contract.CheckFields(tb, "max_tokens", "tokens_per_fill", "fill_interval"); err != nil {
		return nil, fmt.Errorf("token_bucket.%w", err)
	}
	if tb.GetMaxTokens() == 0 {
		return nil, fmt.Errorf("token_bucket.max_tokens: must be above 0")
	}
	perFill := uint32(1) // Envoy's default
	if v := tb.GetTokensPerFill(); v != nil {
		if v.GetValue() == 0 {
			return nil, fmt.Errorf("token_bucket.tokens_per_fill: must be above 0")
		}
		perFill = v.GetValue()
	}
	fi := tb.GetFillInterval()
	if fi == nil {
		return nil, fmt.Errorf("token_bucket.fill_interval: required")
	}
	if err := fi.CheckValid(); err != nil || fi.AsDuration() < MinFillInterval {
		return nil, fmt.Errorf("token_bucket.fill_interval: must be at least %v", MinFillInterval)
	}
	l := &Limiter{
		bucket:   NewBucket(tb.GetMaxTokens(), perFill, fi.AsDuration(), clock),
		status:   429,
		perRoute: perRoute,
		mark:     markHCM,
	}
	if perRoute {
		l.mark = markRoute
	}
	if s := m.GetStatus(); s != nil {
		if err := contract.CheckFields(s, "code"); err != nil {
			return nil, fmt.Errorf("status.%w", err)
		}
		if c := int(s.GetCode()); c < 400 || c >= 600 {
			return nil, fmt.Errorf("status.code: %d not in [400, 600)", c)
		}
		l.status = int(s.GetCode())
	}
	var err error
	if l.enabled, err = runtimeFraction(m.GetFilterEnabled()); err != nil {
		return nil, fmt.Errorf("filter_enabled.%w", err)
	}
	if l.enforced, err = runtimeFraction(m.GetFilterEnforced()); err != nil {
		return nil, fmt.Errorf("filter_enforced.%w", err)
	}
	switch m.GetEnableXRatelimitHeaders() {
	case ratelimitv3.XRateLimitHeadersRFCVersion_OFF:
	case ratelimitv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03:
		l.headers = true
		l.limit = []string{fmt.Sprint(tb.GetMaxTokens())}
	default:
		return nil, fmt.Errorf("enable_x_ratelimit_headers: unsupported %v", m.GetEnableXRatelimitHeaders())
	}
	return l, nil
}

// runtimeFraction compiles a RuntimeFractionalPercent's default value; an
// absent one is 0%, Envoy's safe default for filter_enabled and
// filter_enforced.
func runtimeFraction(p *corev3.RuntimeFractionalPercent) (filter.Fraction, error) {
	if p == nil {
		return filter.ParseFraction(nil)
	}
	if err := contract.CheckFields(p, "default_value", "runtime_key"); err != nil {
		return filter.Fraction{}, err
	}
	f, err := filter.ParseFraction(p.GetDefaultValue())
	if err != nil {
		return f, fmt.Errorf("default_value.%w", err)
	}
	return f, nil
}
