package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const reviews8020 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
`

// edgeLabel is one edge of the console's graph as the page shows it.
type edgeLabel struct {
	Edge  string `json:"edge"`
	Label string `json:"label"`
}

// readEdges returns every element with data-edge and its .edge-label text.
const readEdges = `Array.from(document.querySelectorAll('[data-edge]')).map(e => {
  const l = e.querySelector('.edge-label');
  return {edge: e.getAttribute('data-edge'), label: l ? l.textContent.trim() : ''};
})`

// selectLabels switches the edge label mode the way a person does: pick the
// option and let the page hear the change.
func selectLabels(mode string) chromedp.Action[string] {
	return chromedp.Evaluate[string](fmt.Sprintf(`(() => {
  const s = document.querySelector('#edge-labels');
  s.value = %q;
  s.dispatchEvent(new Event('input', {bubbles: true}));
  s.dispatchEvent(new Event('change', {bubbles: true}));
  return s.value;
})()`, mode))
}

var firstNumber = regexp.MustCompile(`[0-9]+(?:\.[0-9]+)?`)

// reviewsShares finds the edges into reviews v1 and v2 and returns the
// request share each label shows, in percent.
func reviewsShares(edges []edgeLabel) (v1, v2 float64, err error) {
	found := map[string]float64{}
	for _, e := range edges {
		parts := strings.SplitN(e.Edge, "->", 2)
		if len(parts) != 2 || !strings.Contains(parts[1], "reviews") {
			continue
		}
		for _, v := range []string{"v1", "v2"} {
			if strings.Contains(parts[1], v) {
				num := firstNumber.FindString(e.Label)
				if num == "" || !strings.Contains(e.Label, "%") {
					return 0, 0, fmt.Errorf("edge %s: label %q is no request share", e.Edge, e.Label)
				}
				x, _ := strconv.ParseFloat(num, 64)
				found[v] += x
			}
		}
	}
	a, ok1 := found["v1"]
	b, ok2 := found["v2"]
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("no edges to reviews v1 and v2 in %v", edges)
	}
	return a, b, nil
}

// screenshots reports whether the test refreshes docs/img/*.png: only when
// asked with WEFT_SCREENSHOTS=1, so a test run leaves the tree clean.
func screenshots() bool { return os.Getenv("WEFT_SCREENSHOTS") == "1" }

func saveScreenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	if !screenshots() {
		return
	}
	path := filepath.Join("../../docs/img", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: docs/img/%s", name)
}

// newBrowser starts Debian's chromium headless with a fresh profile.
func newBrowser(t *testing.T, bin string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1400, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// Start the browser now: the first run owns the browser and must have
	// no deadline (the allocator waits at most 20 s for chromium to start).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// doIn runs actions in the browser with a time limit.
func doIn(ctx context.Context, limit time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	c, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return chromedp.Do(c, actions...)
}

// runIn runs one action that returns a value, with a time limit.
func runIn[T any](ctx context.Context, limit time.Duration, a chromedp.Action[T]) (T, error) {
	c, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return chromedp.Run(c, a)
}

// labelsNow switches the edge labels to mode and reads every edge. The
// graph may not show mode yet: callers poll until it does.
func labelsNow(ctx context.Context, mode string) ([]edgeLabel, error) {
	if _, err := runIn(ctx, 10*time.Second, selectLabels(mode)); err != nil {
		return nil, err
	}
	return runIn(ctx, 10*time.Second, chromedp.Evaluate[[]edgeLabel](readEdges))
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := runIn(ctx, 20*time.Second, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, name, png)
}

// bookinfoLoad requests /productpage from a few workers, paced, until
// stopped, bounded in count and time.
type bookinfoLoad struct {
	once     sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
	ok, fail atomic.Int64
}

func startBookinfoLoad(addr string, workers int, pause time.Duration, limit time.Duration) *bookinfoLoad {
	l := &bookinfoLoad{stop: make(chan struct{})}
	deadline := time.Now().Add(limit)
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
				select {
				case <-l.stop:
					return
				case <-time.After(pause):
				}
				if code, _, err := get(addr, "", "/productpage", nil); err == nil && code == 200 {
					l.ok.Add(1)
				} else {
					l.fail.Add(1)
				}
			}
		}()
	}
	return l
}

// finish stops the load (once) and waits for it.
func (l *bookinfoLoad) finish(t *testing.T) {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		t.Logf("background load: %d ok, %d failed", l.ok.Load(), l.fail.Load())
	})
}

// TestConsoleGraph opens the control plane's console in a real headless
// Chromium while Bookinfo serves an 80/20 split of reviews, and reads the
// split off the graph's edges as a person would.
func TestConsoleGraph(t *testing.T) {
	bin := requireBinary(t, "/usr/bin/chromium")
	m, _ := upMeshWith(t, "bookinfo")
	// Until the gateway has its routes, /productpage is a 404 the graph
	// would show (a failing edge to a service named after the Host) for its
	// whole window: note when the page first answers.
	eventually(t, 60*time.Second, "productpage answers", func() error {
		if code, _, err := get(m.gateway, "", "/productpage", nil); err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	ready := time.Now()
	m.apply("default", reviews8020)
	eventually(t, 60*time.Second, "the 80/20 split is in effect", func() error {
		c := map[string]int{}
		for i := 0; i < 20; i++ {
			code, body, err := get(m.gateway, "", "/productpage", nil)
			if err != nil || code != 200 {
				return fmt.Errorf("%d %v", code, err)
			}
			if mm := servedBy.FindStringSubmatch(body); mm != nil {
				c[mm[1]]++
			}
		}
		if c["v3"] != 0 || c["v1"] == 0 || c["v1"]+c["v2"] != 20 {
			return fmt.Errorf("got %v", c)
		}
		return nil
	})
	// About 60 pages a second for at most four minutes.
	l := startBookinfoLoad(m.gateway, 3, 50*time.Millisecond, 4*time.Minute)
	defer l.finish(t)

	// The graph's window is 10 s: let the start-up 404s leave it.
	if d := 11*time.Second - time.Since(ready); d > 0 {
		time.Sleep(d)
	}

	ctx := newBrowser(t, bin)
	console := "http://" + m.api + "/"
	if err := doIn(ctx, 30*time.Second,
		chromedp.Navigate(console),
		chromedp.WaitVisible(chromedp.CSS(`#edge-labels`)),
	); err != nil {
		t.Fatalf("open the console at %s: %v", console, err)
	}

	// The graph shows reviews v1 and v2 (the graph's window is 10 s; the
	// round robin before the split must have left it).
	var edges []edgeLabel
	var v1, v2 float64
	eventually(t, 60*time.Second, "the graph shows 80/20 to reviews v1/v2", func() error {
		var err error
		if edges, err = labelsNow(ctx, "requests"); err != nil {
			return err
		}
		if v1, v2, err = reviewsShares(edges); err != nil {
			return err
		}
		if math.Abs(v1-80) > 10 || math.Abs(v2-20) > 10 || math.Abs(v1+v2-100) > 0.5 {
			return fmt.Errorf("reviews v1 %.1f%%, v2 %.1f%% in %v", v1, v2, edges)
		}
		// v3 gets nothing: no edge, or one at 0%.
		for _, e := range edges {
			if strings.HasSuffix(e.Edge, "reviews-v3") && firstNumber.FindString(e.Label) != "" {
				if x, _ := strconv.ParseFloat(firstNumber.FindString(e.Label), 64); x != 0 {
					return fmt.Errorf("edge %s: %q, want no traffic to v3", e.Edge, e.Label)
				}
			}
		}
		return nil
	})
	t.Logf("console: reviews v1 %.1f%%, v2 %.1f%%", v1, v2)

	// STRICT mTLS by default: every edge between mesh workloads (all but
	// the one from the outside client into the gateway) shows its lock.
	eventually(t, 30*time.Second, "every mesh edge locked", func() error {
		edges, err := runIn(ctx, 10*time.Second, chromedp.Evaluate[[]map[string]string](`Array.from(document.querySelectorAll('g[data-edge]')).map(g => {
  const lock = g.querySelector('.edge-lock');
  return {edge: g.getAttribute('data-edge'), mtls: g.dataset.mtls, lock: lock && lock.style.display !== 'none' ? 'shown' : 'hidden'};
})`))
		if err != nil {
			return err
		}
		mesh := 0
		for _, e := range edges {
			from, _, _ := strings.Cut(e["edge"], "->")
			if strings.Contains(from, "unknown") || !strings.Contains(e["edge"], "->") {
				continue
			}
			mesh++
			if e["mtls"] != "true" || e["lock"] != "shown" {
				return fmt.Errorf("edge %s: mtls %s, lock %s", e["edge"], e["mtls"], e["lock"])
			}
		}
		if mesh < 4 {
			return fmt.Errorf("only %d mesh edges in %v", mesh, edges)
		}
		return nil
	})
	screenshot(t, ctx, "console-graph.png")

	// Response times on the same edges.
	eventually(t, 30*time.Second, "edges labelled with response times", func() error {
		var err error
		if edges, err = labelsNow(ctx, "responseTime"); err != nil {
			return err
		}
		n := 0
		for _, e := range edges {
			if !strings.Contains(e.Edge, "reviews") || e.Label == "" {
				continue
			}
			if !strings.HasSuffix(e.Label, "ms") || firstNumber.FindString(e.Label) == "" {
				return fmt.Errorf("edge %s: label %q is no response time in ms", e.Edge, e.Label)
			}
			n++
		}
		if n < 2 {
			return fmt.Errorf("%d labelled edges to reviews in %v", n, edges)
		}
		return nil
	})
	t.Logf("console response times: %v", edges)
	screenshot(t, ctx, "console-response-time.png")

	// The traces view lists recent traces; a whole one (from the gateway
	// to ratings) opens as a waterfall. The load stops first; the view is
	// polled until it lists a trace holding all four.
	l.finish(t)
	if err := doIn(ctx, 10*time.Second, chromedp.Navigate(console+"#/traces")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a trace from the gateway through productpage, reviews and ratings in the traces view", func() error {
		ok, err := runIn(ctx, 10*time.Second, chromedp.Evaluate[bool](`(() => {
  const tr = Array.from(document.querySelectorAll('#traces-table tbody tr'))
    .find(r => ['istio-ingressgateway', 'productpage', 'reviews', 'ratings'].every(s => r.textContent.includes(s)));
  if (!tr) return false;
  tr.click();
  return true;
})()`))
		if err == nil && !ok {
			err = fmt.Errorf("no such row")
		}
		return err
	})
	time.Sleep(time.Second)
	screenshot(t, ctx, "console-traces.png")
}
