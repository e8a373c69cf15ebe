package store

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/weft-mesh/weft/telemetry"
)

// WritePrometheus writes the totals in the Prometheus text exposition
// format (version 0.0.4): Istio's metrics with exactly the names, labels
// and buckets of package telemetry, then the store's own weft_* metrics.
func (s *Store) WritePrometheus(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	s.mu.Lock()
	ts := make([]*total, 0, len(s.totals))
	for _, t := range s.totals {
		ts = append(ts, t)
	}
	// Copy the numbers out under the lock; formatting is the slow part.
	snap := make([]total, len(ts))
	for i, t := range ts {
		snap[i] = total{labels: t.labels}
		if t.req != nil {
			r := *t.req
			snap[i].req = &r
		}
		if t.tcp != nil {
			c := *t.tcp
			snap[i].tcp = &c
		}
	}
	st := s.statsLocked()
	s.mu.Unlock()
	// A stable order makes scrapes diffable and tests simple.
	sort.Slice(snap, func(i, j int) bool { return lessLabels(snap[i].labels, snap[j].labels) })

	var reqs, tcps []*total
	for i := range snap {
		if snap[i].req != nil {
			reqs = append(reqs, &snap[i])
		}
		if snap[i].tcp != nil {
			tcps = append(tcps, &snap[i])
		}
	}
	header(bw, telemetry.RequestsTotal, "counter", "Requests, by Istio's standard labels.")
	for _, t := range reqs {
		sample(bw, telemetry.RequestsTotal, t.labels, "", float64(t.req.count))
	}
	header(bw, telemetry.RequestDuration, "histogram", "Request duration in milliseconds.")
	for _, t := range reqs {
		histogram(bw, telemetry.RequestDuration, t.labels, telemetry.DurationBuckets, t.req.dur[:], t.req.durSum)
	}
	header(bw, telemetry.RequestBytes, "histogram", "Request body sizes in bytes.")
	for _, t := range reqs {
		histogram(bw, telemetry.RequestBytes, t.labels, telemetry.SizeBuckets, floats(t.req.reqBytes[:]), float64(t.req.reqSum))
	}
	header(bw, telemetry.ResponseBytes, "histogram", "Response body sizes in bytes.")
	for _, t := range reqs {
		histogram(bw, telemetry.ResponseBytes, t.labels, telemetry.SizeBuckets, floats(t.req.rspBytes[:]), float64(t.req.rspSum))
	}
	for _, m := range []struct {
		name, help string
		get        func(*tcpTotals) uint64
	}{
		{telemetry.TCPSentBytes, "Bytes sent during TCP connections.", func(c *tcpTotals) uint64 { return c.sent }},
		{telemetry.TCPReceivedBytes, "Bytes received during TCP connections.", func(c *tcpTotals) uint64 { return c.received }},
		{telemetry.TCPConnectionsOpened, "TCP connections opened.", func(c *tcpTotals) uint64 { return c.opened }},
		{telemetry.TCPConnectionsClosed, "TCP connections closed.", func(c *tcpTotals) uint64 { return c.closed }},
	} {
		header(bw, m.name, "counter", m.help)
		for _, t := range tcps {
			sample(bw, m.name, t.labels, "", float64(m.get(t.tcp)))
		}
	}

	self := []struct {
		name, typ, help string
		v               float64
	}{
		{"weft_telemetry_reports_total", "counter", "Telemetry reports received from proxies.", float64(st.Reports)},
		{"weft_telemetry_reports_rejected_total", "counter", "Telemetry reports refused as malformed.", float64(st.Rejected)},
		{"weft_telemetry_proxies", "gauge", "Proxies that reported within the retention.", float64(st.Proxies)},
		{"weft_telemetry_total_series", "gauge", "Label sets kept for this exposition.", float64(st.Totals)},
		{"weft_telemetry_edge_series", "gauge", "Edge time series kept for the graph.", float64(st.Edges)},
		{"weft_telemetry_history_bytes", "gauge", "Memory held by edge history.", float64(st.HistoryBytes)},
		{"weft_telemetry_history_evicted_chunks_total", "counter", "Edge history chunks released early to stay within the memory budget.", float64(st.EvictedChunks)},
		{"weft_telemetry_series_expired_total", "counter", "Series removed after being idle for the retention.", float64(st.Expired)},
	}
	for _, m := range self {
		header(bw, m.name, m.typ, m.help)
		fmt.Fprintf(bw, "%s %s\n", m.name, num(m.v))
	}
	header(bw, "weft_telemetry_series_dropped_total", "counter", "Stats folded into an overflow series because a cardinality cap was reached.")
	fmt.Fprintf(bw, "weft_telemetry_series_dropped_total{kind=\"totals\"} %d\n", st.DroppedTotals)
	fmt.Fprintf(bw, "weft_telemetry_series_dropped_total{kind=\"edges\"} %d\n", st.DroppedEdges)
	tr := s.Traces.Stats()
	header(bw, "weft_telemetry_traces", "gauge", "Traces kept in memory.")
	fmt.Fprintf(bw, "weft_telemetry_traces %d\n", tr.Traces)
	header(bw, "weft_telemetry_spans_dropped_total", "counter", "Spans dropped because their trace was full or malformed.")
	fmt.Fprintf(bw, "weft_telemetry_spans_dropped_total %d\n", tr.DroppedSpans)
	return bw.Flush()
}

func (s *Store) statsLocked() Stats {
	return Stats{
		Totals: len(s.totals), Edges: len(s.edges), HistoryBytes: s.liveChunks * chunkBytes,
		Reports: s.reports, DroppedTotals: s.droppedTotals, DroppedEdges: s.droppedEdges,
		EvictedChunks: s.evictedChunks, Expired: s.expiredSeries, Proxies: len(s.lastReportTime),
		Rejected: s.rejectedStats,
	}
}

func lessLabels(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func floats(u []uint64) []float64 {
	f := make([]float64, len(u))
	for i, v := range u {
		f[i] = float64(v)
	}
	return f
}

func header(w *bufio.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// sample writes NAME{labels[,le="X"]} VALUE.
func sample(w *bufio.Writer, name string, labels []string, le string, v float64) {
	w.WriteString(name)
	w.WriteByte('{')
	for i, l := range telemetry.Labels {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(l)
		w.WriteString(`="`)
		w.WriteString(escape(labels[i]))
		w.WriteByte('"')
	}
	if le != "" {
		w.WriteString(`,le="`)
		w.WriteString(le)
		w.WriteByte('"')
	}
	w.WriteString("} ")
	w.WriteString(num(v))
	w.WriteByte('\n')
}

// histogram writes cumulative _bucket lines, then _sum and _count; counts
// are per bucket (not cumulative) with +Inf last.
func histogram(w *bufio.Writer, name string, labels []string, bounds, counts []float64, sum float64) {
	var cum float64
	for i, b := range bounds {
		cum += counts[i]
		// Plain decimals, as Envoy writes them: le="3600000", not 3.6e+06.
		sample(w, name+"_bucket", labels, strconv.FormatFloat(b, 'f', -1, 64), cum)
	}
	cum += counts[len(bounds)]
	sample(w, name+"_bucket", labels, "+Inf", cum)
	sample(w, name+"_sum", labels, "", sum)
	// _count must equal the +Inf bucket for Prometheus' histogram math.
	sample(w, name+"_count", labels, "", cum)
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string { return escaper.Replace(s) }

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
