package e2e

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const pushSvc = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: config-probe}
spec:
  hosts: [config-probe.default.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
`

func pushVS(rev int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: config-probe}
spec:
  hosts: [config-probe]
  http:
  - directResponse:
      status: 200
      body: {string: "rev-%d"}
`, rev)
}

// TestPushReachesEveryProxy applies a change and measures how long each of
// ten sidecars takes to serve it. The budget is 1 s; the times are
// logged (and reported in docs/BENCHMARKS.md), not asserted, since this
// machine is shared.
func TestPushReachesEveryProxy(t *testing.T) {
	m, _ := startControlPlane(t)
	m.apply("default", pushSvc+"---\n"+pushVS(0))
	const n = 10
	var admins []string
	for i := 0; i < n; i++ {
		_, admin := m.startProxy(fmt.Sprintf("sidecar %d", i), "sidecar", "--xds", m.xds, "--name", fmt.Sprintf("probe-%d", i),
			"--workload", "probe", "--labels", "app=probe", "--outbound", anyPort)
		admins = append(admins, admin)
	}
	var outbound []string
	for _, admin := range admins {
		outbound = append(outbound, listenerAddr(t, admin, "virtualOutbound"))
	}
	serves := func(addr, want string) bool {
		code, body, err := get(addr, "config-probe:8080", "/", nil)
		return err == nil && code == 200 && body == want
	}
	for _, a := range outbound {
		eventually(t, 30*time.Second, "sidecar "+a+" configured", func() error {
			if !serves(a, "rev-0") {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	}
	var all []time.Duration
	for rev := 1; rev <= 5; rev++ {
		want := fmt.Sprintf("rev-%d", rev)
		applied := time.Now()
		m.apply("default", pushVS(rev))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, a := range outbound {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := applied.Add(30 * time.Second)
				for !serves(a, want) {
					if time.Now().After(deadline) {
						t.Errorf("sidecar %s never served %s", a, want)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				mu.Lock()
				all = append(all, time.Since(applied))
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		t.Fatal("no measurements")
	}
	pct := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
	var parts []string
	for _, p := range []float64{0.5, 0.9, 1} {
		parts = append(parts, fmt.Sprintf("p%.0f %v", p*100, pct(p).Round(time.Millisecond)))
	}
	t.Logf("apply -> serving on %d sidecars x 5 changes (includes the weft apply CLI run): %s", n, strings.Join(parts, ", "))
}
