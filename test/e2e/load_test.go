package e2e

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load sends requests from several workers until stopped, bounded by a
// count and a time limit so it always ends.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(addr string, workers int, check func(code int, body string) bool) *load {
	l := &load{stop: make(chan struct{})}
	const maxPerWorker = 100000
	deadline := time.Now().Add(3 * time.Minute)
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < maxPerWorker && time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, err := get(addr, "", "/", nil)
				if err == nil && check(code, body) {
					l.ok.Add(1)
				} else {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.failures) < 10 {
						l.failures = append(l.failures, fmt.Sprintf("%s: %d %q %v", time.Now().Format("15:04:05.000"), code, body, err))
					}
					l.mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond) // a steady load, not a flood
			}
		}()
	}
	return l
}

// waitOK waits until n requests of the load have succeeded; a failure
// meanwhile fails the test at once.
func (l *load) waitOK(t *testing.T, n int64) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%d successful requests of the load", n), func() error {
		if l.failed.Load() > 0 {
			l.finish(t) // stops the load and reports the failures
		}
		if ok := l.ok.Load(); ok < n {
			return fmt.Errorf("%d so far", ok)
		}
		return nil
	})
}

// finish stops the load and fails the test if any request failed.
func (l *load) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("load: %d ok, %d failed", l.ok.Load(), l.failed.Load())
	if l.failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed; first failures:\n%s", l.failed.Load(), l.ok.Load()+l.failed.Load(), strings.Join(l.failures, "\n"))
	}
	if l.ok.Load() == 0 {
		t.Fatal("load sent no successful request")
	}
}

func okCatalog(code int, body string) bool { return code == 200 && catalogLine.MatchString(body) }

const drV1V2 = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: catalog
spec:
  host: catalog
  subsets:
  - name: version-v1
    labels: {version: v1}
  - name: version-v2
    labels: {version: v2}
`

func splitVS(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: catalog
spec:
  hosts: [catalog]
  http:
  - route:
    - destination: {host: catalog, subset: version-v1}
      weight: %d
    - destination: {host: catalog, subset: version-v2}
      weight: %d
`, v1, v2)
}

// TestWeightChangesUnderLoad changes the split 20 times while traffic
// flows; no request may fail.
func TestWeightChangesUnderLoad(t *testing.T) {
	m := upMesh(t, "coolapp")
	m.apply("coolapp", drV1V2)
	m.apply("coolapp", splitVS(50, 50))
	eventually(t, 60*time.Second, "demo answers", func() error {
		_, err := tally(m.gateway, 10)
		return err
	})
	l := startLoad(m.gateway, 8, okCatalog)
	for i := 0; i < 20; i++ {
		w := (i * 37) % 101
		m.apply("coolapp", splitVS(w, 100-w))
		time.Sleep(300 * time.Millisecond)
	}
	l.finish(t)
}

// TestControlPlaneKilled kills the control plane with SIGKILL under load:
// proxies keep serving their last config, and after a restart pushes reach
// the same proxy processes again.
func TestControlPlaneKilled(t *testing.T) {
	m, cp := startControlPlane(t)
	gw, gwAdmin := m.startProxy("weft proxy gateway", "gateway", "--xds", m.xds, "--name", "istio-ingressgateway",
		"-n", "istio-system", "--labels", "istio=ingressgateway", "--port-map", "80="+anyPort)
	var workloads []*proc
	for _, w := range []struct{ svc, labels string }{
		{"catalog", "app=catalog,version=v1"}, {"catalog", "app=catalog,version=v2"},
		{"partner", "app=partner,version=v1"}, {"gateway", "app=gateway,version=v1"},
	} {
		workloads = append(workloads, m.run("coolapp", w.svc, w.labels, weftBin, "demo-app", "coolapp", w.svc))
	}
	m.applyFile("coolapp", "../../demo/coolapp/service-mesh-gw.yaml")
	m.apply("coolapp", drV1V2)
	m.apply("coolapp", splitVS(50, 50))
	m.gateway = listenerAddr(t, gwAdmin, "0.0.0.0_80")
	eventually(t, 60*time.Second, "both versions answer", func() error {
		c, err := tally(m.gateway, 20)
		if err == nil && (c["v1"] == 0 || c["v2"] == 0) {
			err = fmt.Errorf("got %v", c)
		}
		return err
	})
	proxies := len(workloads) + 1

	l := startLoad(m.gateway, 8, okCatalog)
	l.waitOK(t, 100) // the load flows before the kill
	cp.kill()
	l.waitOK(t, l.ok.Load()+500) // the mesh runs on without its control plane
	m.restartControlPlane()
	connectedProxies(t, m, proxies) // every proxy is back on the new control plane
	l.finish(t)

	// Pushes resume: the same proxy processes pick up a new route.
	m.apply("coolapp", splitVS(100, 0))
	expectOnly(t, m, "v1")
	for _, p := range append(workloads, gw) {
		select {
		case <-p.done:
			t.Fatalf("%s exited; proxies must survive the control plane", p.name)
		default:
		}
	}
}

// connectedProxies waits until n proxies hold an xDS stream to the mesh's
// control plane.
func connectedProxies(t *testing.T, m *mesh, n int) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%d proxies connected", n), func() error {
		var list struct {
			Proxies []struct{ ID string }
		}
		if err := jsonGet("http://"+m.api+"/api/v1/proxies", &list); err != nil {
			return err
		}
		if len(list.Proxies) < n {
			return fmt.Errorf("%d connected: %v", len(list.Proxies), list.Proxies)
		}
		return nil
	})
}
