package translate

import (
	"fmt"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// BenchmarkGenerateSidecar generates the resources of one sidecar in a mesh
// of 300 services (3 ports, 4 endpoints, 2 subsets each) with AUDIT, DENY
// and ALLOW policies selecting it.
func BenchmarkGenerateSidecar(b *testing.B) {
	var objs []*config.Object
	for i := 0; i < 300; i++ {
		var eps []*networking.WorkloadEntry
		for j := 0; j < 4; j++ {
			eps = append(eps, &networking.WorkloadEntry{Address: fmt.Sprintf("10.%d.%d.%d", i/200, i%200, j+1), Labels: map[string]string{"version": fmt.Sprintf("v%d", j%2+1)}, ServiceAccount: fmt.Sprintf("sa%d", j)})
		}
		name := fmt.Sprintf("svc%d", i)
		objs = append(objs, obj(config.KindServiceEntry, name, &networking.ServiceEntry{
			Hosts:      []string{name + "." + ns + ".svc.cluster.local"},
			Ports:      []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}, {Number: 9090, Name: "grpc", Protocol: "GRPC"}, {Number: 5432, Name: "tcp", Protocol: "TCP"}},
			Resolution: networking.ServiceEntry_STATIC,
			Endpoints:  eps,
		}))
		objs = append(objs, obj(config.KindDestinationRule, name, &networking.DestinationRule{Host: name, Subsets: []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}}}))
	}
	objs = append(objs, webService())
	for _, a := range []security.AuthorizationPolicy_Action{security.AuthorizationPolicy_ALLOW, security.AuthorizationPolicy_DENY, security.AuthorizationPolicy_AUDIT} {
		objs = append(objs, obj(config.KindAuthorizationPolicy, "p"+a.String(), &security.AuthorizationPolicy{Action: a, Rules: []*security.Rule{{To: []*security.Rule_To{{Operation: &security.Operation{Ports: []string{"8080"}}}}}}}))
	}
	s := model.Build(1, objs)
	m := webMeta()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := Generate(s, m)
		if len(r.problems) > 0 {
			b.Fatal(r.problems)
		}
	}
}
