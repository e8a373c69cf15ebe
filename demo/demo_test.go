package demo

import (
	"bytes"
	"io/fs"
	"testing"

	"github.com/weft-mesh/weft/config"

	"github.com/weft-mesh/weft/workload"
)

// Every demo workload runs under a valid service account, and Bookinfo's
// are the ones Istio's authorization examples name.
func TestServiceAccounts(t *testing.T) {
	for _, name := range Names() {
		d, _ := Lookup(name)
		for _, w := range d.Workloads {
			if w.ServiceAccount == "" {
				continue // "default"
			}
			if err := workload.ValidateServiceAccount(w.ServiceAccount); err != nil {
				t.Errorf("demo %s, %s: %v", name, w.Service, err)
			}
		}
	}
	d, err := Lookup("bookinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range d.Workloads {
		if want := "bookinfo-" + w.Service; w.ServiceAccount != want {
			t.Errorf("bookinfo %s runs as %q, want %q", w.Service, w.ServiceAccount, want)
		}
	}
}

// Every demo `weft up --help` lists starts with configuration that decodes
// and routes the ingress gateway somewhere: a demo must serve through the
// gateway once it is up (test/e2e/demolist_test.go checks that it does).
func TestDemosConfigureTheGateway(t *testing.T) {
	for _, name := range Names() {
		d, _ := Lookup(name)
		if len(d.Initial) == 0 {
			t.Errorf("demo %s applies no configuration at start: nothing routes the gateway to it", name)
			continue
		}
		kinds := map[config.Kind]int{}
		for _, f := range d.Initial {
			b, err := fs.ReadFile(d.Files, f)
			if err != nil {
				t.Errorf("demo %s: %v", name, err)
				continue
			}
			objs, err := config.Decode(f, bytes.NewReader(b))
			if err != nil {
				t.Errorf("demo %s: %v", name, err)
			}
			for _, o := range objs {
				kinds[o.Kind]++
			}
		}
		if kinds[config.KindGateway] == 0 || kinds[config.KindVirtualService] == 0 {
			t.Errorf("demo %s: initial configuration has %v, want a Gateway and a VirtualService", name, kinds)
		}
		if len(d.Workloads) == 0 {
			t.Errorf("demo %s runs no workloads", name)
		}
	}
}
