package stats

import (
	"strconv"

	"github.com/weft-mesh/weft/telemetry"
)

// httpSnap is a point-in-time copy of a Series' counters.
type httpSnap struct {
	count           uint64
	dur             [maxDur]uint64
	durNanos        uint64
	req, resp       [maxSize]uint64
	reqSum, respSum uint64
}

type tcpSnap struct {
	opened, closed, sent, received uint64
}

func (s *Series) snap() httpSnap {
	var n httpSnap
	n.count = s.count.Load()
	for i := range nDur {
		n.dur[i] = s.dur[i].Load()
	}
	n.durNanos = s.durNanos.Load()
	for i := range nSize {
		n.req[i], n.resp[i] = s.req[i].Load(), s.resp[i].Load()
	}
	n.reqSum, n.respSum = s.reqSum.Load(), s.respSum.Load()
	return n
}

func (t *TCPSeries) snap() tcpSnap {
	return tcpSnap{t.opened.Load(), t.closed.Load(), t.sent.Load(), t.received.Load()}
}

// Delta is what changed since the last committed delta. The counters keep
// running; only Commit moves the baseline, so a report that fails is
// simply included in the next one.
type Delta struct {
	Requests []telemetry.RequestStat
	TCP      []telemetry.TCPStat

	r     *Registry
	http  []*Series
	hsnap []httpSnap
	tcp   []*TCPSeries
	tsnap []tcpSnap
}

// Empty reports whether nothing changed.
func (d *Delta) Empty() bool { return len(d.Requests) == 0 && len(d.TCP) == 0 }

// Delta computes the changes since the last Commit. Only one Delta should
// be outstanding at a time; Commit it after the report was accepted.
func (r *Registry) Delta() *Delta {
	r.mu.Lock()
	hs, ts := r.http[:len(r.http):len(r.http)], r.tcp[:len(r.tcp):len(r.tcp)]
	r.mu.Unlock()
	r.deltaMu.Lock()
	defer r.deltaMu.Unlock()
	d := &Delta{r: r}
	for _, s := range hs {
		cur := s.snap()
		last := s.lastHTTP
		if cur.count == last.count {
			continue
		}
		st := telemetry.RequestStat{
			Labels:           s.labelMap(),
			Count:            cur.count - last.count,
			DurationBuckets:  make([]uint64, nDur),
			DurationSumMs:    float64(cur.durNanos-last.durNanos) / 1e6,
			RequestBytes:     make([]uint64, nSize),
			RequestBytesSum:  cur.reqSum - last.reqSum,
			ResponseBytes:    make([]uint64, nSize),
			ResponseBytesSum: cur.respSum - last.respSum,
		}
		for i := range nDur {
			st.DurationBuckets[i] = cur.dur[i] - last.dur[i]
		}
		for i := range nSize {
			st.RequestBytes[i] = cur.req[i] - last.req[i]
			st.ResponseBytes[i] = cur.resp[i] - last.resp[i]
		}
		d.Requests = append(d.Requests, st)
		d.http, d.hsnap = append(d.http, s), append(d.hsnap, cur)
	}
	for _, t := range ts {
		cur := t.snap()
		last := t.lastTCP
		if cur == last {
			continue
		}
		d.TCP = append(d.TCP, telemetry.TCPStat{
			Labels:        t.labelMap(),
			Opened:        cur.opened - last.opened,
			Closed:        cur.closed - last.closed,
			SentBytes:     cur.sent - last.sent,
			ReceivedBytes: cur.received - last.received,
		})
		d.tcp, d.tsnap = append(d.tcp, t), append(d.tsnap, cur)
	}
	return d
}

// Commit makes d's snapshot the baseline of the next Delta.
func (d *Delta) Commit() {
	d.r.deltaMu.Lock()
	defer d.r.deltaMu.Unlock()
	for i, s := range d.http {
		s.lastHTTP = d.hsnap[i]
	}
	for i, t := range d.tcp {
		t.lastTCP = d.tsnap[i]
	}
}

// labelValues returns the series' full label values in telemetry.Labels
// order.
func (s *Series) labelValues() [19]string {
	v := s.static.labels
	v[idxProtocol], v[idxCode], v[idxFlags], v[idxGRPC] = s.proto, s.codeLabel, s.flags, s.grpc
	return v
}

func (t *TCPSeries) labelValues() [19]string {
	v := t.static.labels
	v[idxProtocol], v[idxCode], v[idxFlags], v[idxGRPC] = ProtoTCP, "0", t.flags, ""
	return v
}

func toMap(v [19]string) map[string]string {
	m := make(map[string]string, len(telemetry.Labels))
	for i, n := range telemetry.Labels {
		m[n] = v[i]
	}
	return m
}

func (s *Series) labelMap() map[string]string    { return toMap(s.labelValues()) }
func (t *TCPSeries) labelMap() map[string]string { return toMap(t.labelValues()) }

// Labels returns the series' labels.
func (s *Series) Labels() map[string]string { return s.labelMap() }

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }
