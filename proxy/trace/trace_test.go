package trace

import (
	"net/http"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/telemetry"
)

const (
	tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid = "00f067aa0ba902b7"
)

func TestJoinIncomingTraceparent(t *testing.T) {
	in := http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-01"}, HeaderTracestate: {"congo=t61rcWkgMzE"}}
	c := Start(Extract(in), NewSampler(0))
	if !c.Valid || !c.Sampled {
		t.Fatalf("context %+v: want valid and sampled (the caller sampled)", c)
	}
	if c.TraceID.String() != tid || c.ParentID.String() != sid {
		t.Fatalf("trace %s parent %s: want %s %s", c.TraceID, c.ParentID, tid, sid)
	}
	if c.SpanID.IsZero() || c.SpanID.String() == sid {
		t.Fatalf("span id %s: want a new one", c.SpanID)
	}
	out := in.Clone()
	Inject(out, c)
	want := "00-" + tid + "-" + c.SpanID.String() + "-01"
	if got := out.Get("traceparent"); got != want {
		t.Errorf("traceparent %q, want %q", got, want)
	}
	if out.Get("tracestate") != "congo=t61rcWkgMzE" {
		t.Errorf("tracestate %q: want it kept", out.Get("tracestate"))
	}
	for k, v := range map[string]string{"x-b3-traceid": tid, "x-b3-spanid": c.SpanID.String(), "x-b3-parentspanid": sid, "x-b3-sampled": "1"} {
		if got := out.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestUnsampledIncoming(t *testing.T) {
	in := http.Header{HeaderTraceparent: {"00-" + tid + "-" + sid + "-00"}}
	c := Start(Extract(in), NewSampler(100))
	if !c.Valid || c.Sampled {
		t.Fatalf("context %+v: want propagated but not sampled", c)
	}
	out := http.Header{}
	Inject(out, c)
	if !strings.HasSuffix(out.Get("traceparent"), "-00") || out.Get("x-b3-sampled") != "0" {
		t.Errorf("headers %v: want the not-sampled decision propagated", out)
	}
	// A lone "do not sample" decision starts nothing, even at 100%.
	if c := Start(Extract(http.Header{HeaderB3Sampled: {"0"}}), NewSampler(100)); c.Valid {
		t.Errorf("x-b3-sampled: 0 gave %+v", c)
	}
}

func TestRootSampling(t *testing.T) {
	if c := Start(Extract(http.Header{}), NewSampler(0)); c.Valid {
		t.Errorf("0%%: got a trace %+v", c)
	}
	c := Start(Extract(http.Header{}), NewSampler(100))
	if !c.Valid || !c.Sampled || c.TraceID.IsZero() || !c.ParentID.IsZero() {
		t.Fatalf("100%%: %+v, want a sampled root span", c)
	}
	out := http.Header{}
	Inject(out, c)
	if out.Get("x-b3-parentspanid") != "" || out.Get("x-b3-traceid") != c.TraceID.String() {
		t.Errorf("root headers %v", out)
	}
	n := 0
	s := NewSampler(50)
	for range 10000 {
		if s.Sample() {
			n++
		}
	}
	if n < 4500 || n > 5500 {
		t.Errorf("50%% sampled %d of 10000", n)
	}
}

func TestB3(t *testing.T) {
	in := Extract(http.Header{HeaderB3TraceID: {sid}, HeaderB3SpanID: {sid}, HeaderB3Sampled: {"1"}})
	if !in.HasTrace || !in.Sampled || in.TraceID.String() != "0000000000000000"+sid {
		t.Fatalf("64-bit B3: %+v", in)
	}
	in = Extract(http.Header{HeaderB3: {tid + "-" + sid + "-1-" + sid}})
	if !in.HasTrace || !in.Sampled || in.TraceID.String() != tid || in.SpanID.String() != sid {
		t.Fatalf("single b3: %+v", in)
	}
	c := Start(in, NewSampler(0))
	out := http.Header{HeaderB3: {"x"}}
	Inject(out, c)
	if want := tid + "-" + c.SpanID.String() + "-1-" + sid; out.Get("b3") != want {
		t.Errorf("b3 %q, want %q", out.Get("b3"), want)
	}
	// traceparent wins over B3; malformed traceparent falls back to B3.
	in = Extract(http.Header{HeaderTraceparent: {"00-zz"}, HeaderB3TraceID: {tid}, HeaderB3SpanID: {sid}})
	if !in.HasTrace || in.HasDecision {
		t.Errorf("fallback: %+v", in)
	}
}

func TestBufferDropsOldest(t *testing.T) {
	b := NewBuffer(3)
	for _, n := range []string{"a", "b", "c", "d"} {
		b.Add(telemetry.Span{Name: n})
	}
	got := b.Drain()
	if len(got) != 3 || got[0].Name != "b" || got[2].Name != "d" || b.Dropped() != 1 {
		t.Fatalf("drained %v, dropped %d", got, b.Dropped())
	}
	b.Add(telemetry.Span{Name: "e"})
	b.Requeue(got) // failed report: b c d go back before e, b is dropped
	got = b.Drain()
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if strings.Join(names, "") != "cde" || b.Dropped() != 2 {
		t.Fatalf("after requeue %v, dropped %d", names, b.Dropped())
	}
}
