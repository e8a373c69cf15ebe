package demo

import "github.com/weft-mesh/weft/demo/bookinfo"

func init() {
	labels := func(app, version string) map[string]string { return map[string]string{"app": app, "version": version} }
	register(&Demo{
		Name:      "bookinfo",
		Namespace: "default",
		Files:     bookinfo.Files,
		Initial:   []string{"bookinfo-gateway.yaml", "destination-rule-all.yaml"},
		Try:       "/productpage",
		Workloads: []Workload{
			{Service: "details", Port: bookinfo.Port, Labels: labels("details", "v1"), App: "details"},
			{Service: "ratings", Port: bookinfo.Port, Labels: labels("ratings", "v1"), App: "ratings"},
			{Service: "reviews", Port: bookinfo.Port, Labels: labels("reviews", "v1"), App: "reviews"},
			{Service: "reviews", Port: bookinfo.Port, Labels: labels("reviews", "v2"), App: "reviews"},
			{Service: "reviews", Port: bookinfo.Port, Labels: labels("reviews", "v3"), App: "reviews"},
			{Service: "productpage", Port: bookinfo.Port, Labels: labels("productpage", "v1"), App: "productpage"},
		},
		Serve: bookinfo.Serve,
	})
}
