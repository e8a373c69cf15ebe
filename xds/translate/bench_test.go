package translate

import (
	"fmt"
	"testing"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/xds/node"
)

// benchMesh is 300 services (3 ports, 4 endpoints, 2 subsets each), a
// VirtualService per service, and AUDIT, DENY and ALLOW policies
// selecting the web sidecar.
func benchMesh(weight int32) []*config.Object {
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
		w := int32(90)
		if i == 0 {
			w = weight
		}
		objs = append(objs, obj(config.KindVirtualService, name, &networking.VirtualService{Hosts: []string{name}, Http: []*networking.HTTPRoute{{
			Route: []*networking.HTTPRouteDestination{
				{Destination: &networking.Destination{Host: name, Subset: "v1"}, Weight: w},
				{Destination: &networking.Destination{Host: name, Subset: "v2"}, Weight: 100 - w},
			},
		}}}))
	}
	objs = append(objs, webService())
	for _, a := range []security.AuthorizationPolicy_Action{security.AuthorizationPolicy_ALLOW, security.AuthorizationPolicy_DENY, security.AuthorizationPolicy_AUDIT} {
		objs = append(objs, obj(config.KindAuthorizationPolicy, "p"+a.String(), &security.AuthorizationPolicy{Action: a, Rules: []*security.Rule{{To: []*security.Rule_To{{Operation: &security.Operation{Ports: []string{"8080"}}}}}}}))
	}
	return objs
}

// BenchmarkGenerateSidecar measures generating one sidecar's resources in
// that mesh:
//   - proxy: what each further proxy of a push costs once the shared part
//     exists (each op a different sidecar of the same namespace);
//   - cold: everything from nothing, a new Translator per op (what every
//     proxy cost before generation was shared);
//   - change: the next snapshot after one VirtualService weight change,
//     then one proxy: the shared part regenerated from the caches.
func BenchmarkGenerateSidecar(b *testing.B) {
	s := model.Build(1, benchMesh(90))
	check := func(out *Output) {
		if err := out.Validate(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("proxy", func(b *testing.B) {
		tr := NewTranslator(Options{})
		check(tr.Generate(s, webMeta(), nil))
		metas := make([]*node.Meta, b.N)
		for i := range metas {
			metas[i] = webMeta()
			metas[i].Name = fmt.Sprintf("web-%d", i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			check(tr.Generate(s, metas[i], nil))
		}
	})
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			check(NewTranslator(Options{}).Generate(s, webMeta(), nil))
		}
	})
	b.Run("change", func(b *testing.B) {
		// Two object lists that share every object but svc0's
		// VirtualService; each op is the next snapshot (model included).
		objs := benchMesh(90)
		alt := append([]*config.Object(nil), objs...)
		for i, o := range benchMesh(80) {
			if o.Kind == config.KindVirtualService && o.Meta.Name == "svc0" {
				alt[i] = o
			}
		}
		lists := [][]*config.Object{objs, alt}
		tr := NewTranslator(Options{})
		prev := model.Build(1, objs)
		check(tr.Generate(prev, webMeta(), nil))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			next := model.BuildWith(int64(i+2), lists[(i+1)%2], model.Options{Previous: prev})
			check(tr.Generate(next, webMeta(), nil))
			prev = next
		}
	})
}
