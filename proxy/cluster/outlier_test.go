package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weft-mesh/weft/proxy/lb"
)

func addrs(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("127.0.0.1:%d", 10001+i))
	}
	return out
}

func withOutlier(c *clusterv3.Cluster, consecutive, percent uint32, base time.Duration) *clusterv3.Cluster {
	c.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:          wrapperspb.UInt32(consecutive),
		EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
		Interval:                 durationpb.New(50 * time.Millisecond),
		BaseEjectionTime:         durationpb.New(base),
		MaxEjectionPercent:       wrapperspb.UInt32(percent),
	}
	return c
}

func fail(c *Cluster, ep *lb.Endpoint, n int) {
	for range n {
		c.Observe(ep, 500, false)
	}
}

func picks(c *Cluster, n int) map[string]int {
	m := map[string]int{}
	for range n {
		m[c.Pick(nil, lb.Hash{}).Address]++
	}
	return m
}

func TestEjectAfterConsecutive5xxAndReturn(t *testing.T) {
	for _, p := range []clusterv3.Cluster_LbPolicy{clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_RING_HASH, clusterv3.Cluster_MAGLEV, clusterv3.Cluster_LEAST_REQUEST} {
		t.Run(p.String(), func(t *testing.T) {
			pc := withOutlier(static(t, "c", addrs(3)...), 3, 100, 200*time.Millisecond)
			pc.LbPolicy = p
			c := mustCompile(t, NewState(StateOptions{}), pc)
			bad := c.Endpoints[0]
			fail(c, bad, 2)
			c.Observe(bad, 200, false) // a success resets the count
			fail(c, bad, 2)
			if c.Ejected(bad.Address) {
				t.Fatal("ejected without 3 consecutive 5xx")
			}
			fail(c, bad, 1)
			if !c.Ejected(bad.Address) {
				t.Fatal("not ejected after 3 consecutive 5xx")
			}
			if got := picks(c, 1000); got[bad.Address] != 0 || len(got) != 2 {
				t.Fatalf("picks while ejected: %v", got)
			}
			eventually(t, "the host's return", func() bool { return !c.Ejected(bad.Address) })
			if got := picks(c, 1000); got[bad.Address] == 0 {
				t.Fatalf("returned host never picked: %v", got)
			}
		})
	}
}

func TestGatewayFailures(t *testing.T) {
	pc := static(t, "c", addrs(2)...)
	pc.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:                    wrapperspb.UInt32(100),
		ConsecutiveGatewayFailure:          wrapperspb.UInt32(3),
		EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
		BaseEjectionTime:                   durationpb.New(time.Hour),
	}
	c := mustCompile(t, NewState(StateOptions{}), pc)
	ep := c.Endpoints[1]
	c.Observe(ep, 0, true)
	c.Observe(ep, 502, false)
	c.Observe(ep, 500, false) // 5xx but not a gateway failure: resets it
	c.Observe(ep, 504, false)
	c.Observe(ep, 503, false)
	if c.Ejected(ep.Address) {
		t.Fatal("ejected with the gateway-failure run broken by a 500")
	}
	c.Observe(ep, 0, true)
	if !c.Ejected(ep.Address) {
		t.Fatal("not ejected after 3 consecutive gateway failures")
	}
	if c.Outlier.Enforcing5xx != 100 || c.Outlier.MaxEjectionPercent != 10 || c.Outlier.Interval != 10*time.Second {
		t.Errorf("defaults: %+v", c.Outlier)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	c := mustCompile(t, NewState(StateOptions{}), withOutlier(static(t, "c", addrs(4)...), 1, 50, time.Hour))
	for _, e := range c.Endpoints {
		fail(c, e, 1)
	}
	n := 0
	for _, e := range c.Endpoints {
		if c.Ejected(e.Address) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d of 4 hosts ejected with max_ejection_percent 50", n)
	}
	// 10% of 4 hosts is less than one: Envoy still ejects one.
	c = mustCompile(t, NewState(StateOptions{}), withOutlier(static(t, "c", addrs(4)...), 1, 10, time.Hour))
	fail(c, c.Endpoints[0], 1)
	fail(c, c.Endpoints[1], 1)
	if !c.Ejected(c.Endpoints[0].Address) || c.Ejected(c.Endpoints[1].Address) {
		t.Error("want exactly the first host ejected at 10%")
	}
	if c.Ejected("nope") {
		t.Error("unknown host ejected")
	}
	for i := range mayEjectCases {
		tc := mayEjectCases[i]
		if got := mayEject(tc.ejected, tc.total, tc.percent); got != tc.want {
			t.Errorf("mayEject(%d, %d, %d) = %v", tc.ejected, tc.total, tc.percent, got)
		}
	}
}

var mayEjectCases = []struct {
	ejected, total int
	percent        uint32
	want           bool
}{
	{0, 10, 10, true}, {1, 10, 10, false}, {1, 10, 20, true}, {0, 3, 0, false}, {2, 3, 100, true},
}

func TestAllEjectedPanics(t *testing.T) {
	c := mustCompile(t, NewState(StateOptions{}), withOutlier(static(t, "c", addrs(2)...), 1, 100, time.Hour))
	fail(c, c.Endpoints[0], 1)
	fail(c, c.Endpoints[1], 1)
	if got := picks(c, 200); len(got) != 2 {
		t.Errorf("all ejected: picks %v, want both (panic mode)", got)
	}
}

func TestEjectionSurvivesRecompile(t *testing.T) {
	s := NewState(StateOptions{})
	pc := withOutlier(static(t, "c", addrs(3)...), 2, 100, time.Hour)
	c1 := mustCompile(t, s, pc)
	bad := c1.Endpoints[2].Address
	fail(c1, c1.Endpoints[2], 2)
	c2 := mustCompile(t, s, pc)
	s.Retain([]*Cluster{c2})
	if !c2.Ejected(bad) {
		t.Fatal("ejection lost by recompiling")
	}
	if got := picks(c2, 500); got[bad] != 0 {
		t.Fatalf("recompiled cluster picked the ejected host: %v", got)
	}
	// The host leaves the cluster: its state goes; back later, it starts clean.
	c3 := mustCompile(t, s, withOutlier(static(t, "c", addrs(2)...), 2, 100, time.Hour))
	s.Retain([]*Cluster{c3})
	c4 := mustCompile(t, s, pc)
	s.Retain([]*Cluster{c4})
	if c4.Ejected(bad) {
		t.Error("a host removed and re-added kept its ejection")
	}
	// A consecutive count in progress carries over too.
	fail(c4, c4.Endpoints[0], 1)
	c5 := mustCompile(t, s, pc)
	fail(c5, c5.Endpoints[0], 1)
	if !c5.Ejected(c5.Endpoints[0].Address) {
		t.Error("consecutive count reset by recompiling")
	}
}

func TestOutlierErrors(t *testing.T) {
	for field, od := range map[string]*clusterv3.OutlierDetection{
		"enforcing_success_rate":     {EnforcingSuccessRate: wrapperspb.UInt32(100)},
		"interval":                   {Interval: durationpb.New(0)},
		"max_ejection_percent":       {MaxEjectionPercent: wrapperspb.UInt32(101)},
		"success_rate_minimum_hosts": {SuccessRateMinimumHosts: wrapperspb.UInt32(1)},
	} {
		pc := static(t, "c", addrs(1)...)
		pc.OutlierDetection = od
		if _, err := Compile(pc, nil); err == nil || !strings.Contains(err.Error(), "outlier_detection."+field) {
			t.Errorf("%s: err = %v", field, err)
		}
	}
}
