// Command xds-scale measures the control plane at scale: N simulated
// sidecars on real ADS streams from a separate process, a mesh of M
// services, and how fast and at what cost changes reach them. See
// bench/xdsscale and docs/BENCHMARKS.md ("Control plane at scale").
//
//	go run ./bench/xds-scale                      # 1000 services, 2000 proxies
//	go run ./bench/xds-scale -services 300 -proxies 200 -changes 5
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/weft-mesh/weft/bench/xdsscale"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := xdsscale.Main(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "xds-scale:", err)
		os.Exit(1)
	}
}
