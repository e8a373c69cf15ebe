package cluster

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/lb"
)

// OutlierConfig is a cluster's outlier_detection, with Envoy's defaults for
// the fields not set.
type OutlierConfig struct {
	// Consecutive5xx ejects a host after this many 5xx responses (gateway
	// errors included) in a row (default 5), enforced with probability
	// Enforcing5xx percent (default 100).
	Consecutive5xx uint32
	Enforcing5xx   uint32
	// ConsecutiveGatewayFailure ejects a host after this many 502, 503, 504
	// or connection failures in a row (default 5), enforced with probability
	// EnforcingGatewayFailure percent (Envoy's default 0: counted, not enforced).
	ConsecutiveGatewayFailure uint32
	EnforcingGatewayFailure   uint32
	// Interval is the period over which an unejected host's ejection
	// multiplier decays by one (default 10s).
	Interval time.Duration
	// BaseEjectionTime times the number of times a host was ejected is how
	// long it stays out (default 30s), capped at MaxEjectionTime (default
	// 300s, never below BaseEjectionTime).
	BaseEjectionTime time.Duration
	MaxEjectionTime  time.Duration
	// MaxEjectionPercent bounds the share of hosts ejected at once (default
	// 10). As in Envoy, one host may always be ejected when it is above 0.
	MaxEjectionPercent uint32
}

func outlierConfig(od *clusterv3.OutlierDetection) (*OutlierConfig, error) {
	if od == nil {
		return nil, nil
	}
	if err := contract.CheckFields(od, "consecutive_5xx", "enforcing_consecutive_5xx", "consecutive_gateway_failure",
		"enforcing_consecutive_gateway_failure", "interval", "base_ejection_time", "max_ejection_time",
		"max_ejection_percent", "enforcing_success_rate", "split_external_local_origin_errors"); err != nil {
		return nil, err
	}
	if od.GetEnforcingSuccessRate() != nil && od.GetEnforcingSuccessRate().GetValue() != 0 {
		return nil, fmt.Errorf("enforcing_success_rate: success-rate ejection is not supported; set 0")
	}
	if od.GetSplitExternalLocalOriginErrors() {
		return nil, fmt.Errorf("split_external_local_origin_errors: unsupported")
	}
	o := &OutlierConfig{
		Consecutive5xx: u32(od.GetConsecutive_5Xx(), 5), Enforcing5xx: u32(od.GetEnforcingConsecutive_5Xx(), 100),
		ConsecutiveGatewayFailure: u32(od.GetConsecutiveGatewayFailure(), 5),
		EnforcingGatewayFailure:   u32(od.GetEnforcingConsecutiveGatewayFailure(), 0),
		MaxEjectionPercent:        u32(od.GetMaxEjectionPercent(), 10),
	}
	var err error
	if o.Interval, err = positive(od.GetInterval(), 10*time.Second, "interval"); err != nil {
		return nil, err
	}
	if o.BaseEjectionTime, err = positive(od.GetBaseEjectionTime(), 30*time.Second, "base_ejection_time"); err != nil {
		return nil, err
	}
	if o.MaxEjectionTime, err = positive(od.GetMaxEjectionTime(), 300*time.Second, "max_ejection_time"); err != nil {
		return nil, err
	}
	o.MaxEjectionTime = max(o.MaxEjectionTime, o.BaseEjectionTime)
	for name, v := range map[string]uint32{"enforcing_consecutive_5xx": o.Enforcing5xx,
		"enforcing_consecutive_gateway_failure": o.EnforcingGatewayFailure, "max_ejection_percent": o.MaxEjectionPercent} {
		if v > 100 {
			return nil, fmt.Errorf("%s: %d is not a percentage", name, v)
		}
	}
	return o, nil
}

func u32(v *wrapperspb.UInt32Value, def uint32) uint32 {
	if v == nil {
		return def
	}
	return v.GetValue()
}

func positive(d *durationpb.Duration, def time.Duration, field string) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
		return 0, fmt.Errorf("%s: must be a positive duration", field)
	}
	return d.AsDuration(), nil
}

// host is the outlier-detection state of one endpoint address of one cluster
// name. It outlives configurations: the State hands the same host to every
// compile of the cluster while the address stays in it.
type host struct {
	addr     string
	c5xx     atomic.Uint32 // consecutive 5xx, gateway errors included
	cgw      atomic.Uint32 // consecutive gateway failures
	ejected  atomic.Bool
	removed  bool // dropped from the State; guarded by shared.mu
	times    int  // ejection multiplier; guarded by shared.mu
	unejectT time.Time
	timer    *time.Timer
}

// Observe feeds outlier detection with the outcome of one attempt to ep:
// the status received (0 when none) and whether the attempt failed at the
// gateway level (connect failure, reset or timeout without a response).
// 5xx responses and gateway errors count towards consecutive_5xx; 502, 503,
// 504 and gateway errors towards consecutive_gateway_failure; anything else
// resets both. Reaching a threshold ejects the host at once (subject to its
// enforcing percentage and max_ejection_percent). Observe never blocks on
// the success path.
func (c *Cluster) Observe(ep *lb.Endpoint, code int, gatewayErr bool) {
	if c.hosts == nil || ep == nil {
		return
	}
	h := c.hosts[ep.Address]
	if h == nil {
		return
	}
	gw := gatewayErr || code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
	if !gw && code < 500 {
		if h.c5xx.Load() != 0 {
			h.c5xx.Store(0)
		}
		if h.cgw.Load() != 0 {
			h.cgw.Store(0)
		}
		return
	}
	o := c.Outlier
	if n := h.c5xx.Add(1); n == o.Consecutive5xx {
		h.c5xx.Store(0)
		if enforce(o.Enforcing5xx) {
			c.eject(h, "consecutive_5xx")
			return
		}
	}
	if !gw {
		h.cgw.Store(0)
		return
	}
	if n := h.cgw.Add(1); n == o.ConsecutiveGatewayFailure {
		h.cgw.Store(0)
		if enforce(o.EnforcingGatewayFailure) {
			c.eject(h, "consecutive_gateway_failure")
		}
	}
}

func enforce(percent uint32) bool {
	return percent >= 100 || (percent > 0 && rand.Uint32N(100) < percent)
}

// mayEject applies max_ejection_percent as Envoy does: a host may be ejected
// if, with it, the ejected share stays within the percentage, or if no host
// is ejected yet (and the percentage is above 0).
func mayEject(ejected, total int, percent uint32) bool {
	if percent == 0 {
		return false
	}
	return ejected == 0 || uint64(ejected+1)*100 <= uint64(total)*uint64(percent)
}

// eject takes h out of rotation for BaseEjectionTime times its (decayed)
// ejection count, and schedules its return.
func (c *Cluster) eject(h *host, reason string) {
	s, o := c.shared, c.Outlier
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.ejected.Load() || h.removed {
		return
	}
	total := len(c.Endpoints)
	if !mayEject(int(s.ejected.Load()), total, o.MaxEjectionPercent) {
		s.log.Info("outlier ejection skipped: max_ejection_percent reached",
			"cluster", c.Name, "host", h.addr, "reason", reason, "ejected", s.ejected.Load(), "hosts", total)
		return
	}
	now := time.Now()
	if h.times > 0 && !h.unejectT.IsZero() {
		// Envoy decrements the multiplier once per interval a host stays in.
		h.times = max(0, h.times-int(now.Sub(h.unejectT)/o.Interval))
	}
	h.times++
	d := min(o.BaseEjectionTime*time.Duration(h.times), o.MaxEjectionTime)
	h.ejected.Store(true)
	s.ejected.Add(1)
	s.gen.Add(1)
	s.log.Info("outlier ejected host", "cluster", c.Name, "host", h.addr, "reason", reason,
		"duration", d, "times", h.times)
	h.timer = time.AfterFunc(d, func() { s.uneject(h) })
}

// uneject returns h to rotation.
func (s *shared) uneject(h *host) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !h.ejected.Load() {
		return
	}
	h.ejected.Store(false)
	h.c5xx.Store(0)
	h.cgw.Store(0)
	h.unejectT = time.Now()
	h.timer = nil
	s.ejected.Add(-1)
	s.gen.Add(1)
	s.log.Info("outlier host returned", "cluster", s.name, "host", h.addr)
}

// Ejected reports whether the host at addr is currently ejected by outlier
// detection.
func (c *Cluster) Ejected(addr string) bool {
	h := c.hosts[addr]
	return h != nil && h.ejected.Load()
}

// picker is a balancer over the hosts not ejected as of generation gen.
type picker struct {
	gen uint64
	b   lb.Balancer
}

// currentPicker returns the balancer over the current non-ejected hosts,
// rebuilding it after an ejection or a return. One goroutine rebuilds while
// the others keep using the previous one.
func (c *Cluster) currentPicker() *picker {
	gen := c.shared.gen.Load()
	p := c.picker.Load()
	if p != nil && p.gen == gen {
		return p
	}
	if p != nil && !c.building.CompareAndSwap(false, true) {
		return p
	}
	healthy := make([]*lb.Endpoint, 0, len(c.Endpoints))
	for _, e := range c.Endpoints {
		if h := c.hosts[e.Address]; h == nil || !h.ejected.Load() {
			healthy = append(healthy, e)
		}
	}
	np := &picker{gen: gen, b: c.Balancer}
	if len(healthy) > 0 && len(healthy) < len(c.Endpoints) {
		np.b = c.factory(healthy)
	} // all ejected: panic mode, pick among all
	c.picker.Store(np)
	if p != nil {
		c.building.Store(false)
	}
	return np
}
