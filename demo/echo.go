package demo

import (
	"context"
	"fmt"

	"github.com/weft-mesh/weft/demo/echo"
)

func init() {
	register(&Demo{
		Name:      "echo",
		Namespace: "default",
		Files:     echo.Files,
		Initial:   []string{"echo-gateway.yaml", "destination-rule.yaml"},
		Workloads: []Workload{
			{Service: "echo", Port: 8080, Labels: map[string]string{"app": "echo", "version": "v1"}, App: "echo"},
			{Service: "echo", Port: 8080, Labels: map[string]string{"app": "echo", "version": "v2"}, App: "echo"},
		},
		Serve: func(ctx context.Context, app string) error {
			switch app {
			case "echo":
				return echo.Serve(ctx)
			case "tcp":
				return echo.ServeTCP(ctx)
			case "stream":
				return echo.ServeStream(ctx)
			}
			return fmt.Errorf("demo echo: unknown app %q (have: echo, tcp, stream)", app)
		},
	})
}
