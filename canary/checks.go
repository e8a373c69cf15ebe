package canary

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	tstore "github.com/weft-mesh/weft/telemetry/store"
)

// Telemetry is where the builtin metrics come from: weft's per-edge time
// series (the control plane's telemetry store).
type Telemetry interface {
	Edges(window time.Duration, now time.Time) ([]tstore.EdgeStat, float64)
}

// ErrNoValues is Flagger's "no values found": the window holds no traffic
// to measure, which fails the check.
var ErrNoValues = errors.New("no values found")

// edgeLabel reads an Istio metric label of an edge series.
func edgeLabel(k tstore.EdgeKey, label string) (string, bool) {
	switch label {
	case "destination_app":
		return k.DestinationApp, true
	case "destination_version":
		return k.DestinationVersion, true
	case "destination_workload":
		return k.DestinationWorkload, true
	case "destination_workload_namespace":
		return k.DestinationNamespace, true
	case "destination_service":
		return k.DestinationService, true
	}
	return "", false
}

// builtin computes request-success-rate (% of requests not answered 5xx)
// or request-duration (p99, ms) of the revision's traffic over window, as
// Flagger's Istio queries do: from what the revision's own proxies report
// (reporter destination), or, for instances without one, from their
// callers' reports.
func builtin(tel Telemetry, name string, rev Revision, window time.Duration, now time.Time) (float64, error) {
	if tel == nil {
		return 0, errors.New("no telemetry to compute builtin metrics from")
	}
	edges, _ := tel.Edges(window, now)
	var sums [2]struct {
		requests, errors uint64
		dur              []uint64
	}
	for _, e := range edges {
		if e.Key.Protocol == "tcp" {
			continue
		}
		match := true
		for l, v := range rev.MetricLabels {
			if got, ok := edgeLabel(e.Key, l); !ok || got != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		i := 0
		if e.Key.Reporter == "source" {
			i = 1
		}
		s := &sums[i]
		s.requests += e.Requests
		s.errors += e.Errors
		if s.dur == nil {
			s.dur = make([]uint64, len(e.Duration))
		}
		for j, c := range e.Duration {
			s.dur[j] += c
		}
	}
	s := sums[0]
	if s.requests == 0 {
		s = sums[1]
	}
	if s.requests == 0 {
		return 0, fmt.Errorf("%w: %s got no requests in the last %s", ErrNoValues, rev.ID, window)
	}
	switch name {
	case config.MetricRequestSuccessRate:
		return float64(s.requests-s.errors) / float64(s.requests) * 100, nil
	case config.MetricRequestDuration:
		return tstore.Quantile(0.99, s.dur), nil
	}
	return 0, fmt.Errorf("unknown builtin metric %q", name)
}

// queryPrometheus runs an instant query and returns its value: the last
// sample of the vector (as Flagger does), or the scalar.
func queryPrometheus(ctx context.Context, client *http.Client, address, query string) (float64, error) {
	u, err := url.Parse(strings.TrimSuffix(address, "/") + "/api/v1/query")
	if err != nil {
		return 0, fmt.Errorf("prometheus address %q: %w", address, err)
	}
	u.RawQuery = url.Values{"query": {query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", address, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", address, err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("query %s: %d %s", address, resp.StatusCode, oneLine(string(body)))
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query %s: %s", address, r.Error)
	}
	var samples [][2]any
	switch r.Data.ResultType {
	case "vector":
		var vec []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vec); err != nil {
			return 0, fmt.Errorf("query %s: vector: %w", address, err)
		}
		for _, v := range vec {
			samples = append(samples, v.Value)
		}
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return 0, fmt.Errorf("query %s: scalar: %w", address, err)
		}
		samples = append(samples, v)
	default:
		return 0, fmt.Errorf("query %s: a %s result; the query must give one value (a vector or scalar)", address, r.Data.ResultType)
	}
	value := math.NaN()
	for _, s := range samples {
		str, _ := s[1].(string)
		if f, err := strconv.ParseFloat(str, 64); err == nil {
			value = f
		}
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return 0, fmt.Errorf("%w for query %s", ErrNoValues, oneLine(query))
	}
	return value, nil
}

// metricRange is the range a metric must stay in: thresholdRange, or the
// deprecated threshold (a minimum for request-success-rate, else a maximum).
func metricRange(m *flaggerv1beta1.CanaryMetric) (lo, hi *float64) {
	if r := m.GetThresholdRange(); r != nil {
		return r.Min, r.Max
	}
	if m.Threshold != nil {
		t := m.GetThreshold()
		if m.GetName() == config.MetricRequestSuccessRate && m.GetTemplateRef() == nil {
			return &t, nil
		}
		return nil, &t
	}
	return nil, nil
}

func metricInterval(m *flaggerv1beta1.CanaryMetric) (string, time.Duration) {
	s := m.GetInterval()
	if s == "" {
		s = DefaultMetricInterval
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		d = time.Minute
	}
	return s, d
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
