package demo

import (
	"testing"

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
