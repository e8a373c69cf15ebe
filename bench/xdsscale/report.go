package xdsscale

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The targets, reported (not asserted) against each run.
const (
	targetWeight   = 1.0   // s, p99 weight change to the last proxy
	targetEndpoint = 0.5   // s, endpoint change to the last watching proxy
	targetRSS      = 300e6 // bytes, control plane with every proxy connected
	targetCPU      = 0.5   // core-seconds per weight change
)

func lastACKs(cs []Change) []int64 {
	var out []int64
	for _, c := range cs {
		if c.Missing > 0 && c.Last == 0 {
			continue // no stream ACKed: there is no last ACK to time
		}
		out = append(out, int64(c.Last*float64(time.Second)))
	}
	return out
}

func mean(cs []Change, f func(Change) float64) float64 {
	if len(cs) == 0 {
		return 0
	}
	var sum float64
	for _, c := range cs {
		sum += f(c)
	}
	return sum / float64(len(cs))
}

func maxOf(cs []Change, f func(Change) float64) float64 {
	var m float64
	for _, c := range cs {
		m = max(m, f(c))
	}
	return m
}

func verdict(ok bool, measured bool) string {
	switch {
	case !measured:
		return "not measured"
	case ok:
		return "**met**"
	}
	return "**not met**"
}

func missing(cs []Change) int {
	n := 0
	for _, c := range cs {
		n += c.Missing
	}
	return n
}

// Markdown renders the report as the table docs/BENCHMARKS.md quotes.
func (r *Report) Markdown() string {
	var b strings.Builder
	scope := r.Mesh.Sidecar
	if scope == "" {
		scope = "none"
	}
	proto := "state of the world"
	if r.Delta {
		proto = "delta"
	}
	fmt.Fprintf(&b, "**%s** — %d services (%d namespaces, %d endpoints each), %d proxies, %s xDS, Sidecar scoping: %s; %d objects applied in %.1f s; load average %s at start, %s at end; %s\n\n",
		r.Label, r.Mesh.Services, r.Mesh.Namespaces(), r.Mesh.Endpoints, r.Proxies, proto, scope, r.Objects, r.ApplySecs, r.LoadStart, r.LoadEnd, r.Date.Format(time.RFC3339))
	if r.Aborted != "" {
		fmt.Fprintf(&b, "Run aborted: %s.\n\n", r.Aborted)
	}
	w, e := summarize(lastACKs(r.Weight)), summarize(lastACKs(r.Endpoint))
	fmt.Fprintf(&b, "| measurement | p50 | p99 | max | target | in this run |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| weight change → last proxy's ACK (%d changes, %.0f proxies each; %d ACKs missing) | %.3f s | %.3f s | %.3f s | ≤ %.1f s p99 | %s |\n",
		w.N, mean(r.Weight, func(c Change) float64 { return float64(c.Streams) }), missing(r.Weight), w.P50, w.P99, w.Max, targetWeight, verdict(w.P99 <= targetWeight && missing(r.Weight) == 0, w.N > 0))
	fmt.Fprintf(&b, "| endpoint add/remove → last watching proxy's ACK (%d changes, %.0f proxies each; %d ACKs missing) | %.3f s | %.3f s | %.3f s | ≤ %.1f s | %s |\n",
		e.N, mean(r.Endpoint, func(c Change) float64 { return float64(c.Streams) }), missing(r.Endpoint), e.P50, e.P99, e.Max, targetEndpoint, verdict(e.P99 <= targetEndpoint && missing(r.Endpoint) == 0, e.N > 0))
	fmt.Fprintf(&b, "| new proxy connect → synced (%d proxies, one at a time; %d missing) | %.3f s | %.3f s | %.3f s | – | – |\n",
		r.NewProxy.N, r.NewMissing, r.NewProxy.P50, r.NewProxy.P99, r.NewProxy.Max)
	fmt.Fprintf(&b, "\n| measurement | value | target | in this run |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d proxies connected and synced | %d in %.1f s (control plane CPU %.1f s, %.0f MB sent); %d failed | – | – |\n",
		r.Proxies, r.Connected, r.ConnectAll, r.ConnectCPU, r.ConnectMB, r.Failed)
	fmt.Fprintf(&b, "| control plane RSS: config only / %d proxies just connected / %v later / peak | %.0f / %.0f / %.0f / %.0f MB | ≤ 300 MB connected | %s |\n",
		r.Proxies, rssSettle, float64(r.RSSIdle)/1e6, float64(r.RSS)/1e6, float64(r.RSSSettled)/1e6, float64(r.RSSPeak)/1e6, verdict(float64(r.RSSSettled) <= targetRSS, r.RSSSettled > 0))
	cpuW := mean(r.Weight, func(c Change) float64 { return c.CPU })
	fmt.Fprintf(&b, "| control plane CPU per weight change: mean / max | %.2f / %.2f core-s | ≤ %.1f core-s | %s |\n",
		cpuW, maxOf(r.Weight, func(c Change) float64 { return c.CPU }), targetCPU, verdict(cpuW <= targetCPU && missing(r.Weight) == 0, len(r.Weight) > 0))
	fmt.Fprintf(&b, "| control plane CPU per endpoint change: mean / max | %.2f / %.2f core-s | – | – |\n",
		mean(r.Endpoint, func(c Change) float64 { return c.CPU }), maxOf(r.Endpoint, func(c Change) float64 { return c.CPU }))
	fmt.Fprintf(&b, "| bytes sent per weight change (all proxies) | %.1f MB | – | – |\n", mean(r.Weight, func(c Change) float64 { return float64(c.Bytes) })/1e6)
	fmt.Fprintf(&b, "| bytes sent per endpoint change (all proxies) | %.2f MB | – | – |\n", mean(r.Endpoint, func(c Change) float64 { return float64(c.Bytes) })/1e6)
	fmt.Fprintf(&b, "| API call per change (apply, incl. validation and analysis): mean | %.3f s | – | – |\n",
		mean(append(append([]Change(nil), r.Weight...), r.Endpoint...), func(c Change) float64 { return c.APICall }))
	return b.String()
}

// Write stores report.json and report.md in dir.
func (r *Report) Write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Markdown()), 0o644)
}
