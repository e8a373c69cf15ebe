// Package demo holds the demo applications `weft up --demo NAME` starts:
// their workloads (run as real processes behind real sidecars) and the
// configuration applied when the demo starts.
package demo

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
)

// Workload is one instance `weft up` starts with `weft run`.
type Workload struct {
	Service string            // service name callers use
	Port    uint32            // service port
	Labels  map[string]string // app, version, ...
	App     string            // argument to `weft demo-app DEMO APP`
	Name    string            // instance name (`weft run --name`); generated when empty
	// ServiceAccount is the instance's identity (`weft run
	// --service-account`); empty means "default". Authorization policies
	// match it, so demos use the names their Istio samples use.
	ServiceAccount string
}

// Demo is a runnable demo application.
type Demo struct {
	Name      string
	Namespace string
	// Files is the demo's YAML; Initial names the files applied at start.
	Files     fs.FS
	Initial   []string
	Workloads []Workload
	// Try is the path `weft up` suggests to curl once the demo runs
	// (default "/").
	Try string
	// Serve runs one of the demo's apps on the address in $PORT.
	Serve func(ctx context.Context, app string) error
}

var demos = map[string]*Demo{}

// register adds a demo; called from each demo's init.
func register(d *Demo) { demos[d.Name] = d }

// Lookup returns the named demo.
func Lookup(name string) (*Demo, error) {
	d, ok := demos[name]
	if !ok {
		return nil, fmt.Errorf("unknown demo %q (have: %v)", name, Names())
	}
	return d, nil
}

// Names lists the demos.
func Names() []string {
	var n []string
	for k := range demos {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
