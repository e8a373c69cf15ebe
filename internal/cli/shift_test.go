package cli

import (
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/config"
)

func dest(host, subset string, weight int32) *networking.HTTPRouteDestination {
	return &networking.HTTPRouteDestination{Destination: &networking.Destination{Host: host, Subset: subset}, Weight: weight}
}

func weights(r *networking.HTTPRoute) map[string]int32 {
	m := map[string]int32{}
	for _, d := range r.GetRoute() {
		m[d.GetDestination().GetSubset()] = d.GetWeight()
	}
	return m
}

func TestShiftWeights(t *testing.T) {
	vs := &networking.VirtualService{Hosts: []string{"service-b"}, Http: []*networking.HTTPRoute{{
		Route: []*networking.HTTPRouteDestination{dest("service-b", "vm", 100), dest("service-b", "v1", 0)},
	}}}
	for _, step := range []int{0, 10, 25, 50, 75, 90, 100} {
		out, err := shiftWeights(vs, "service-b", "vm", "v1", step)
		if err != nil {
			t.Fatal(err)
		}
		w := weights(out.Http[0])
		if w["vm"] != int32(100-step) || w["v1"] != int32(step) || len(out.Http[0].Route) != 2 {
			t.Errorf("step %d: %v", step, w)
		}
	}
	if vs.Http[0].Route[0].Weight != 100 {
		t.Error("shiftWeights changed its input")
	}
}

func TestShiftWeightsAddsTo(t *testing.T) {
	// A lone destination without a weight takes all the traffic; the
	// --to destination is added with its host and port.
	vs := &networking.VirtualService{Http: []*networking.HTTPRoute{
		{Match: []*networking.HTTPMatchRequest{{Uri: &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: "/a"}}}},
			Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "reviews.default.svc.cluster.local", Subset: "v1", Port: &networking.PortSelector{Number: 9080}}}}},
		{Route: []*networking.HTTPRouteDestination{dest("other", "v1", 0)}},
	}}
	from, to, ok := currentSplit(vs, "reviews", "v1", "v3")
	if !ok || from != 100 || to != 0 {
		t.Errorf("currentSplit = %d %d %v", from, to, ok)
	}
	out, err := shiftWeights(vs, "reviews", "v1", "v3", 25)
	if err != nil {
		t.Fatal(err)
	}
	r := out.Http[0].Route
	if len(r) != 2 || r[1].Destination.Subset != "v3" || r[1].Destination.Host != "reviews.default.svc.cluster.local" ||
		r[1].Destination.GetPort().GetNumber() != 9080 || r[0].Weight != 75 || r[1].Weight != 25 {
		t.Errorf("route: %v", r)
	}
	if len(out.Http[1].Route) != 1 || out.Http[1].Route[0].Weight != 0 {
		t.Errorf("a route to another service changed: %v", out.Http[1].Route)
	}
	if out.Http[0].Match[0].GetUri().GetPrefix() != "/a" {
		t.Error("match lost")
	}
}

func TestShiftWeightsEveryMatchingRoute(t *testing.T) {
	// Like virtual-service-reviews-test-v2: jason's route and the default.
	vs := &networking.VirtualService{Http: []*networking.HTTPRoute{
		{Route: []*networking.HTTPRouteDestination{dest("reviews", "v2", 0)}},
		{Route: []*networking.HTTPRouteDestination{dest("reviews", "v1", 0)}},
	}}
	out, err := shiftWeights(vs, "reviews", "v1", "v3", 50)
	if err != nil {
		t.Fatal(err)
	}
	if w := weights(out.Http[1]); w["v1"] != 50 || w["v3"] != 50 {
		t.Errorf("default route: %v", w)
	}
	if len(out.Http[0].Route) != 1 {
		t.Errorf("jason's route changed: %v", out.Http[0].Route)
	}
}

func TestShiftWeightsErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		vs   *networking.VirtualService
		step int
		want string
	}{
		"no from": {&networking.VirtualService{Http: []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{dest("service-b", "v1", 0)}}}},
			10, "no HTTP route sends to subset vm of service-b (its HTTP routes send to service-b subset v1)"},
		"no http": {&networking.VirtualService{}, 10, "it has no HTTP routes"},
		"third destination": {&networking.VirtualService{Http: []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{
			dest("service-b", "vm", 80), dest("service-b", "v2", 20)}}}}, 10, "also sends 20% to service-b subset v2"},
		"other host's subset": {&networking.VirtualService{Http: []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{
			dest("service-c", "vm", 0)}}}}, 10, "no HTTP route sends to subset vm"},
		"bad step": {&networking.VirtualService{}, 101, "not a percentage"},
	} {
		_, err := shiftWeights(tc.vs, "service-b", "vm", "v1", tc.step)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", name, err, tc.want)
		}
	}
}

func TestDescribeSplit(t *testing.T) {
	for _, tc := range []struct {
		from, to int
		want     string
	}{
		{100, 0, "all traffic is routed to vm"},
		{90, 10, "90% traffic is routed to vm 10% to v1"},
		{25, 75, "25% traffic is routed to vm 75% to v1"},
		{0, 100, "all traffic is routed to v1"},
	} {
		if got := describeSplit("vm", "v1", tc.from, tc.to); got != tc.want {
			t.Errorf("%d/%d: %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestUndefinedSubsets(t *testing.T) {
	vs := &networking.VirtualService{Http: []*networking.HTTPRoute{
		{Route: []*networking.HTTPRouteDestination{dest("other", "v9", 0)}},
		{Route: []*networking.HTTPRouteDestination{dest("reviews", "v3", 100), dest("reviews.default.svc.cluster.local", "v9", 0)}},
	}}
	fields := subsetFields(vs, "reviews", "v3", "v9")
	if len(fields) != 2 || fields["spec.http[1].route[0].destination.subset"] != "v3" || fields["spec.http[1].route[1].destination.subset"] != "v9" {
		t.Fatalf("subsetFields = %v", fields)
	}
	key := config.Key{Kind: config.KindVirtualService, Namespace: "default", Name: "reviews"}
	o := shiftOptions{service: "reviews", from: "v3", to: "v9"}
	undefined := func(field, subset string) analyze.Message {
		return analyze.Message{Code: analyze.CodeUndefinedSubset, Level: analyze.Warning, Object: key, Field: field,
			Text: `subset "` + subset + `" is not defined by DestinationRule default/reviews, which applies to host reviews.default.svc.cluster.local; requests will fail with 503`}
	}
	// Findings that are not about the shifted destinations do not stop it.
	other := []analyze.Message{
		undefined("spec.http[0].route[0].destination.subset", "v9"), // another service's route
		{Code: analyze.CodeWeightSum, Level: analyze.Warning, Object: key, Field: "spec.http[1].route[1].destination.subset"},
		func() analyze.Message {
			m := undefined("spec.http[1].route[1].destination.subset", "v9")
			m.Object.Name = "elsewhere"
			return m
		}(),
	}
	if err := undefinedSubsets(other, key, fields, o); err != nil {
		t.Errorf("unrelated findings refused the shift: %v", err)
	}
	err := undefinedSubsets(append(other, undefined("spec.http[1].route[1].destination.subset", "v9")), key, fields, o)
	if err == nil {
		t.Fatal("a shift to an undefined subset was not refused")
	}
	for _, want := range []string{"nothing applied", `--to v9: subset "v9" is not defined by DestinationRule default/reviews`,
		"host reviews.default.svc.cluster.local", "virtualservice default/reviews spec.http[1].route[1].destination.subset"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	err = undefinedSubsets([]analyze.Message{undefined("spec.http[1].route[0].destination.subset", "v3")}, key, fields, o)
	if err == nil || !strings.Contains(err.Error(), `--from v3: subset "v3"`) {
		t.Errorf("a shift from an undefined subset: %v", err)
	}
}
