package stats

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weft-mesh/weft/telemetry"
)

func testStatic(r *Registry) *Static {
	return r.Intern(Identity{Reporter: ReporterSource, SourceWorkload: `we"ird\wl`, DestinationService: "reviews.default.svc.cluster.local"})
}

func TestBuckets(t *testing.T) {
	for _, c := range []struct {
		ms   float64
		want int
	}{{0, 0}, {0.5, 0}, {0.6, 1}, {1, 1}, {7, 3}, {25, 4}, {3600000, 18}, {3600001, 19}} {
		if got := durBucket(c.ms); got != c.want {
			t.Errorf("durBucket(%v) = %d, want %d", c.ms, got, c.want)
		}
	}
	for _, c := range []struct {
		n    uint64
		want int
	}{{0, 0}, {1, 0}, {2, 1}, {10, 1}, {11, 2}, {1000, 3}, {100000000, 8}, {100000001, 9}} {
		if got := sizeBucket(c.n); got != c.want {
			t.Errorf("sizeBucket(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// parsedSample is one parsed exposition line.
type parsedSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parse reads the Prometheus text format strictly enough to catch
// malformed output: TYPE lines before samples, quoted and escaped labels.
func parse(t *testing.T, text string) (map[string]string, []parsedSample) {
	t.Helper()
	types := map[string]string{}
	var out []parsedSample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			parts := strings.Fields(f)
			if len(parts) != 2 {
				t.Fatalf("bad TYPE line %q", line)
			}
			types[parts[0]] = parts[1]
			continue
		}
		s := parsedSample{labels: map[string]string{}}
		i := strings.IndexAny(line, "{ ")
		s.name, line = line[:i], line[i:]
		if line[0] == '{' {
			line = line[1:]
			for line[0] != '}' {
				eq := strings.IndexByte(line, '=')
				key := line[:eq]
				line = line[eq+1:]
				if line[0] != '"' {
					t.Fatalf("unquoted label value in %q", line)
				}
				var val strings.Builder
				j := 1
				for ; line[j] != '"'; j++ {
					if line[j] == '\\' {
						j++
						switch line[j] {
						case 'n':
							val.WriteByte('\n')
						default:
							val.WriteByte(line[j])
						}
						continue
					}
					val.WriteByte(line[j])
				}
				s.labels[key] = val.String()
				line = line[j+1:]
				line = strings.TrimPrefix(line, ",")
			}
			line = line[1:]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line), 64)
		if err != nil {
			t.Fatalf("value of %s: %v", s.name, err)
		}
		s.value = v
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s.name, "_bucket"), "_sum"), "_count")
		if types[s.name] == "" && types[base] == "" {
			t.Fatalf("parsedSample %s before its TYPE line", s.name)
		}
		out = append(out, s)
	}
	return types, out
}

func TestExposition(t *testing.T) {
	r := NewRegistry(0)
	s := testStatic(r)
	s.RecordHTTP(ProtoHTTP, 200, "", "", 3*time.Millisecond, 0, 120)
	s.RecordHTTP(ProtoHTTP, 200, "", "", 30*time.Millisecond, 5, 20000)
	s.RecordHTTP(ProtoGRPC, 200, "", "14", time.Second, 0, 0)
	s.TCP("").Opened()
	s.TCP("").Closed(10, 20)
	var buf bytes.Buffer
	if err := r.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	types, samples := parse(t, buf.String())
	if types[telemetry.RequestsTotal] != "counter" || types[telemetry.RequestDuration] != "histogram" || types[telemetry.TCPConnectionsOpened] != "counter" {
		t.Fatalf("types %v", types)
	}
	find := func(name string, match map[string]string) float64 {
		t.Helper()
	next:
		for _, s := range samples {
			if s.name != name {
				continue
			}
			for k, v := range match {
				if s.labels[k] != v {
					continue next
				}
			}
			if len(s.labels) < len(telemetry.Labels) {
				t.Fatalf("%s has %d labels, want all of telemetry.Labels", name, len(s.labels))
			}
			return s.value
		}
		t.Fatalf("no %s %v in\n%s", name, match, buf.String())
		return 0
	}
	http200 := map[string]string{"request_protocol": "http", "response_code": "200", "response_flags": "-", "source_workload": `we"ird\wl`}
	if v := find(telemetry.RequestsTotal, http200); v != 2 {
		t.Errorf("requests_total = %v, want 2", v)
	}
	for le, want := range map[string]float64{"1": 0, "5": 1, "25": 1, "50": 2, "+Inf": 2} {
		m := map[string]string{"request_protocol": "http", "le": le}
		if v := find(telemetry.RequestDuration+"_bucket", m); v != want {
			t.Errorf("duration bucket le=%s: %v, want %v (cumulative)", le, v, want)
		}
	}
	if v := find(telemetry.RequestDuration+"_sum", http200); v != 33 {
		t.Errorf("duration sum %v, want 33", v)
	}
	if v := find(telemetry.ResponseBytes+"_bucket", map[string]string{"request_protocol": "http", "le": "1000"}); v != 1 {
		t.Errorf("response bytes le=1000: %v, want 1", v)
	}
	if v := find(telemetry.ResponseBytes+"_count", http200); v != 2 {
		t.Errorf("response bytes count %v", v)
	}
	if v := find(telemetry.RequestsTotal, map[string]string{"request_protocol": "grpc", "grpc_response_status": "14"}); v != 1 {
		t.Errorf("grpc requests %v", v)
	}
	if v := find(telemetry.TCPSentBytes, map[string]string{"request_protocol": "tcp"}); v != 10 {
		t.Errorf("tcp sent %v", v)
	}
	if v := find(telemetry.TCPReceivedBytes, nil); v != 20 {
		t.Errorf("tcp received %v", v)
	}
}

func TestDeltaCommit(t *testing.T) {
	r := NewRegistry(0)
	s := testStatic(r)
	s.RecordHTTP(ProtoHTTP, 200, "", "", 2*time.Millisecond, 0, 50)
	d := r.Delta()
	if len(d.Requests) != 1 || d.Requests[0].Count != 1 || d.Requests[0].DurationBuckets[2] != 1 || d.Requests[0].ResponseBytes[2] != 1 {
		t.Fatalf("first delta %+v", d.Requests)
	}
	// Not committed (the report failed): the next delta includes it.
	s.RecordHTTP(ProtoHTTP, 200, "", "", 2*time.Millisecond, 0, 50)
	d = r.Delta()
	if d.Requests[0].Count != 2 || d.Requests[0].ResponseBytesSum != 100 {
		t.Fatalf("accumulated delta %+v", d.Requests[0])
	}
	d.Commit()
	if d := r.Delta(); !d.Empty() {
		t.Fatalf("after commit: %+v", d.Requests)
	}
	s.RecordHTTP(ProtoHTTP, 503, "UH", "", 0, 0, 19)
	d = r.Delta()
	if len(d.Requests) != 1 || d.Requests[0].Labels["response_flags"] != "UH" || d.Requests[0].Labels["response_code"] != "503" {
		t.Fatalf("new series delta %+v", d.Requests)
	}
	if got := len(d.Requests[0].Labels); got != len(telemetry.Labels) {
		t.Errorf("%d labels, want %d", got, len(telemetry.Labels))
	}
}

func TestSeriesLimit(t *testing.T) {
	r := NewRegistry(2)
	s := testStatic(r)
	for code := 200; code < 205; code++ {
		s.RecordHTTP(ProtoHTTP, code, "", "", 0, 0, 0)
	}
	if r.Overflow() != 3 {
		t.Errorf("overflow %d, want 3", r.Overflow())
	}
}

func TestPeerRoundTrip(t *testing.T) {
	p := Peer{Workload: "reviews-v2", Namespace: "default", App: "reviews", Version: "v2", Dst: "ratings.default.svc.cluster.local"}
	got, err := DecodePeer(p.Encode())
	if err != nil || got != p {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := DecodePeer("!!"); err == nil {
		t.Error("garbage decoded")
	}
	for in, want := range map[string]string{
		"outbound|9080|v2|reviews.default.svc.cluster.local": "reviews.default.svc.cluster.local",
		"outbound|9080||reviews.default.svc.cluster.local":   "reviews.default.svc.cluster.local",
		"inbound|9080||": "", "c": "c",
	} {
		if got := ServiceFromCluster(in); got != want {
			t.Errorf("ServiceFromCluster(%q) = %q", in, got)
		}
	}
	// Only a mesh host says its namespace; anything else is its own name.
	for in, want := range map[string]string{
		"reviews.default.svc.cluster.local:9080": "reviews.default.svc.cluster.local|reviews|default",
		"reviews.default.svc.cluster.local":      "reviews.default.svc.cluster.local|reviews|default",
		"foo.example.com":                        "foo.example.com|foo.example.com|",
		"127.0.0.1:38080":                        "127.0.0.1|127.0.0.1|",
		"[::1]:80":                               "::1|::1|",
		"reviews:9080":                           "reviews|reviews|",
		"svc.cluster.local":                      "svc.cluster.local|svc.cluster.local|",
		"":                                       "||",
	} {
		svc, name, ns := ServiceParts(in)
		if got := svc + "|" + name + "|" + ns; got != want {
			t.Errorf("ServiceParts(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkRecordHTTP(b *testing.B) {
	s := testStatic(NewRegistry(0))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.RecordHTTP(ProtoHTTP, 200, "", "", 3*time.Millisecond, 0, 512)
		}
	})
}
