package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const wrkOut = `Running 10s test @ http://127.0.0.1:18081/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   486.53us  208.76us   9.13ms   93.12%
    Req/Sec    33.10k     1.52k   35.71k    79.00%
  Latency Distribution
     50%  454.00us
     75%  560.00us
     90%  676.00us
     99%    1.02ms
  329242 requests in 10.00s, 40.19MB read
Requests/sec:  32917.93
Transfer/sec:      4.02MB
`

func fortioJSON(codes string) string {
	return `{"RequestedQPS":"1000","RequestedDuration":"15s","ActualQPS":999.8,"ActualDuration":15000000000,
"NumThreads":16,"SocketCount":16,"RetCodes":` + codes + `,
"DurationHistogram":{"Count":14992,"Min":0.0001,"Max":0.004,"Avg":0.0007,"StdDev":0.0002,
"Percentiles":[{"Percentile":50,"Value":0.000712},{"Percentile":90,"Value":0.000986},
{"Percentile":99,"Value":0.00158},{"Percentile":99.9,"Value":0.004}]}}`
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadWrk(t *testing.T) {
	p := filepath.Join(t.TempDir(), "wrk.txt")
	write(t, p, wrkOut)
	r, err := readWrk(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 32917.93 || r.Requests != 329242 || r.Seconds != 10 || r.Non2xx != 0 {
		t.Fatalf("parsed %+v", r)
	}
	if len(r.Latency) != 4 || r.Latency[0].Ms != 0.454 || r.Latency[3].Ms != 1.02 {
		t.Fatalf("latency %+v", r.Latency)
	}
	if doCheckWrk(p, "t") != 0 {
		t.Fatal("clean wrk run flagged")
	}

	write(t, p, strings.Replace(wrkOut, "Requests/sec", "  Non-2xx or 3xx responses: 12\nRequests/sec", 1))
	if doCheckWrk(p, "t") == 0 {
		t.Fatal("non-2xx responses not flagged")
	}
	write(t, p, strings.Replace(wrkOut, "Requests/sec", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec", 1))
	if doCheckWrk(p, "t") == 0 {
		t.Fatal("read errors not flagged")
	}
	write(t, p, "unable to connect to 127.0.0.1:1 Connection refused\n")
	if doCheckWrk(p, "t") == 0 {
		t.Fatal("failed wrk not flagged")
	}
}

func TestCheckFortio(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.json")
	write(t, p, fortioJSON(`{"200":14992}`))
	if doCheckFortio(p, "t") != 0 {
		t.Fatal("clean fortio run flagged")
	}
	r, _ := readFortio(p)
	if math.Abs(r.pct(50)-0.712) > 1e-9 || !math.IsNaN(r.pct(75)) {
		t.Fatalf("pct: %v %v", r.pct(50), r.pct(75))
	}
	write(t, p, fortioJSON(`{"200":14990,"503":2}`))
	if doCheckFortio(p, "t") == 0 {
		t.Fatal("503s not flagged")
	}
	write(t, p, fortioJSON(`{"-1":3}`))
	if doCheckFortio(p, "t") == 0 {
		t.Fatal("connection errors not flagged")
	}
}

func TestBuildReport(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "meta.env"), `date=2026-01-01T00:00:00Z
command=bench/run.sh
nproc=2
cpu_model=Test CPU
fixed=15s
max=10s
qps=1000
conns=16
paths=direct,nginx,weft-gateway,weft-mesh
`)
	stats := `fixed_wall_s=15.0
fixed_proxy_cpu_s=1.5
fixed_backend_cpu_s=0.5
fixed_client_cpu_s=0.5
fixed_machine_busy_s=2.5
max_wall_s=10.0
max_proxy_cpu_s=5.0
max_proxy_cpu_each_s="2.5 2.5"
max_backend_cpu_s=3.0
max_client_cpu_s=4.0
max_machine_busy_s=12.0
rss_idle_kb=20480
rss_idle_each_kb="10240 10240"
rss_anon_idle_each_kb="5120 6144"
rss_fixed_kb=30720
rss_after_kb=30720
rss_peak_kb=40960
`
	for _, p := range []string{"direct", "nginx", "weft-gateway", "weft-mesh"} {
		write(t, filepath.Join(dir, p, "fortio.json"), fortioJSON(`{"200":14992}`))
		write(t, filepath.Join(dir, p, "wrk.txt"), wrkOut)
		write(t, filepath.Join(dir, p, "stats.env"), stats)
	}
	md, err := buildReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| weft one hop (gateway) | 0.712 | 0.986 | 1.580 | +0.000 | 32.9k | 0.50 | 65.8k | 0.10 | 20.0 MB | 30.0 MB | 40.0 MB | – / – | 0.00 / – / 0.00 |",
		"| one hop (gateway), rps per proxy core ÷ nginx's | ≥ 0.7× | 1.00× | met |",
		"| sidecar private memory (RssAnon), idle | ≤ 8 MB | 6.0 MB | met |",
		"Test CPU",
		"per sidecar (client-1, backend-1): 2.5 s, 2.5 s",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "Smoke run") {
		t.Error("full-length run reported as smoke run")
	}
}
