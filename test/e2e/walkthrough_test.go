package e2e

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
)

var catalogLine = regexp.MustCompile(`^gateway => partner => catalog (v\d) from '([^']+)': \d+$`)

// tally sends n requests to the gateway and counts answers per catalog
// version; any other answer is returned as an error.
func tally(addr string, n int) (map[string]int, error) {
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		code, body, err := get(addr, "", "/", nil)
		if err != nil {
			return counts, err
		}
		m := catalogLine.FindStringSubmatch(body)
		if code != 200 || m == nil {
			return counts, fmt.Errorf("request %d: %d %q", i, code, body)
		}
		counts[m[1]]++
	}
	return counts, nil
}

// within reports whether k successes in n trials fit probability p within
// five standard deviations (a false failure about once in 3.5 million runs).
func within(k, n int, p float64) bool {
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	return math.Abs(float64(k)-mean) <= 5*sd
}

// TestSeedWalkthrough follows seed 001 with the seed's own YAML.
func TestSeedWalkthrough(t *testing.T) {
	m := upMesh(t, "coolapp")
	const demoDir = "../../demo/coolapp/"

	// Without rules: round robin over catalog v1 and v2.
	eventually(t, 60*time.Second, "both catalog versions answer through the gateway", func() error {
		c, err := tally(m.gateway, 10)
		if err != nil {
			return err
		}
		if c["v1"] == 0 || c["v2"] == 0 {
			return fmt.Errorf("got %v", c)
		}
		return nil
	})
	c, err := tally(m.gateway, 200)
	if err != nil {
		t.Fatal(err)
	}
	if c["v1"] < 80 || c["v2"] < 80 {
		t.Fatalf("round robin: want an even spread over v1 and v2, got %v", c)
	}

	// All traffic to subset version-v2 before any DestinationRule: 503, and
	// apply warns about it.
	out := m.applyFile("coolapp", demoDir+"virtual-service-catalog-v2.yml")
	if !strings.Contains(out, "WEFT0101") || !strings.Contains(out, "version-v2") {
		t.Errorf("apply of a route to an undefined subset should warn (WEFT0101), got:\n%s", out)
	}
	eventually(t, 10*time.Second, "route to undefined subset answers 503", func() error {
		code, body, err := get(m.gateway, "", "/", nil)
		if err != nil {
			return err
		}
		if code != 503 || body != "gateway => 503 partner => 503" {
			return fmt.Errorf("got %d %q", code, body)
		}
		return nil
	})

	// DestinationRule added: everything goes to v2.
	m.applyFile("coolapp", demoDir+"destination-rule-catalog-v1-v2.yml")
	expectOnly(t, m, "v2")

	// oc replace with the v1 VirtualService: everything to v1.
	m.applyFile("coolapp", demoDir+"virtual-service-catalog-v1.yml")
	expectOnly(t, m, "v1")

	// 70/30.
	m.applyFile("coolapp", demoDir+"virtual-service-catalog-v1_and_v2_70_30.yml")
	eventually(t, 10*time.Second, "70/30 split in effect", func() error {
		c, err := tally(m.gateway, 40)
		if err != nil {
			return err
		}
		if c["v2"] == 0 {
			return fmt.Errorf("no v2 yet: %v", c)
		}
		return nil
	})
	const n = 1000
	c, err = tally(m.gateway, n)
	if err != nil {
		t.Fatal(err)
	}
	if !within(c["v2"], n, 0.3) || c["v1"]+c["v2"] != n {
		t.Fatalf("70/30 split over %d requests: got %v", n, c)
	}
	t.Logf("70/30 split over %d requests: %v", n, c)
}

// expectOnly waits for the route change to arrive, then checks that 100
// requests all reach version v.
func expectOnly(t *testing.T, m *mesh, v string) {
	t.Helper()
	eventually(t, 10*time.Second, "all traffic to "+v, func() error {
		c, err := tally(m.gateway, 20)
		if err != nil {
			return err
		}
		if c[v] != 20 {
			return fmt.Errorf("got %v", c)
		}
		return nil
	})
	c, err := tally(m.gateway, 100)
	if err != nil {
		t.Fatal(err)
	}
	if c[v] != 100 {
		t.Fatalf("want all 100 requests on %s, got %v", v, c)
	}
}
