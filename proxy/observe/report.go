package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/weft-mesh/weft/proxy/stats"
	"github.com/weft-mesh/weft/proxy/trace"
	"github.com/weft-mesh/weft/telemetry"
)

// ReportPath is where the control plane takes reports, under its API URL.
const ReportPath = "/api/v1/telemetry"

// DefaultReportInterval is how often a Reporter sends.
const DefaultReportInterval = time.Second

// ReporterOptions configures a Reporter.
type ReporterOptions struct {
	// URL is the control plane's API base URL, e.g. http://127.0.0.1:15080.
	URL string
	// Node is the proxy's node ID.
	Node string
	// Stats and Spans are what is reported; Spans may be nil.
	Stats *stats.Registry
	Spans *trace.Buffer
	// Interval between reports (DefaultReportInterval when <= 0); each POST
	// is bounded by the interval too, at least one second.
	Interval time.Duration
	// Log receives failures at debug level (the first of a run at warn).
	Log *slog.Logger
	// Token, when set, is sent as "Authorization: Bearer TOKEN": the
	// control plane takes reports only from proxies holding the join token.
	Token string
	// TokenSource, when set, is called for every report instead of Token
	// (a rotated token file is read anew).
	TokenSource func() (string, error)
	// Client sends the reports; nil uses one that ignores proxy settings.
	Client *http.Client
}

// Reporter POSTs telemetry.Report deltas to the control plane. A report
// that fails is not lost: counters stay unreported until a report
// succeeds, and its spans go back to the (bounded) span buffer. It runs on
// its own goroutine, so a slow or absent control plane never slows requests.
type Reporter struct {
	o      ReporterOptions
	url    string
	failed bool
}

// NewReporter returns a Reporter; Run starts it.
func NewReporter(o ReporterOptions) *Reporter {
	if o.Interval <= 0 {
		o.Interval = DefaultReportInterval
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second}}
	}
	base := o.URL
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Reporter{o: o, url: strings.TrimRight(base, "/") + ReportPath}
}

// Run reports every interval until ctx ends, then sends a last report
// (bounded by one interval) so that the final second is not lost.
func (r *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), r.timeout())
			_ = r.Flush(fctx)
			cancel()
			return
		case <-t.C:
			_ = r.Flush(ctx)
		}
	}
}

func (r *Reporter) timeout() time.Duration { return max(r.o.Interval, time.Second) }

// Flush sends what changed since the last successful report, if anything.
func (r *Reporter) Flush(ctx context.Context) error {
	d := r.o.Stats.Delta()
	var spans []telemetry.Span
	if r.o.Spans != nil {
		spans = r.o.Spans.Drain()
	}
	if d.Empty() && len(spans) == 0 {
		return nil
	}
	rep := telemetry.Report{Node: r.o.Node, Time: time.Now().UTC(), Requests: d.Requests, TCP: d.TCP, Spans: spans}
	err := r.post(ctx, &rep)
	if err != nil {
		if r.o.Spans != nil {
			r.o.Spans.Requeue(spans)
		}
		if !r.failed {
			r.o.Log.Warn("telemetry report failed; will retry", "url", r.url, "err", err)
		} else {
			r.o.Log.Debug("telemetry report failed", "err", err)
		}
		r.failed = true
		return err
	}
	if r.failed {
		r.o.Log.Info("telemetry reports resumed", "url", r.url)
	}
	r.failed = false
	d.Commit()
	return nil
}

func (r *Reporter) post(ctx context.Context, rep *telemetry.Report) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	tok := r.o.Token
	if r.o.TokenSource != nil {
		if tok, err = r.o.TokenSource(); err != nil {
			return fmt.Errorf("report: token: %w", err)
		}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := r.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("report: %s answered %s", r.url, resp.Status)
	}
	return nil
}
