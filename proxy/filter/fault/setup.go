package fault

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/filter"
)

// Name is the Envoy filter name this filter reads its per-route config under.
const Name = "envoy.filters.http.fault"

func init() { filter.Register(Name, 100, setup) }

func setup(cfg *anypb.Any) (filter.Filter, error) {
	c, err := Parse(cfg)
	if err != nil {
		return nil, err
	}
	return New(c, nil), nil
}

// Config is a validated HTTPFault.
type Config struct {
	// Delay is injected before the request goes on, for DelayPercent of
	// requests; 0 means no delay fault.
	Delay        time.Duration
	DelayPercent filter.Fraction
	// Abort is set when an abort fault is configured.
	Abort bool
	// HTTPStatus is the abort's HTTP status (0 with a gRPC abort).
	HTTPStatus int
	// GRPCStatus is the abort's gRPC status, -1 with an HTTP abort.
	GRPCStatus   int
	AbortPercent filter.Fraction
	// Body is the abort's response body.
	Body string
}

// DefaultBody is Envoy's abort response body.
const DefaultBody = "fault filter abort"

// Parse validates an envoy.extensions.filters.http.fault.v3.HTTPFault packed
// in cfg. Supported: delay{fixed_delay, percentage}, abort{http_status |
// grpc_status, percentage, response_body}; at least one of delay and abort.
// Percentages take any FractionalPercent denominator; an absent percentage
// is 0%, as in Envoy.
func Parse(cfg *anypb.Any) (*Config, error) {
	m := &faultv3.HTTPFault{}
	if err := cfg.UnmarshalTo(m); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	return ParseMessage(m)
}

// ParseMessage validates m; see Parse.
func ParseMessage(m *faultv3.HTTPFault) (*Config, error) {
	if err := contract.CheckFields(m, "delay", "abort"); err != nil {
		return nil, err
	}
	c := &Config{GRPCStatus: -1}
	if d := m.GetDelay(); d != nil {
		if err := contract.CheckFields(d, "fixed_delay", "percentage"); err != nil {
			return nil, fmt.Errorf("delay.%w", err)
		}
		fd := d.GetFixedDelay()
		if fd == nil {
			return nil, fmt.Errorf("delay.fixed_delay: required")
		}
		if err := fd.CheckValid(); err != nil || fd.AsDuration() <= 0 {
			return nil, fmt.Errorf("delay.fixed_delay: must be a positive duration")
		}
		c.Delay = fd.AsDuration()
		p, err := filter.ParseFraction(d.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("delay.percentage.%w", err)
		}
		c.DelayPercent = p
	}
	if a := m.GetAbort(); a != nil {
		if err := contract.CheckFields(a, "http_status", "grpc_status", "percentage", "response_body"); err != nil {
			return nil, fmt.Errorf("abort.%w", err)
		}
		c.Abort = true
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus >= 600 {
				return nil, fmt.Errorf("abort.http_status: %d not in [200, 600)", e.HttpStatus)
			}
			c.HTTPStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			if e.GrpcStatus > 16 {
				return nil, fmt.Errorf("abort.grpc_status: %d is not a gRPC status code", e.GrpcStatus)
			}
			c.GRPCStatus = int(e.GrpcStatus)
		default:
			return nil, fmt.Errorf("abort.error_type: one of http_status, grpc_status required")
		}
		p, err := filter.ParseFraction(a.GetPercentage())
		if err != nil {
			return nil, fmt.Errorf("abort.percentage.%w", err)
		}
		c.AbortPercent = p
		c.Body = a.GetResponseBody()
		if c.Body == "" {
			c.Body = DefaultBody
		}
	}
	if c.Delay == 0 && !c.Abort {
		return nil, fmt.Errorf("delay, abort: at least one required")
	}
	return c, nil
}
