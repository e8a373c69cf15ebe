package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var servedBy = regexp.MustCompile(`Reviews served by: reviews-(v\d)-`)

// page fetches /productpage, as user when not "", and returns the reviews
// version that served it ("" if none) and the page.
func page(t *testing.T, m *mesh, user string) (string, string) {
	t.Helper()
	h := map[string]string{}
	if user != "" {
		h["Cookie"] = "session=" + user
	}
	code, body, err := get(m.gateway, "", "/productpage", h)
	if err != nil || code != 200 {
		t.Fatalf("productpage: %d %v\n%.300s", code, err, body)
	}
	v := ""
	if mm := servedBy.FindStringSubmatch(body); mm != nil {
		v = mm[1]
	}
	return v, body
}

// versions tallies n page loads by reviews version.
func versions(t *testing.T, m *mesh, user string, n int) map[string]int {
	c := map[string]int{}
	for i := 0; i < n; i++ {
		v, _ := page(t, m, user)
		c[v]++
	}
	return c
}

// settle waits until n page loads all come from version v.
func settle(t *testing.T, m *mesh, user, v string) {
	t.Helper()
	eventually(t, 15*time.Second, "reviews "+v+" for "+user, func() error {
		if c := versions(t, m, user, 10); c[v] != 10 {
			return fmt.Errorf("got %v", c)
		}
		return nil
	})
}

// TestBookinfoWorkshop runs seed 004's exercises with the YAML shipped in
// demo/bookinfo.
func TestBookinfoWorkshop(t *testing.T) {
	m := upMesh(t, "bookinfo")
	const dir = "../../demo/bookinfo/"
	eventually(t, 60*time.Second, "all three reviews versions serve the page", func() error {
		c := map[string]int{}
		for i := 0; i < 15; i++ {
			code, body, err := get(m.gateway, "", "/productpage", nil)
			if err != nil || code != 200 {
				return fmt.Errorf("%d %v", code, err)
			}
			if mm := servedBy.FindStringSubmatch(body); mm != nil {
				c[mm[1]]++
			}
		}
		if c["v1"] == 0 || c["v2"] == 0 || c["v3"] == 0 {
			return fmt.Errorf("got %v", c)
		}
		return nil
	})

	// 1.1: all traffic to v1.
	m.applyFile("default", dir+"virtual-service-all-v1.yaml")
	settle(t, m, "", "v1")
	// 1.2: jason to v2 by header, everyone else v1.
	m.applyFile("default", dir+"virtual-service-reviews-test-v2.yaml")
	settle(t, m, "jason", "v2")
	if c := versions(t, m, "", 20); c["v1"] != 20 {
		t.Fatalf("logged out must stay on v1, got %v", c)
	}
	if c := versions(t, m, "alice", 20); c["v1"] != 20 {
		t.Fatalf("another user must stay on v1, got %v", c)
	}
	// 2.2: 50/50 v1/v3, then 2.3: all v3.
	m.applyFile("default", dir+"virtual-service-reviews-50-v3.yaml")
	eventually(t, 15*time.Second, "50/50 in effect", func() error {
		if c := versions(t, m, "", 40); c["v1"] == 0 || c["v3"] == 0 || c["v1"]+c["v3"] != 40 {
			return fmt.Errorf("got %v", c)
		}
		return nil
	})
	m.applyFile("default", dir+"virtual-service-reviews-v3.yaml")
	settle(t, m, "", "v3")

	// 3.1: a 7 s ratings delay for jason through reviews v2 breaks the page
	// (productpage gives up on reviews after 3 s and one retry).
	m.applyFile("default", dir+"virtual-service-all-v1.yaml")
	m.applyFile("default", dir+"virtual-service-reviews-test-v2.yaml")
	settle(t, m, "jason", "v2")
	m.applyFile("default", dir+"virtual-service-ratings-test-delay.yaml")
	eventually(t, 30*time.Second, "delay breaks the page for jason", func() error {
		start := time.Now()
		_, body := page(t, m, "jason")
		if !strings.Contains(body, "Error fetching product reviews!") {
			return fmt.Errorf("no reviews error")
		}
		if d := time.Since(start); d < 6*time.Second {
			t.Fatalf("the reviews error came after %v; productpage should have waited 2 x 3 s", d)
		}
		return nil
	})
	if _, body := page(t, m, ""); strings.Contains(body, "Error fetching") {
		t.Fatal("the delay must only hit jason")
	}
	// The fix: reviews v3 gives up on ratings after 2.5 s.
	m.applyFile("default", dir+"virtual-service-reviews-v3.yaml")
	eventually(t, 30*time.Second, "v3 shows the ratings error instead", func() error {
		v, body := page(t, m, "jason")
		if v != "v3" || !strings.Contains(body, "Ratings service is currently unavailable") || strings.Contains(body, "Error fetching product reviews!") {
			return fmt.Errorf("got %s", v)
		}
		return nil
	})

	// 3.2: abort ratings with 500 for jason.
	m.applyFile("default", dir+"virtual-service-reviews-test-v2.yaml")
	m.applyFile("default", dir+"virtual-service-ratings-test-abort.yaml")
	eventually(t, 15*time.Second, "abort shows the ratings error for jason", func() error {
		v, body := page(t, m, "jason")
		if v != "v2" || !strings.Contains(body, "Ratings service is currently unavailable") {
			return fmt.Errorf("got %s", v)
		}
		return nil
	})
	if _, body := page(t, m, ""); strings.Contains(body, "Ratings service is currently unavailable") {
		t.Fatal("the abort must only hit jason")
	}
}

var loadSummary = regexp.MustCompile(`(\d+) requests in ([^ ]+) \(([0-9.]+)/s\), (\d+) failed`)

// TestVMMigration is seed 000: traffic moves from the VM fedora01 to the
// service-b-v1 container step by step, under load, with no failed request.
// The load runs from before the first step until after the last, whatever
// the machine's speed; its rate is logged, not asserted (throughput is
// measured by bench/).
func TestVMMigration(t *testing.T) {
	m := upMesh(t, "hello")
	eventually(t, 60*time.Second, "service-a answers from the VM", func() error {
		code, body, err := get(m.gateway, "", "/hello-service", nil)
		if err != nil || code != 200 || body != `{"response":{"message":"Hello World from fedora01"}}` {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		code, body, err = get(m.gateway, "", "/hello", nil)
		if err != nil || code != 200 || body != `{"message":"Hello World from service-a"}` {
			return fmt.Errorf("/hello: %d %q %v", code, body, err)
		}
		return nil
	})

	// Bounded by its duration; stopped with SIGINT once the shift is done.
	load := exec.Command(weftBin, "load", "http://"+m.gateway+"/hello-service", "--qps", "200", "--duration", "10m", "--fail-on-error")
	load.Dir = m.dir
	var mu sync.Mutex
	var out bytes.Buffer
	load.Stdout, load.Stderr = lockedWriter{&mu, &out}, lockedWriter{&mu, &out}
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = load.Wait(); close(exited) }()
	defer func() {
		load.Process.Kill()
		<-exited
	}()
	text := func() string {
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}
	answered := func(who string) func() error {
		return func() error {
			select {
			case <-exited:
				t.Fatalf("weft load ended early (%v):\n%s", waitErr, text())
			default:
			}
			if !strings.Contains(text(), "Hello World from "+who) {
				return fmt.Errorf("no answer from %s yet", who)
			}
			return nil
		}
	}
	eventually(t, 60*time.Second, "the load reaches the VM", answered("fedora01"))

	shift, code := m.weft("", "shift", "service-b", "--from", "vm", "--to", "v1", "--steps", "10,25,50,75,90,100", "--interval", "3s")
	if code != 0 {
		t.Fatalf("weft shift: %s", shift)
	}
	for _, line := range []string{"90% traffic is routed to vm 10% to v1", "50% traffic is routed to vm 50% to v1", "all traffic is routed to v1"} {
		if !strings.Contains(shift, line) {
			t.Errorf("shift output lacks %q:\n%s", line, shift)
		}
	}
	eventually(t, 60*time.Second, "the load reaches the pod", answered("service-b-v1"))
	// The last step reached the gateway: only the pod answers.
	eventually(t, 60*time.Second, "only the pod answers", func() error {
		for i := 0; i < 50; i++ {
			if _, body, err := get(m.gateway, "", "/hello-service", nil); err != nil || !strings.Contains(body, "service-b-v1") {
				return fmt.Errorf("request %d: %q %v", i, body, err)
			}
		}
		return nil
	})
	load.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("weft load: %v", waitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("weft load did not stop on SIGINT")
	}
	all := text()
	mm := loadSummary.FindStringSubmatch(all)
	if mm == nil {
		t.Fatalf("no load summary in:\n%.2000s", all)
	}
	if mm[4] != "0" {
		t.Fatalf("%s of %s requests failed; shift said:\n%s\nlast of the load's output:\n%s",
			mm[4], mm[1], shift, all[max(0, len(all)-3000):])
	}
	vm := strings.Count(all, "Hello World from fedora01")
	pod := strings.Count(all, "Hello World from service-b-v1")
	t.Logf("migration under load: %s requests in %s (%s/s), %s failed; fedora01 %d, service-b-v1 %d", mm[1], mm[2], mm[3], mm[4], vm, pod)
}
