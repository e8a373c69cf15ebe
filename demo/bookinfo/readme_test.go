package bookinfo

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEStarCount runs the shell pipeline the README gives for
// counting stars on a page that shows ratings, and checks it prints the
// count the README promises (grep -c counts lines, not stars).
func TestREADMEStarCount(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("`([^`]+)` counts ([0-9]+) stars").FindStringSubmatch(string(readme))
	if m == nil {
		t.Fatal("README: no \"`CMD` counts N stars\" sentence")
	}
	cmdline, want := m[1], m[2]
	body := get(t, newMesh(t, "v2", nil, ProductPageConfig{}).page, "/productpage", nil).Body.String()
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", cmdline, err)
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("README: `%s` prints %s on a page with ratings, the README says %s", cmdline, got, want)
	}
}
