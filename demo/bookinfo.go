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
		// Istio's Bookinfo sample runs each service under its own service
		// account, which its authorization examples name.
		Workloads: []Workload{
			{Service: "details", Port: bookinfo.Port, Labels: labels("details", "v1"), App: "details", ServiceAccount: "bookinfo-details"},
			{Service: "ratings", Port: bookinfo.Port, Labels: labels("ratings", "v1"), App: "ratings", ServiceAccount: "bookinfo-ratings"},
			{Service: "reviews", Port: bookinfo.Port, Labels: labels("reviews", "v1"), App: "reviews", ServiceAccount: "bookinfo-reviews"},
			{Service: "reviews", Port: bookinfo.Port, Labels: labels("reviews", "v2"), App: "reviews", ServiceAccount: "bookinfo-reviews"},
			{Service: "reviews", Port: bookinfo.Port, Labels: labels("reviews", "v3"), App: "reviews", ServiceAccount: "bookinfo-reviews"},
			{Service: "productpage", Port: bookinfo.Port, Labels: labels("productpage", "v1"), App: "productpage", ServiceAccount: "bookinfo-productpage"},
		},
		Serve: bookinfo.Serve,
	})
}
