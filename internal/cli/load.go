package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

type loadOptions struct {
	url                string
	qps                float64
	duration, timeout  time.Duration
	concurrency        int
	headers            []string
	quiet, failOnError bool
	// dial, when set, opens the connections instead of the network (tests
	// run load against an in-memory server on a fake clock).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func newLoadCmd(g *globals) *cobra.Command {
	o := loadOptions{}
	cmd := &cobra.Command{
		Use:   "load URL [--qps N] [--duration D] [--concurrency C] [-H 'k: v']",
		Short: "Send paced GET requests to URL and summarize the answers",
		Long: `Load sends GET requests to URL at --qps requests per second for --duration
(at most qps x duration requests), with up to --concurrency in flight. It
prints one line per answer as it comes (the body on one line, prefixed by the
status when it is not 2xx), unless --quiet, and at the end a summary: the
count per status code and error, and latency percentiles. A request failed
when it got no answer or a status of 400 or more; --fail-on-error makes
load exit 1 if any did.`,
		Example: `  weft load http://127.0.0.1:8080/hello-service --qps 10 --duration 120s
  weft load http://127.0.0.1:8080/productpage -H 'Cookie: session=jason' --qps 2 --duration 30s --quiet`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.url = args[0]
			return runLoad(cmd.Context(), o, os.Stdout)
		},
	}
	f := cmd.Flags()
	f.Float64Var(&o.qps, "qps", 10, "requests per second")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send requests")
	f.IntVar(&o.concurrency, "concurrency", 8, "most requests in flight at once")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-request timeout")
	f.StringArrayVarP(&o.headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the summary")
	f.BoolVar(&o.failOnError, "fail-on-error", false, "exit 1 if any request failed")
	return cmd
}

// loadResult is the outcome of one request.
type loadResult struct {
	status  int    // 0 when there was no answer
	err     string // why there was no answer
	latency time.Duration
}

func (r loadResult) failed() bool { return r.status == 0 || r.status >= 400 }

func runLoad(ctx context.Context, o loadOptions, out io.Writer) error {
	if !strings.Contains(o.url, "://") {
		o.url = "http://" + o.url
	}
	if _, err := url.ParseRequestURI(o.url); err != nil {
		return fmt.Errorf("URL %q: %w", o.url, err)
	}
	if o.qps <= 0 || o.duration <= 0 || o.concurrency <= 0 {
		return fmt.Errorf("--qps, --duration and --concurrency must be positive")
	}
	hdr, host, err := parseHeaders(o.headers)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout: o.timeout,
		// Show redirects as they are (a login answers 302), don't follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: nil, DialContext: o.dial, MaxIdleConnsPerHost: o.concurrency, IdleConnTimeout: 30 * time.Second},
	}
	total := int(math.Ceil(o.qps * o.duration.Seconds()))
	period := time.Duration(float64(time.Second) / o.qps)

	var mu sync.Mutex // guards results and out
	var results []loadResult
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r, line := doLoadRequest(ctx, client, o.url, hdr, host)
				if ctx.Err() != nil && r.status == 0 {
					continue // interrupted: not the server's doing
				}
				mu.Lock()
				results = append(results, r)
				if !o.quiet {
					fmt.Fprintln(out, line)
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	end := time.NewTimer(o.duration)
	defer end.Stop()
	interrupted := false
dispatch:
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * period)
		if due.Sub(start) >= o.duration {
			break
		}
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				interrupted = true
				break dispatch
			case <-t.C:
			}
		}
		select {
		case jobs <- struct{}{}:
		case <-end.C:
			break dispatch // all workers were busy until the end
		case <-ctx.Done():
			interrupted = true
			break dispatch
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if !interrupted {
		// The pacing window, not when the last request happened to start.
		elapsed = max(elapsed, o.duration)
	}
	s := summarize(results, elapsed)
	if interrupted {
		fmt.Fprintln(out, "(interrupted)")
	}
	s.print(out, o.url)
	if o.failOnError && s.failed > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d requests failed\n", s.failed, s.total)
		return exitError{code: 1}
	}
	return nil
}

// parseHeaders parses -H 'Name: value' flags; Host goes apart, as Go
// sends it from the request's Host field.
func parseHeaders(hs []string) (http.Header, string, error) {
	h := http.Header{}
	host := ""
	for _, kv := range hs {
		k, v, ok := strings.Cut(kv, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, "", fmt.Errorf("-H %q: want 'Name: value'", kv)
		}
		if strings.EqualFold(k, "host") {
			host = v
			continue
		}
		h.Add(k, v)
	}
	return h, host, nil
}

// doLoadRequest sends one request and returns its result and the line to
// print for it.
func doLoadRequest(ctx context.Context, c *http.Client, u string, hdr http.Header, host string) (loadResult, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return loadResult{err: err.Error()}, "error: " + err.Error()
	}
	req.Header = hdr.Clone()
	if host != "" {
		req.Host = host
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		msg := shortError(err)
		return loadResult{err: msg, latency: time.Since(start)}, "error: " + msg
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := loadResult{status: resp.StatusCode, latency: time.Since(start)}
	line := oneLine(string(body), 300)
	if err != nil {
		line += " (body: " + shortError(err) + ")"
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		line = strings.TrimSpace(fmt.Sprintf("[%d] %s", resp.StatusCode, line))
	}
	return r, line
}

// shortError names what went wrong without repeating the URL.
func shortError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// oneLine puts a body on one line, at most max runes.
func oneLine(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return s
}

// loadSummary is what load reports at the end.
type loadSummary struct {
	total, failed      int
	elapsed            time.Duration
	codes              map[int]int
	errors             map[string]int
	p50, p90, p99, max time.Duration
	answered           int // requests with a status, over which latencies are taken
}

func summarize(results []loadResult, elapsed time.Duration) loadSummary {
	s := loadSummary{total: len(results), elapsed: elapsed, codes: map[int]int{}, errors: map[string]int{}}
	var lat []time.Duration
	for _, r := range results {
		if r.failed() {
			s.failed++
		}
		if r.status == 0 {
			s.errors[r.err]++
			continue
		}
		s.codes[r.status]++
		lat = append(lat, r.latency)
	}
	s.answered = len(lat)
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		s.p50, s.p90, s.p99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
		s.max = lat[len(lat)-1]
	}
	return s
}

// percentile is the nearest-rank percentile of sorted: the smallest value
// at least p% of the values are less than or equal to.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func (s loadSummary) print(w io.Writer, u string) {
	rate := 0.0
	if s.elapsed > 0 {
		rate = float64(s.total) / s.elapsed.Seconds()
	}
	fmt.Fprintf(w, "--- %s: %d requests in %s (%.1f/s), %d failed\n", u, s.total, s.elapsed.Round(time.Millisecond), rate, s.failed)
	codes := make([]int, 0, len(s.codes))
	for c := range s.codes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "status %d: %d\n", c, s.codes[c])
	}
	errs := make([]string, 0, len(s.errors))
	for e := range s.errors {
		errs = append(errs, e)
	}
	sort.Strings(errs)
	for _, e := range errs {
		fmt.Fprintf(w, "error %s: %d\n", e, s.errors[e])
	}
	if s.answered > 0 {
		fmt.Fprintf(w, "latency p50 %s  p90 %s  p99 %s  max %s\n", fmtLatency(s.p50), fmtLatency(s.p90), fmtLatency(s.p99), fmtLatency(s.max))
	}
}

func fmtLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
