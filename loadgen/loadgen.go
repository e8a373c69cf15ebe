// Package loadgen sends paced HTTP requests and summarizes the answers: the
// engine of `weft load` and of the canary analysis' built-in load tester,
// which also takes `hey` command lines (ParseHey). Every run is bounded by
// a request count and a duration.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options describe one run.
type Options struct {
	URL    string
	Method string // default GET
	Body   []byte
	Header http.Header
	Host   string // sent as the Host header when set

	QPS         float64       // requests per second, all workers together; > 0
	Duration    time.Duration // how long to send; > 0
	Requests    int           // at most this many (0: QPS x Duration)
	Concurrency int           // most requests in flight; > 0
	Timeout     time.Duration // per request (default 30s)

	// Client sends the requests; nil means a direct client (no proxy from
	// the environment). The load tester passes one whose transport goes
	// through its sidecar.
	Client *http.Client
	// Dial, when set (and Client is nil), opens the direct client's
	// connections instead of the network: tests run load against an
	// in-memory server on a fake clock.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnResult, when set, sees every answer and a one-line rendering of it
	// (the body on one line, prefixed by the status when it is not 2xx),
	// one call at a time.
	OnResult func(r Result, line string)
}

// Result is the outcome of one request.
type Result struct {
	Status  int    // 0 when there was no answer
	Err     string // why there was no answer
	Latency time.Duration
}

// Failed reports a request that got no answer or a status of 400 or more.
func (r Result) Failed() bool { return r.Status == 0 || r.Status >= 400 }

// Check normalizes o and reports what is wrong with it.
func (o *Options) Check() error {
	if !strings.Contains(o.URL, "://") {
		o.URL = "http://" + o.URL
	}
	if _, err := url.ParseRequestURI(o.URL); err != nil {
		return fmt.Errorf("URL %q: %w", o.URL, err)
	}
	if o.QPS <= 0 || o.Duration <= 0 || o.Concurrency <= 0 {
		return errors.New("qps, duration and concurrency must be positive")
	}
	if o.Requests < 0 {
		return errors.New("the number of requests must not be negative")
	}
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	return nil
}

// Run sends the requests and returns their summary; interrupted reports
// that ctx ended the run early.
func Run(ctx context.Context, o Options) (s Summary, err error) {
	if err := o.Check(); err != nil {
		return Summary{}, err
	}
	client := o.Client
	if client == nil {
		client = &http.Client{
			// Show redirects as they are (a login answers 302), don't follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{Proxy: nil, DialContext: o.Dial, MaxIdleConnsPerHost: o.Concurrency, IdleConnTimeout: 30 * time.Second},
		}
	}
	total := int(math.Ceil(o.QPS * o.Duration.Seconds()))
	if o.Requests > 0 {
		total = min(total, o.Requests)
	}
	period := time.Duration(float64(time.Second) / o.QPS)

	var mu sync.Mutex // guards results and OnResult calls
	var results []Result
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r, line := do(ctx, client, &o)
				if ctx.Err() != nil && r.Status == 0 {
					continue // interrupted: not the server's doing
				}
				mu.Lock()
				results = append(results, r)
				if o.OnResult != nil {
					o.OnResult(r, line)
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	end := time.NewTimer(o.Duration)
	defer end.Stop()
	interrupted := false
dispatch:
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * period)
		if due.Sub(start) >= o.Duration {
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
		elapsed = max(elapsed, o.Duration)
	}
	s = Summarize(results, elapsed)
	s.Interrupted = interrupted
	return s, nil
}

// ParseHeaders parses 'Name: value' strings; Host goes apart, as Go sends
// it from the request's Host field.
func ParseHeaders(hs []string) (http.Header, string, error) {
	h := http.Header{}
	host := ""
	for _, kv := range hs {
		k, v, ok := strings.Cut(kv, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, "", fmt.Errorf("header %q: want 'Name: value'", kv)
		}
		if strings.EqualFold(k, "host") {
			host = v
			continue
		}
		h.Add(k, v)
	}
	return h, host, nil
}

// do sends one request and returns its result and the line to print for it.
func do(ctx context.Context, c *http.Client, o *Options) (Result, string) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var body io.Reader
	if o.Body != nil {
		body = bytes.NewReader(o.Body)
	}
	req, err := http.NewRequestWithContext(ctx, o.Method, o.URL, body)
	if err != nil {
		return Result{Err: err.Error()}, "error: " + err.Error()
	}
	if o.Header != nil {
		req.Header = o.Header.Clone()
	}
	if o.Host != "" {
		req.Host = o.Host
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		msg := shortError(err)
		return Result{Err: msg, Latency: time.Since(start)}, "error: " + msg
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := Result{Status: resp.StatusCode, Latency: time.Since(start)}
	line := oneLine(string(b), 300)
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
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// oneLine puts a body on one line, at most limit runes.
func oneLine(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return s
}

// Summary is what a run reports at the end.
type Summary struct {
	Total, Failed      int
	Elapsed            time.Duration
	Codes              map[int]int
	Errors             map[string]int
	P50, P90, P99, Max time.Duration
	Answered           int // requests with a status, over which latencies are taken
	Interrupted        bool
}

// Summarize totals results over elapsed.
func Summarize(results []Result, elapsed time.Duration) Summary {
	s := Summary{Total: len(results), Elapsed: elapsed, Codes: map[int]int{}, Errors: map[string]int{}}
	var lat []time.Duration
	for _, r := range results {
		if r.Failed() {
			s.Failed++
		}
		if r.Status == 0 {
			s.Errors[r.Err]++
			continue
		}
		s.Codes[r.Status]++
		lat = append(lat, r.Latency)
	}
	s.Answered = len(lat)
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		s.P50, s.P90, s.P99 = Percentile(lat, 50), Percentile(lat, 90), Percentile(lat, 99)
		s.Max = lat[len(lat)-1]
	}
	return s
}

// Percentile is the nearest-rank percentile of sorted: the smallest value
// at least p% of the values are less than or equal to.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Print writes the summary: totals, the count per status and error, and
// the latency percentiles.
func (s Summary) Print(w io.Writer, u string) {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Total) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "--- %s: %d requests in %s (%.1f/s), %d failed\n", u, s.Total, s.Elapsed.Round(time.Millisecond), rate, s.Failed)
	codes := make([]int, 0, len(s.Codes))
	for c := range s.Codes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "status %d: %d\n", c, s.Codes[c])
	}
	errs := make([]string, 0, len(s.Errors))
	for e := range s.Errors {
		errs = append(errs, e)
	}
	sort.Strings(errs)
	for _, e := range errs {
		fmt.Fprintf(w, "error %s: %d\n", e, s.Errors[e])
	}
	if s.Answered > 0 {
		fmt.Fprintf(w, "latency p50 %s  p90 %s  p99 %s  max %s\n", fmtLatency(s.P50), fmtLatency(s.P90), fmtLatency(s.P99), fmtLatency(s.Max))
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
