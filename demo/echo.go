package demo

import (
	"context"
	"embed"
	"fmt"

	"github.com/weft-mesh/weft/demo/echo"
)

func init() {
	register(&Demo{
		Name:      "echo",
		Namespace: "default",
		Files:     embed.FS{},
		Workloads: []Workload{
			{Service: "echo", Port: 8080, Labels: map[string]string{"app": "echo", "version": "v1"}, App: "echo"},
			{Service: "echo", Port: 8080, Labels: map[string]string{"app": "echo", "version": "v2"}, App: "echo"},
		},
		Serve: func(ctx context.Context, app string) error {
			if app != "echo" {
				return fmt.Errorf("demo echo: unknown app %q (have: echo)", app)
			}
			return echo.Serve(ctx)
		},
	})
}
