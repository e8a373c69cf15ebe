package demo

import "github.com/weft-mesh/weft/demo/coolapp"

func init() {
	register(&Demo{
		Name:      "coolapp",
		Namespace: "coolapp",
		Files:     coolapp.Files,
		Initial:   []string{"service-mesh-gw.yaml"},
		Workloads: []Workload{
			{Service: "catalog", Port: 8080, Labels: map[string]string{"app": "catalog", "version": "v1"}, App: "catalog", ServiceAccount: "catalog"},
			{Service: "catalog", Port: 8080, Labels: map[string]string{"app": "catalog", "version": "v2"}, App: "catalog", ServiceAccount: "catalog"},
			{Service: "partner", Port: 8080, Labels: map[string]string{"app": "partner", "version": "v1"}, App: "partner", ServiceAccount: "partner"},
			{Service: "gateway", Port: 8080, Labels: map[string]string{"app": "gateway", "version": "v1"}, App: "gateway", ServiceAccount: "gateway"},
		},
		Serve: coolapp.Serve,
	})
}
