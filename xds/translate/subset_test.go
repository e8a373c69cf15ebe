package translate

import (
	"sort"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	networking "istio.io/api/networking/v1alpha3"
)

// A DestinationRule subset without labels, as Istio accepts it (its
// tunneling configuration gives such subsets their own trafficPolicy),
// is every endpoint of the host under the subset's policy.
func TestSubsetWithoutLabels(t *testing.T) {
	dr := catalogDR(nil,
		&networking.Subset{Name: "all", TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: simpleLB(networking.LoadBalancerSettings_LEAST_REQUEST)}},
		&networking.Subset{Name: "v2", Labels: map[string]string{"version": "v2"}})
	r := generate(t, coolapp(dr, vs("catalog", nil, []string{"catalog"}, &networking.HTTPRoute{
		Route: []*networking.HTTPRouteDestination{dest("catalog", "all", 0, 0)},
	})), sidecarMeta())

	addrs := func(name string) []string {
		t.Helper()
		cla := r.Endpoints[name]
		if cla == nil {
			t.Fatalf("no load assignment %s; have %v", name, sortedKeys(r.Endpoints))
		}
		var out []string
		for _, grp := range cla.GetEndpoints() {
			for _, le := range grp.GetLbEndpoints() {
				out = append(out, le.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
			}
		}
		sort.Strings(out)
		return out
	}
	const all = "outbound|8080|all|catalog.coolapp.svc.cluster.local"
	c := r.Clusters[all]
	if c == nil {
		t.Fatalf("no cluster %s; have %v", all, sortedKeys(r.Clusters))
	}
	if c.GetLbPolicy() != cluster.Cluster_LEAST_REQUEST {
		t.Errorf("subset policy not applied: lb_policy %v", c.GetLbPolicy())
	}
	if got := addrs(all); len(got) != 3 || got[0] != "127.0.0.2" || got[2] != "127.0.0.4" {
		t.Errorf("label-less subset endpoints %v, want all three of catalog's", got)
	}
	if got := addrs("outbound|8080|v2|catalog.coolapp.svc.cluster.local"); len(got) != 2 {
		t.Errorf("subset v2 endpoints %v, want the two v2 ones", got)
	}
	rc := r.Routes["outbound"]
	if got := vhost(t, rc, "catalog.coolapp.svc.cluster.local:8080").GetRoutes()[0].GetRoute().GetCluster(); got != all {
		t.Errorf("route to subset all goes to %q", got)
	}
}
