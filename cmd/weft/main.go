// Command weft is a service mesh in one binary: control plane, sidecar and
// gateway proxy, and the CLI that drives them.
package main

import (
	"os"

	"github.com/weft-mesh/weft/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
