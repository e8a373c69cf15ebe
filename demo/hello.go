package demo

import "github.com/weft-mesh/weft/demo/hello"

func init() {
	register(&Demo{
		Name:      "hello",
		Namespace: "default",
		Files:     hello.Files,
		Initial:   []string{"hello-gateway.yaml", "service-b-destination-rule.yaml", "virtual-service-service-b.yaml"},
		Try:       "/hello-service",
		Workloads: []Workload{
			// The legacy VM, registered under its own name, as a
			// WorkloadEntry for a VM would be.
			{Service: "service-b", Port: hello.Port, Labels: map[string]string{"app": "service-b", "version": "vm"}, App: "service-b-vm", Name: "fedora01", ServiceAccount: "service-b"},
			// The container deployment the traffic moves to.
			{Service: "service-b", Port: hello.Port, Labels: map[string]string{"app": "service-b", "version": "v1"}, App: "service-b", ServiceAccount: "service-b"},
			{Service: "service-a", Port: hello.Port, Labels: map[string]string{"app": "service-a", "version": "v1"}, App: "service-a", ServiceAccount: "service-a"},
		},
		Serve: hello.Serve,
	})
}
