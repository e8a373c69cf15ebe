package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weft-mesh/weft/canary"
)

// helloCanary is demo/hello's Canary with intervals of seconds.
func helloCanary(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../demo/hello/canary-service-b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "interval: 5s", "interval: 2s", 1)
	return strings.ReplaceAll(y, "interval: 15s", "interval: 4s")
}

var helloFrom = regexp.MustCompile(`Hello World from ([a-z0-9-]+)`)

// helloAnswer: /hello-service names the service-b instance that answered;
// the broken build's failures say "broken build".
func helloAnswer(status int, line string) (string, bool) {
	if m := helloFrom.FindStringSubmatch(line); status == 200 && m != nil {
		return m[1], false
	}
	return "", strings.Contains(line, "broken build")
}

// startHelloLoad waits for the VM to answer through the gateway, then
// loads /hello-service.
func startHelloLoad(t *testing.T, m *mesh) *canaryLoad {
	t.Helper()
	eventually(t, 60*time.Second, "fedora01 answers /hello-service", func() error {
		for i := 0; i < 10; i++ {
			if code, body, err := get(m.gateway, "", "/hello-service", nil); err != nil || code != 200 || !strings.Contains(body, "fedora01") {
				return fmt.Errorf("%d %q %v", code, body, err)
			}
		}
		return nil
	})
	return startLoadClassified(t, "http://"+m.gateway+"/hello-service", "", 100, helloAnswer)
}

// TestHelloMigration: seed 000's migration as one Canary: service-b moves
// from the VM to the container step by step, with no failed request from
// the switching at 100 requests/s, and the VM is not taken for a canary
// afterwards.
func TestHelloMigration(t *testing.T) {
	m := upMesh(t, "hello")
	load := startHelloLoad(t, m)
	m.apply("default", helloCanary(t))
	st := m.waitPhase("service-b", canary.PhaseSucceeded, 120*time.Second)
	info := m.canaryInfo("service-b")
	if got := fmt.Sprint(advances(info)); got != "[10 20 30 40 50 60 70 80 90]" || st.LastPromoted != "v1" || info.Target.Primary != "v1" {
		t.Errorf("weights %s, status %+v, target %+v", got, st, info.Target)
	}
	eventually(t, 20*time.Second, "only the container answers", func() error {
		before := load.counts()["fedora01"]
		for i := 0; i < 20; i++ {
			if _, body, _ := get(m.gateway, "", "/hello-service", nil); !strings.Contains(body, "service-b-v1") {
				return fmt.Errorf("%q", body)
			}
		}
		if after := load.counts()["fedora01"]; after != before {
			return fmt.Errorf("the VM still answers")
		}
		return nil
	})
	load.finish(t, 80)
	if st, _ := m.canaryStatus("service-b"); st.Phase != canary.PhaseSucceeded {
		t.Errorf("after the migration the VM was taken for a canary: %+v", st)
	}
}

// TestHelloMigrationRollback: a container build that fails 10% of its
// requests is rolled back to the VM, and only its own failures reach
// callers.
func TestHelloMigrationRollback(t *testing.T) {
	t.Setenv("HELLO_FAIL_EVERY", "10") // weft up passes it to the demo's container build
	m := upMesh(t, "hello")
	load := startHelloLoad(t, m)
	m.apply("default", helloCanary(t))
	st := m.waitPhase("service-b", canary.PhaseFailed, 120*time.Second)
	eventually(t, 20*time.Second, "only the VM answers after the rollback", func() error {
		for i := 0; i < 20; i++ {
			if _, body, _ := get(m.gateway, "", "/hello-service", nil); !strings.Contains(body, "fedora01") {
				return fmt.Errorf("%q", body)
			}
		}
		return nil
	})
	load.finish(t, 80)
	if load.injected == 0 || st.FailedChecks < 3 {
		t.Errorf("the broken build was not analysed under traffic: %d injected failures seen, status %+v", load.injected, st)
	}
}
