package stats

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/weft-mesh/weft/telemetry"
)

// ContentType is the Prometheus text exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// all returns the registry's series.
func (r *Registry) all() ([]*Series, []*TCPSeries) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.http[:len(r.http):len(r.http)], r.tcp[:len(r.tcp):len(r.tcp)]
}

// WritePrometheus writes every metric in the Prometheus text format 0.0.4:
// a # TYPE line per metric, histograms as cumulative _bucket{le} series
// with _sum and _count. Metrics without series are omitted.
func (r *Registry) WritePrometheus(out io.Writer) error {
	hs, ts := r.all()
	w := bufio.NewWriterSize(out, 32<<10)
	labels := make([]string, len(hs))
	for i, s := range hs {
		labels[i] = formatLabels(s.labelValues())
	}
	snaps := make([]httpSnap, len(hs))
	for i, s := range hs {
		snaps[i] = s.snap()
	}
	if len(hs) > 0 {
		typeLine(w, telemetry.RequestsTotal, "counter")
		for i := range hs {
			sample(w, telemetry.RequestsTotal, labels[i], "", strconv.FormatUint(snaps[i].count, 10))
		}
		typeLine(w, telemetry.RequestDuration, "histogram")
		for i := range hs {
			histogram(w, telemetry.RequestDuration, labels[i], telemetry.DurationBuckets, snaps[i].dur[:nDur],
				strconv.FormatFloat(float64(snaps[i].durNanos)/1e6, 'g', -1, 64))
		}
		typeLine(w, telemetry.RequestBytes, "histogram")
		for i := range hs {
			histogram(w, telemetry.RequestBytes, labels[i], telemetry.SizeBuckets, snaps[i].req[:nSize],
				strconv.FormatUint(snaps[i].reqSum, 10))
		}
		typeLine(w, telemetry.ResponseBytes, "histogram")
		for i := range hs {
			histogram(w, telemetry.ResponseBytes, labels[i], telemetry.SizeBuckets, snaps[i].resp[:nSize],
				strconv.FormatUint(snaps[i].respSum, 10))
		}
	}
	if len(ts) > 0 {
		tl := make([]string, len(ts))
		tsn := make([]tcpSnap, len(ts))
		for i, t := range ts {
			tl[i], tsn[i] = formatLabels(t.labelValues()), t.snap()
		}
		for _, m := range []struct {
			name string
			val  func(tcpSnap) uint64
		}{
			{telemetry.TCPSentBytes, func(s tcpSnap) uint64 { return s.sent }},
			{telemetry.TCPReceivedBytes, func(s tcpSnap) uint64 { return s.received }},
			{telemetry.TCPConnectionsOpened, func(s tcpSnap) uint64 { return s.opened }},
			{telemetry.TCPConnectionsClosed, func(s tcpSnap) uint64 { return s.closed }},
		} {
			typeLine(w, m.name, "counter")
			for i := range ts {
				sample(w, m.name, tl[i], "", strconv.FormatUint(m.val(tsn[i]), 10))
			}
		}
	}
	return w.Flush()
}

// Handler serves GET /stats/prometheus.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		_ = r.WritePrometheus(w)
	})
}

// TextHandler serves GET /stats: one "name{labels}: value" line per counter
// and per histogram count and sum, in the spirit of Envoy's plain /stats.
func (r *Registry) TextHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		hs, ts := r.all()
		bw := bufio.NewWriter(w)
		for _, s := range hs {
			l, n := formatLabels(s.labelValues()), s.snap()
			bw.WriteString(telemetry.RequestsTotal + l + ": " + strconv.FormatUint(n.count, 10) + "\n")
			bw.WriteString(telemetry.RequestDuration + "_sum" + l + ": " + strconv.FormatFloat(float64(n.durNanos)/1e6, 'g', -1, 64) + "\n")
			bw.WriteString(telemetry.RequestBytes + "_sum" + l + ": " + strconv.FormatUint(n.reqSum, 10) + "\n")
			bw.WriteString(telemetry.ResponseBytes + "_sum" + l + ": " + strconv.FormatUint(n.respSum, 10) + "\n")
		}
		for _, t := range ts {
			l, n := formatLabels(t.labelValues()), t.snap()
			bw.WriteString(telemetry.TCPSentBytes + l + ": " + strconv.FormatUint(n.sent, 10) + "\n")
			bw.WriteString(telemetry.TCPReceivedBytes + l + ": " + strconv.FormatUint(n.received, 10) + "\n")
			bw.WriteString(telemetry.TCPConnectionsOpened + l + ": " + strconv.FormatUint(n.opened, 10) + "\n")
			bw.WriteString(telemetry.TCPConnectionsClosed + l + ": " + strconv.FormatUint(n.closed, 10) + "\n")
		}
		bw.WriteString("weft_stats_overflow_total: " + strconv.FormatUint(r.Overflow(), 10) + "\n")
		_ = bw.Flush()
	})
}

func typeLine(w *bufio.Writer, name, typ string) {
	w.WriteString("# TYPE ")
	w.WriteString(name)
	w.WriteByte(' ')
	w.WriteString(typ)
	w.WriteByte('\n')
}

// sample writes `name{labels[,extra]} value`; labels is "{...}" or "".
func sample(w *bufio.Writer, name, labels, extra, value string) {
	w.WriteString(name)
	switch {
	case extra == "":
		w.WriteString(labels)
	case labels == "":
		w.WriteString("{" + extra + "}")
	default:
		w.WriteString(labels[:len(labels)-1])
		w.WriteString("," + extra + "}")
	}
	w.WriteByte(' ')
	w.WriteString(value)
	w.WriteByte('\n')
}

// histogram writes cumulative buckets (counts are per bucket, +Inf last),
// then _sum and _count.
func histogram(w *bufio.Writer, name, labels string, bounds []float64, counts []uint64, sum string) {
	var cum uint64
	for i, c := range counts {
		cum += c
		le := "+Inf"
		if i < len(bounds) {
			le = strconv.FormatFloat(bounds[i], 'g', -1, 64)
		}
		sample(w, name+"_bucket", labels, `le="`+le+`"`, strconv.FormatUint(cum, 10))
	}
	sample(w, name+"_sum", labels, "", sum)
	sample(w, name+"_count", labels, "", strconv.FormatUint(cum, 10))
}

// formatLabels renders `{k="v",...}` in telemetry.Labels order.
func formatLabels(v [19]string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range telemetry.Labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		escape(&b, v[i])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// escape writes s with backslash, double quote and newline escaped, as the
// text format requires for label values.
func escape(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
}
