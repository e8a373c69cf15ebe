package translate

import (
	"net/http"
	"strconv"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// Istio's retry defaults, applied to every route that does not say
// otherwise.
const (
	DefaultRetryOn          = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
	DefaultRetryAttempts    = 2
	hostSelectionMaxRetries = 5
	previousHostsPredicate  = "envoy.retry_host_predicates.previous_hosts"
	retriableStatusCodes    = "retriable-status-codes"
)

// retryPolicy translates retries the way Istio does: no retries field
// means Istio's default policy (2 attempts on connection-level failures and
// 503); attempts 0 means no retry policy at all; otherwise the default is
// overridden field by field. With consistent hashing the retry must stay
// on the hashed host, so the previous_hosts predicate is left out.
// retryRemoteLocalities and backoff are not part of the xDS contract.
func retryPolicy(in *networking.HTTPRetry, hashing bool) *route.RetryPolicy {
	if in != nil && in.GetAttempts() <= 0 {
		return nil
	}
	out := &route.RetryPolicy{
		RetryOn:                       DefaultRetryOn,
		NumRetries:                    wrapperspb.UInt32(DefaultRetryAttempts),
		RetriableStatusCodes:          []uint32{http.StatusServiceUnavailable},
		HostSelectionRetryMaxAttempts: hostSelectionMaxRetries,
	}
	avoidPrevious := !hashing
	if in != nil {
		out.NumRetries = wrapperspb.UInt32(uint32(in.GetAttempts()))
		if in.GetRetryOn() != "" {
			out.RetryOn, out.RetriableStatusCodes = parseRetryOn(in.GetRetryOn())
		}
		if t := in.GetPerTryTimeout(); t != nil {
			out.PerTryTimeout = durationpb.New(t.AsDuration())
		}
		if b := in.GetRetryIgnorePreviousHosts(); b != nil {
			avoidPrevious = b.GetValue()
		}
	}
	if avoidPrevious {
		out.RetryHostPredicate = []*route.RetryPolicy_RetryHostPredicate{{
			Name:       previousHostsPredicate,
			ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushosts.PreviousHostsPredicate{})},
		}}
	}
	return out
}

// parseRetryOn splits Istio's retryOn: numeric HTTP status codes become
// retriable_status_codes (and switch on retriable-status-codes); every
// other condition passes through to Envoy unchanged, in order.
func parseRetryOn(s string) (string, []uint32) {
	var conds []string
	var codes []uint32
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if n, err := strconv.Atoi(part); err == nil && http.StatusText(n) != "" {
			codes = append(codes, uint32(n))
			continue
		}
		conds = append(conds, part)
	}
	if len(codes) > 0 && !contains(conds, retriableStatusCodes) {
		conds = append(conds, retriableStatusCodes)
	}
	return strings.Join(conds, ","), codes
}
