package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/weft-mesh/weft/canary"
)

// canaryView is what the console's Canaries view shows, read in the page.
type canaryView struct {
	Rows   []string `json:"rows"`   // data-canary=data-phase
	Points int      `json:"points"` // recorded changes drawn in the weight chart
	Checks []string `json:"checks"` // data-check=data-ok
	Events int      `json:"events"`
}

const readCanaryView = `(() => ({
  rows: Array.from(document.querySelectorAll('#canaries-table tbody tr')).map(r => r.dataset.canary + '=' + r.dataset.phase),
  points: Number((document.querySelector('#canary-details .weight-line') || {getAttribute: () => 0}).getAttribute('data-points')),
  checks: Array.from(document.querySelectorAll('#canary-checks tbody tr')).map(r => r.dataset.check + '=' + r.dataset.ok),
  events: document.querySelectorAll('#canary-events tbody tr').length,
}))()`

// TestCanaryConsole: the console's Canaries view shows a release that
// failed its checks: its phase, the weight over time, the failed checks
// and the events.
func TestCanaryConsole(t *testing.T) {
	bin := requireBinary(t, "/usr/bin/chromium")
	m := echoRelease(t, echoCanary(2, ""))
	load := startCanaryLoad(t, m, 60)
	m.echo("default", "echo", "v2", "ECHO_FAIL=500", "ECHO_FAIL_EVERY=4")
	m.waitPhase("echo", canary.PhaseFailed, 90*time.Second)
	load.finish(t, 40)

	ctx := newBrowser(t, bin)
	if err := doIn(ctx, 30*time.Second, chromedp.Navigate("http://"+m.api+"/#/canaries"), chromedp.WaitVisible(chromedp.CSS(`#canary-details`))); err != nil {
		t.Fatalf("open the Canaries view: %v", err)
	}
	var v canaryView
	eventually(t, 20*time.Second, "the Canaries view shows the failed release", func() error {
		var err error
		if v, err = runIn(ctx, 10*time.Second, chromedp.Evaluate[canaryView](readCanaryView)); err != nil {
			return err
		}
		failed := false
		for _, c := range v.Checks {
			failed = failed || c == "request-success-rate=false"
		}
		if len(v.Rows) != 1 || v.Rows[0] != "default/echo=Failed" || v.Points < 3 || !failed || v.Events < 3 {
			return fmt.Errorf("view %+v", v)
		}
		return nil
	})
	if screenshots() {
		screenshot(t, ctx, "console-canary.png")
	}
	if t.Failed() {
		t.Log(strings.Join(v.Checks, ", "))
	}
}
