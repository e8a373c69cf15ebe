package translate

import (
	"math"

	faultcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
)

// perMillion is the denominator weft uses for every FractionalPercent: it
// carries Istio's fractional percentages (0.1% and finer) exactly.
const perMillion = 1_000_000

// faultConfig translates a fault into the per-route config of
// envoy.filters.http.fault, or nil if nothing in it can be expressed.
// Like Istio, an exponential delay (never implemented by Envoy) is
// dropped, as is an abort with neither an HTTP nor a known gRPC status.
func faultConfig(in *networking.HTTPFaultInjection) *faultv3.HTTPFault {
	if in == nil {
		return nil
	}
	out := &faultv3.HTTPFault{}
	if d := in.GetDelay(); d != nil && d.GetFixedDelay() != nil {
		out.Delay = &faultcommon.FaultDelay{
			FaultDelaySecifier: &faultcommon.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d.GetFixedDelay().AsDuration())},
			Percentage:         delayPercentage(d),
		}
	}
	if a := in.GetAbort(); a != nil {
		abort := &faultv3.FaultAbort{Percentage: fraction(a.GetPercentage(), 100)}
		switch e := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(e.HttpStatus)}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			if code, ok := config.GRPCStatusCode(e.GrpcStatus); ok {
				abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: code}
			}
		}
		if abort.ErrorType != nil {
			out.Abort = abort
		}
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

// delayPercentage prefers percentage over the legacy integer percent; with
// neither, no request is delayed, as Istio documents ("If left unspecified,
// no request will be delayed"); the analyzer warns about it (WEFT0111).
func delayPercentage(d *networking.HTTPFaultInjection_Delay) *typev3.FractionalPercent {
	if d.GetPercentage() == nil {
		return percentOf(float64(d.GetPercent())) //nolint:staticcheck // legacy field, still accepted
	}
	return fraction(d.GetPercentage(), 0)
}

// fraction converts an Istio Percent to a per-million FractionalPercent,
// using def (a percentage) when p is unset.
func fraction(p *networking.Percent, def float64) *typev3.FractionalPercent {
	if p == nil {
		return percentOf(def)
	}
	return percentOf(p.GetValue())
}

// percentOf converts a percentage (0..100, fractional) to parts per
// million. Rounding, not truncation, keeps 14.3% at 143000 where float
// arithmetic gives 142999.99...
func percentOf(pct float64) *typev3.FractionalPercent {
	n := uint32(0)
	switch {
	case pct >= 100:
		n = perMillion
	case pct > 0:
		n = uint32(math.Round(pct * perMillion / 100))
	}
	return &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_MILLION}
}
