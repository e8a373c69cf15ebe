// Command report turns the raw results of bench/run.sh into docs/BENCHMARKS.md.
//
//	report -in OUT -o docs/BENCHMARKS.md     write the report from OUT
//	report -check-fortio FILE -name PATH     exit 1 if a fortio run had non-200s
//	report -check-wrk FILE -name PATH        exit 1 if a wrk run had errors
//
// OUT holds meta.env (machine and run parameters) and one directory per path
// (direct, nginx, weft-gateway, weft-mesh) with fortio.json (fixed-rate run),
// wrk.txt (max-throughput run) and stats.env (CPU time and RSS samples).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func main() {
	in := flag.String("in", "", "raw results directory written by bench/run.sh")
	out := flag.String("o", "docs/BENCHMARKS.md", "report file to write")
	checkFortio := flag.String("check-fortio", "", "fortio JSON result to check for failed requests")
	checkWrk := flag.String("check-wrk", "", "wrk output to check for failed requests")
	name := flag.String("name", "", "path name, for -check-* messages")
	flag.Parse()

	switch {
	case *checkFortio != "":
		os.Exit(doCheckFortio(*checkFortio, *name))
	case *checkWrk != "":
		os.Exit(doCheckWrk(*checkWrk, *name))
	case *in != "":
		md, err := buildReport(*in)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		if old, err := os.ReadFile(*out); err == nil {
			md += keptSections(string(old))
		}
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
	default:
		flag.Usage()
		os.Exit(2)
	}
}

// ---------------------------------------------------------------- fortio

type fortioResult struct {
	RequestedQPS      string
	RequestedDuration string
	ActualQPS         float64
	ActualDuration    int64 // ns
	NumThreads        int
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Min, Max    float64
		Avg         float64
		StdDev      float64
		Percentiles []struct {
			Percentile float64
			Value      float64 // seconds
		}
	}
	ErrorsDurationHistogram struct{ Count int64 }
	SocketCount             int
}

func readFortio(path string) (*fortioResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r fortioResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// ok counts the successful calls: HTTP 200, or a gRPC ping or health
// check answered SERVING.
func (r *fortioResult) ok() int64 { return r.RetCodes["200"] + r.RetCodes["SERVING"] }

func (r *fortioResult) failed() int64 {
	var n int64
	for code, c := range r.RetCodes {
		if code != "200" && code != "SERVING" {
			n += c
		}
	}
	return n
}

// pct returns percentile p in milliseconds, NaN when absent.
func (r *fortioResult) pct(p float64) float64 {
	for _, x := range r.DurationHistogram.Percentiles {
		if x.Percentile == p {
			return x.Value * 1000
		}
	}
	return math.NaN()
}

func doCheckFortio(path, name string) int {
	r, err := readFortio(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[%s] cannot read fortio result: %v\n", name, err)
		return 1
	}
	if f := r.failed(); f > 0 || r.ok() == 0 {
		fmt.Fprintf(os.Stderr, "[%s] fortio: %d of %d requests did not answer 200 (codes %v)\n",
			name, f, r.DurationHistogram.Count, r.RetCodes)
		return 1
	}
	return 0
}

// ---------------------------------------------------------------- wrk

type wrkResult struct {
	Requests     int64
	Seconds      float64
	RPS          float64
	Non2xx       int64
	SocketErrors string // as printed, empty when none
	SocketErrSum int64
	Latency      []wrkPct // from --latency
	Raw          string
}

type wrkPct struct {
	P  string
	Ms float64
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs     = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reLatLine  = regexp.MustCompile(`^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	reDuration = regexp.MustCompile(`^([0-9.]+)(us|ms|s|m)$`)
)

func unitToMs(v float64, unit string) float64 {
	switch unit {
	case "us":
		return v / 1000
	case "ms":
		return v
	case "s":
		return v * 1000
	case "m":
		return v * 60000
	}
	return math.NaN()
}

func readWrk(path string) (*wrkResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := string(b)
	r := &wrkResult{Raw: s}
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("%s: no Requests/sec line (wrk failed?)", path)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reReqs.FindStringSubmatch(s); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
		v, _ := strconv.ParseFloat(m[2], 64)
		r.Seconds = unitToMs(v, m[3]) / 1000
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reSockErr.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			r.SocketErrSum += n
		}
		r.SocketErrors = strings.TrimPrefix(m[0], "Socket errors: ")
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if m := reLatLine.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			r.Latency = append(r.Latency, wrkPct{m[1], unitToMs(v, m[3])})
		}
	}
	return r, nil
}

func doCheckWrk(path, name string) int {
	r, err := readWrk(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[%s] cannot read wrk result: %v\n", name, err)
		return 1
	}
	if r.Non2xx > 0 || r.Requests == 0 {
		fmt.Fprintf(os.Stderr, "[%s] wrk: %d of %d responses were not 2xx/3xx\n", name, r.Non2xx, r.Requests)
		return 1
	}
	// Connect/read/write errors mean broken connections; a few timeouts at the
	// very end of a run are wrk's own cut-off and only warned about.
	if r.SocketErrSum > 0 {
		fmt.Fprintf(os.Stderr, "[%s] wrk warning: socket errors: %s\n", name, r.SocketErrors)
		if m := reSockErr.FindStringSubmatch(r.Raw); m != nil && (m[1] != "0" || m[2] != "0" || m[3] != "0") {
			return 1
		}
	}
	return 0
}

// ---------------------------------------------------------------- env files

// readEnv reads KEY=VALUE lines (values optionally double-quoted).
func readEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		env[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return env, nil
}

func num(env map[string]string, k string) float64 {
	v, err := strconv.ParseFloat(env[k], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// ---------------------------------------------------------------- mTLS

// writeMTLSCost compares the mesh path with and without mutual TLS, both
// measured in this run through the same two sidecars, against the issue's
// targets: mTLS adds at most 15% to p50 and 10% to proxy CPU per request.
func writeMTLSCost(w func(string, ...any), plain, mtls *result) {
	w("## Mutual TLS cost on the mesh path (same run, same sidecars)\n\n")
	if plain == nil || mtls == nil {
		w("Not measured: this run did not include both `weft-mesh` and `weft-mesh-mtls`.\n\n")
		return
	}
	cpuPerReq := func(r *result) float64 { return r.VCPU / r.QPS } // proxy CPU seconds per request at the fixed rate
	ratioRow := func(label string, p, m float64, target float64) {
		v := "–"
		if target > 0 {
			v = "**not met**"
			if m/p <= 1+target {
				v = "met"
			}
		}
		w("| %s | %s | %s | %.3f× | %s |\n", label, f2v(p), f2v(m), m/p, v)
	}
	w("| metric | plaintext (DISABLE) | mTLS (STRICT) | mTLS / plaintext | target |\n|---|---|---|---|---|\n")
	ratioRow("p50 (ms), fixed rate", plain.P50, mtls.P50, 0.15)
	if plain.U != nil && mtls.U != nil {
		ratioRow("p50 (ms), `-uniform`", plain.U.pct(50), mtls.U.pct(50), 0)
	}
	ratioRow("p99 (ms), fixed rate", plain.P99, mtls.P99, 0)
	ratioRow("proxy CPU per request (µs), fixed rate", cpuPerReq(plain)*1e6, cpuPerReq(mtls)*1e6, 0.10)
	ratioRow("rps per proxy core (wrk)", plain.PerC, mtls.PerC, 0)
	w("\nTargets (from the issue): mTLS adds ≤ 15%% to p50 and ≤ 10%% to CPU per request. ")
	w("Connections are kept alive, as between real sidecars, so the handshake cost is paid once per connection; ")
	w("what remains per request is record encryption (AES-GCM) in both sidecars. ")
	w("The mTLS row's memory figures (\"RSS idle\" included) are of the same two processes after the plaintext row's runs, so they are not idle figures; compare memory on the plaintext row.\n\n")
}

func f2v(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// ---------------------------------------------------------------- results

type pathInfo struct {
	Key, Title, Chain, Proxy string
	Proxies                  int // proxy processes in the chain (0 for direct)
}

var paths = []pathInfo{
	{"direct", "direct", "client → backend", "none", 0},
	{"nginx", "nginx", "client → nginx (1 worker, upstream keepalive 64) → backend", "nginx", 1},
	{"haproxy", "haproxy", "client → haproxy (1 thread, `http-reuse always`) → backend", "haproxy", 1},
	{"reverseproxy", "Go httputil.ReverseProxy", "client → `bench/reverseproxy` (the standard library's httputil.ReverseProxy, 256 idle connections) → backend", "httputil.ReverseProxy", 1},
	{"weft-gateway", "weft one hop (gateway)", "client → `weft proxy gateway` (telemetry on: metrics, 1% tracing, reports) → backend", "weft gateway", 1},
	{"weft-gateway-notel", "weft one hop, telemetry off", "client → `weft proxy gateway --no-telemetry` → backend", "weft gateway", 1},
	{"weft-mesh", "weft mesh path (2 sidecars)", "client → sidecar A outbound → sidecar B inbound → backend", "2 weft sidecars", 2},
	{"weft-mesh-mtls", "weft mesh path, mutual TLS", "client → sidecar A outbound →(mTLS)→ sidecar B inbound → backend; the same sidecars as the mesh path with PeerAuthentication STRICT instead of DISABLE", "2 weft sidecars", 2},
}

type result struct {
	pathInfo
	F     *fortioResult
	U     *fortioResult // fortio -uniform run, nil when not run
	W     *wrkResult
	S     map[string]string
	P50   float64
	P90   float64
	P99   float64
	P999  float64
	RPS   float64
	Cores float64 // proxy CPU cores busy during the max run
	PerC  float64 // rps per proxy core
	VCPU  float64 // proxy vCPU at the fixed rate
	QPS   float64 // achieved fixed rate
	Idle  float64 // MB
	Fixed float64 // MB after fixed-rate run
	Peak  float64 // MB (VmHWM)
	Each  []float64
	BeCPU float64 // backend cores during max run
	Other float64 // cores used by processes outside the benchmark during the max run
	OthF  float64 // same, during the fixed-rate run
	OthU  float64 // same, during the uniform fixed-rate run
	Cli   float64 // client (wrk) cores during max run
}

func load(dir string, p pathInfo) (*result, error) {
	d := filepath.Join(dir, p.Key)
	if _, err := os.Stat(d); err != nil {
		return nil, nil // path not run
	}
	f, err := readFortio(filepath.Join(d, "fortio.json"))
	if err != nil {
		return nil, err
	}
	w, err := readWrk(filepath.Join(d, "wrk.txt"))
	if err != nil {
		return nil, err
	}
	s, err := readEnv(filepath.Join(d, "stats.env"))
	if err != nil {
		return nil, err
	}
	r := &result{pathInfo: p, F: f, W: w, S: s}
	if _, err := os.Stat(filepath.Join(d, "fortio-uniform.json")); err == nil {
		if r.U, err = readFortio(filepath.Join(d, "fortio-uniform.json")); err != nil {
			return nil, err
		}
	}
	r.P50, r.P90, r.P99, r.P999 = f.pct(50), f.pct(90), f.pct(99), f.pct(99.9)
	r.RPS = w.RPS
	r.QPS = f.ActualQPS
	nan := math.NaN()
	r.Cores, r.PerC, r.VCPU, r.Idle, r.Fixed, r.Peak = nan, nan, nan, nan, nan, nan
	r.Other, r.OthF, r.OthU, r.Cli = nan, nan, nan, nan
	proxyMax, proxyFixed := num(s, "max_proxy_cpu_s"), num(s, "fixed_proxy_cpu_s")
	if p.Proxies == 0 {
		proxyMax, proxyFixed = 0, 0
	}
	if mw := num(s, "max_wall_s"); mw > 0 {
		r.BeCPU = num(s, "max_backend_cpu_s") / mw
		r.Cli = num(s, "max_client_cpu_s") / mw
		r.Other = math.Max(0, (num(s, "max_machine_busy_s")-proxyMax-num(s, "max_backend_cpu_s")-num(s, "max_client_cpu_s"))/mw)
	}
	if fw := num(s, "fixed_wall_s"); fw > 0 {
		r.OthF = math.Max(0, (num(s, "fixed_machine_busy_s")-proxyFixed-num(s, "fixed_backend_cpu_s")-num(s, "fixed_client_cpu_s"))/fw)
	}
	if uw := num(s, "uniform_wall_s"); uw > 0 {
		proxyUni := num(s, "uniform_proxy_cpu_s")
		if p.Proxies == 0 {
			proxyUni = 0
		}
		r.OthU = math.Max(0, (num(s, "uniform_machine_busy_s")-proxyUni-num(s, "uniform_backend_cpu_s")-num(s, "uniform_client_cpu_s"))/uw)
	}
	if p.Proxies > 0 {
		if mw := num(s, "max_wall_s"); mw > 0 {
			r.Cores = num(s, "max_proxy_cpu_s") / mw
			if r.Cores > 0 {
				r.PerC = r.RPS / r.Cores
			}
		}
		if fw := num(s, "fixed_wall_s"); fw > 0 {
			r.VCPU = num(s, "fixed_proxy_cpu_s") / fw
		}
		r.Idle = num(s, "rss_idle_kb") / 1024
		r.Fixed = num(s, "rss_fixed_kb") / 1024
		r.Peak = num(s, "rss_peak_kb") / 1024
		for _, x := range strings.Fields(s["rss_idle_each_kb"]) {
			v, _ := strconv.ParseFloat(x, 64)
			r.Each = append(r.Each, v/1024)
		}
	}
	return r, nil
}

// ---------------------------------------------------------------- formatting

func ms(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.3f", v)
}

func addMs(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%+.3f", v)
}

func kRPS(v float64) string {
	if math.IsNaN(v) || v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1fk", v/1000)
}

func f2(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func mb(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f MB", v)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func parseDur(s string) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	if m := reDuration.FindStringSubmatch(s); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		return time.Duration(unitToMs(v, m[2]) * float64(time.Millisecond))
	}
	return 0
}

// ---------------------------------------------------------------- report

func buildReport(dir string) (string, error) {
	meta, err := readEnv(filepath.Join(dir, "meta.env"))
	if err != nil {
		return "", err
	}
	var rs []*result
	byKey := map[string]*result{}
	for _, p := range paths {
		r, err := load(dir, p)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p.Key, err)
		}
		if r != nil {
			rs = append(rs, r)
			byKey[p.Key] = r
		}
	}
	if len(rs) == 0 {
		return "", errors.New("no results in " + dir)
	}
	direct, nginx := byKey["direct"], byKey["nginx"]
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	w("# Benchmarks\n\n")
	w("Generated by `bench/run.sh` (report: `bench/report`) on %s. Every number below was measured in that one run; ", meta["date"])
	w("nothing is copied from elsewhere except the rows marked *reference*.\n\n")
	smoke := parseDur(meta["fixed"]) < 15*time.Second || parseDur(meta["max"]) < 10*time.Second
	if smoke {
		w("> **Smoke run**: durations (%s fixed-rate, %s max) are shorter than the defaults (15s, 10s); ", meta["fixed"], meta["max"])
		w("use these numbers only to check that the harness works.\n\n")
	}

	if meta["perf"] != "" && meta["perf"] != "0" {
		w("> **Profiled run** (`BENCH_PERF=1`): `perf record` ran during the max-throughput runs and its overhead lowers their numbers.\n\n")
	}
	if meta["paths"] != "" && meta["paths"] != "direct,nginx,haproxy,reverseproxy,weft-gateway,weft-gateway-notel,weft-mesh,weft-mesh-mtls,h2c,grpc" {
		w("> **Partial run**: only the paths %s were measured.\n\n", meta["paths"])
	}
	w("## Reproduce\n\n```sh\nbench/install.sh   # nginx, haproxy, wrk, strace, perf, taskset, fortio %s\n%s\n```\n\n", strings.TrimSpace(meta["fortio"]), meta["command"])

	w("## Machine and run\n\n")
	w("| | |\n|---|---|\n")
	w("| date (UTC) | %s |\n", meta["date"])
	w("| CPU | %s × %s (`nproc` = %s), %s MHz |\n", meta["cpu_model"], meta["nproc"], meta["nproc"], meta["cpu_mhz"])
	w("| memory | %s |\n", meta["mem_total"])
	w("| kernel | %s |\n", meta["kernel"])
	w("| load average at start / end | %s / %s |\n", meta["loadavg_start"], meta["loadavg_end"])
	w("| weft revision | %s (%s) |\n", meta["git_rev"], meta["go"])
	w("| tools | nginx %s, haproxy %s, wrk %s, fortio %s |\n", meta["nginx"], meta["haproxy"], meta["wrk"], strings.TrimSpace(meta["fortio"]))
	w("| pinning | clients (fortio, wrk) and the weft control plane on core %s; the proxy under test on core %s; backend on cores %s |\n",
		meta["client_cpu"], meta["proxy_cpu"], meta["backend_cpu"])
	w("| fixed-rate run | `fortio load -qps %s -c %s -t %s -r 0.00001` after a %s warm-up |\n", meta["qps"], meta["conns"], meta["fixed"], meta["warmup"])
	if meta["uniform"] != "0" {
		w("| fixed-rate run, uniform | the same with `-uniform` |\n")
	}
	w("| max-throughput run | `wrk -t1 -c%s -d%s --latency` |\n", meta["conns"], meta["max"])
	w("| before each path | wait up to %ss for other work on the machine to drop to ≤ %s cores busy |\n", meta["quiet_wait"], meta["quiet_max"])
	if meta["noisy_retries"] != "" {
		w("| noisy runs | a path is measured again (up to %s more times) when other work used > %s cores during any of its runs; the last attempt is reported |\n", meta["noisy_retries"], meta["noisy_max"])
	}
	w("| backend | `bench/backend`: HTTP/1.1 keep-alive, %s-byte body |\n\n", meta["body_size"])
	w("The machine is a shared 2-core VM: run-to-run noise of 10-20%% in throughput and tens of µs in latency is normal. ")
	w("Compare paths within one run, not across runs.\n\n")

	// Summary.
	w("## Summary\n\n")
	w("Latency from the fixed-rate run (fortio, %s rps); throughput and CPU from the max-throughput run (wrk). ", meta["qps"])
	w("*Added p50* is the path's p50 minus the direct path's p50. *rps per proxy core* is rps ÷ (proxy CPU seconds ÷ wall seconds); ")
	w("for the mesh path the CPU of both sidecars is counted, so it is requests per core spent on the whole 2-proxy path.\n\n")
	w("*Background* is the CPU used by processes outside the benchmark (other work on this shared machine) during each run, in cores out of %s: ", meta["nproc"])
	w("the larger it is, the less a row can be trusted.\n\n")
	w("| path | p50 ms | p90 ms | p99 ms | added p50 ms | max rps | proxy CPU (cores) at max | rps per proxy core | proxy vCPU at %s rps | RSS idle | RSS at %s rps | RSS peak | RssAnon idle / at %s rps | background cores (fixed / uniform / max) |\n", meta["qps"], meta["qps"], meta["qps"])
	w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		ad := "–"
		if direct != nil && r != direct {
			ad = addMs(r.P50 - direct.P50)
		}
		anon := "–"
		if r.Proxies > 0 {
			anon = mb(num(r.S, "rss_anon_idle_kb")/1024) + " / " + mb(num(r.S, "rss_anon_fixed_kb")/1024)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s |\n", r.Title, ms(r.P50), ms(r.P90), ms(r.P99), ad,
			kRPS(r.RPS), f2(r.Cores), kRPS(r.PerC), f2(r.VCPU), mb(r.Idle), mb(r.Fixed), mb(r.Peak), anon, f2(r.OthF), f2(r.OthU), f2(r.Other))
	}
	w("\n")

	// Ratios.
	if direct != nil || nginx != nil {
		w("### Ratios\n\n")
		w("| path | max rps ÷ direct | max rps ÷ nginx | rps per proxy core ÷ nginx | added p50 ÷ nginx's added p50 | p99 ÷ direct | p99 ÷ nginx |\n")
		w("|---|---|---|---|---|---|---|\n")
		for _, r := range rs {
			if r == direct {
				continue
			}
			var rd, rn, pcn, apn, p99d, p99n = "–", "–", "–", "–", "–", "–"
			if direct != nil {
				rd = ratio(r.RPS, direct.RPS)
				p99d = ratio(r.P99, direct.P99)
			}
			if nginx != nil {
				rn = ratio(r.RPS, nginx.RPS)
				pcn = ratio(r.PerC, nginx.PerC)
				p99n = ratio(r.P99, nginx.P99)
				if direct != nil && nginx.P50 > direct.P50 {
					apn = ratio(r.P50-direct.P50, nginx.P50-direct.P50)
				}
			}
			w("| %s | %s | %s | %s | %s | %s | %s |\n", r.Title, rd, rn, pcn, apn, p99d, p99n)
		}
		w("\n")
	}

	// Uniform pacing.
	if direct != nil && direct.U != nil {
		w("### Fixed rate with requests spread evenly (`fortio -uniform`)\n\n")
		w("Without `-uniform`, fortio starts all %s connections together and each sends at the same instants, so every %.1f ms the path receives a burst of %s requests at once; ", meta["conns"], num(meta, "conns")/num(meta, "qps")*1000, meta["conns"])
		w("a proxy with one core (nginx's single worker, a weft proxy pinned to one core) answers a burst one request after another, and its p50 includes that queueing. ")
		w("The same rate with `-uniform` spreads the connections' send times over the period, which isolates the per-request cost of the hop. Both are reported; the targets below are judged on the main (non-uniform) run.\n\n")
		w("| path | p50 ms | p90 ms | p99 ms | added p50 ms |\n|---|---|---|---|---|\n")
		for _, r := range rs {
			if r.U == nil {
				continue
			}
			ad := "–"
			if r != direct {
				ad = addMs(r.U.pct(50) - direct.U.pct(50))
			}
			w("| %s | %s | %s | %s | %s |\n", r.Title, ms(r.U.pct(50)), ms(r.U.pct(90)), ms(r.U.pct(99)), ad)
		}
		w("\n")
	}

	// Targets.
	h2 := loadH2(dir)
	writeTargets(w, issueTargets(dir, byKey, h2))
	writeMatrix(w, dir, byKey, meta["conns"])
	writeH2(w, h2, meta["conns"])
	writeTelemetry(w, byKey["weft-gateway"], byKey["weft-gateway-notel"])
	writeMemory(w, byKey)
	writeProfile(w, dir)
	writeSyscalls(w, dir)

	writeMTLSCost(w, byKey["weft-mesh"], byKey["weft-mesh-mtls"])

	// Reference points.
	w("## Reference points\n\n")
	w("Rows marked *reference* are figures quoted in the issue, not measured here or on this machine; ")
	w("the other rows are from this run.\n\n")
	w("| proxy | added p50 | rps per core | CPU per 1000 rps | memory |\n|---|---|---|---|---|\n")
	w("| Envoy (*reference*) | – | – | 0.20 vCPU | 60 MB per 1000 rps |\n")
	w("| ztunnel (*reference*) | – | – | 0.06 vCPU | – |\n")
	for _, r := range rs {
		if r.Proxies == 0 {
			continue
		}
		ad := "–"
		if direct != nil {
			ad = addMs(r.P50-direct.P50) + " ms"
		}
		per1k := math.NaN()
		if r.QPS > 0 {
			per1k = r.VCPU / (r.QPS / 1000)
		}
		w("| %s (this run) | %s | %s | %s vCPU | %s at %.0f rps, %s peak |\n", r.Title, ad, kRPS(r.PerC), f2(per1k), mb(r.Fixed), r.QPS, mb(r.Peak))
	}
	w("\n")

	// Per path.
	w("## Per path\n\n")
	for _, r := range rs {
		w("### %s\n\n%s. Proxy: %s.\n\n", r.Title, r.Chain, r.Proxy)
		w("| metric | value | vs direct | vs nginx |\n|---|---|---|---|\n")
		row := func(label, v string, d, n float64, isLat bool) {
			vd, vn := "–", "–"
			if direct != nil && r != direct {
				if isLat {
					vd = addMs(r.pickLat(label)-direct.pickLat(label)) + " ms"
				} else {
					vd = ratio(d, direct.RPS)
				}
			}
			if nginx != nil && r != nginx {
				if isLat {
					vn = addMs(r.pickLat(label)-nginx.pickLat(label)) + " ms"
				} else {
					vn = ratio(n, nginx.RPS)
				}
			}
			w("| %s | %s | %s | %s |\n", label, v, vd, vn)
		}
		row("p50", ms(r.P50)+" ms", 0, 0, true)
		row("p90", ms(r.P90)+" ms", 0, 0, true)
		row("p99", ms(r.P99)+" ms", 0, 0, true)
		row("p99.9", ms(r.P999)+" ms", 0, 0, true)
		row("max rps (wrk)", fmt.Sprintf("%.0f", r.RPS), r.RPS, r.RPS, false)
		if r.Proxies > 0 {
			pcn := "–"
			if nginx != nil && r != nginx {
				pcn = ratio(r.PerC, nginx.PerC)
			}
			each := ""
			if f := strings.Fields(r.S["max_proxy_cpu_each_s"]); len(f) > 1 {
				each = "; per sidecar (client-1, backend-1): " + strings.Join(f, " s, ") + " s"
			}
			w("| proxy CPU at max | %s cores (%s s over %s s%s) | – | – |\n", f2(r.Cores), r.S["max_proxy_cpu_s"], r.S["max_wall_s"], each)
			w("| rps per proxy core | %.0f | – | %s |\n", r.PerC, pcn)
			w("| proxy CPU at %.0f rps | %s vCPU | – | – |\n", r.QPS, f2(r.VCPU))
			idle := mb(r.Idle)
			if len(r.Each) > 1 {
				var parts []string
				for _, e := range r.Each {
					parts = append(parts, fmt.Sprintf("%.1f", e))
				}
				idle += " (" + strings.Join(parts, " + ") + ")"
			}
			w("| RSS idle / at fixed rate / after max / peak | %s / %s / %s / %s | – | – |\n", idle, mb(r.Fixed),
				mb(num(r.S, "rss_after_kb")/1024), mb(r.Peak))
			w("| private memory (RssAnon) idle / at fixed rate | %s / %s | – | – |\n", mb(num(r.S, "rss_anon_idle_kb")/1024), mb(num(r.S, "rss_anon_fixed_kb")/1024))
		}
		w("| CPU at max: backend / client (wrk) / background | %s / %s / %s cores | – | – |\n", f2(r.BeCPU), f2(r.Cli), f2(r.Other))
		w("| fixed-rate run | %d requests, %d non-200, %.1f rps achieved, %d sockets | – | – |\n",
			r.F.DurationHistogram.Count, r.F.failed(), r.QPS, r.F.SocketCount)
		if a := r.S["attempts"]; a != "" && a != "1" {
			w("| attempts | %s (earlier ones discarded: other work on the machine during the runs) | – | – |\n", a)
		}
		sock := "none"
		if r.W.SocketErrSum > 0 {
			sock = r.W.SocketErrors
		}
		var lat []string
		for _, l := range r.W.Latency {
			lat = append(lat, fmt.Sprintf("p%s %.3f ms", l.P, l.Ms))
		}
		w("| max run (wrk) | %d requests in %.2f s, %d non-2xx, socket errors: %s; latency under max load %s | – | – |\n\n",
			r.W.Requests, r.W.Seconds, r.W.Non2xx, sock, strings.Join(lat, ", "))
	}

	w("## How the numbers are taken\n\n")
	w("- **Latency** is fortio's histogram (10 µs resolution) over the fixed-rate run: %s rps over %s keep-alive connections, so every path is compared at the same offered load, well below its maximum throughput (but in bursts of %s requests unless `-uniform`, see above).\n", meta["qps"], meta["conns"], meta["conns"])
	w("- **Max rps** is wrk with one thread and %s connections on the client core. On 2 cores the client, backend and proxy compete, so the direct path's rps is bounded by the client and backend, not the network; a proxy path's rps is bounded by whichever of client, proxy and backend saturates first.\n", meta["conns"])
	w("- **rps per proxy core** normalises by the CPU the proxy processes actually used during the wrk run (utime+stime from `/proc/PID/stat`, summed over the process and its children), which makes it less sensitive to which component saturated first.\n")
	w("- **Private memory** is RssAnon from `/proc/PID/status`: what the process itself allocated. The rest of a weft proxy's RSS is the pages of the weft binary it has touched (RssFile), which the page cache shares among every weft process on the host; with many sidecars per host, RssAnon is the per-sidecar cost.\n")
	w("- **RSS** is VmRSS from `/proc/PID/status` (summed over nginx's master and worker; for the mesh path, summed over both sidecars with each shown in the per-path table); *peak* is VmHWM after the max run.\n")
	w("- **Background cores** are machine-wide busy CPU time (`/proc/stat`) during a run minus the proxy's, the backend's and the client's own CPU time: work of other processes on this shared machine, which competes with the benchmark.\n")
	w("- The control plane runs on the client core and is idle during the runs (configuration is applied and the proxies report ready before any load).\n")
	w("- Raw results (fortio JSON, wrk output, CPU/RSS samples, the nginx config and the weft YAML) are kept in the run's output directory (`BENCH_OUT`, default `/tmp/weft-bench.*`).\n")

	return b.String(), nil
}

func (r *result) pickLat(label string) float64 {
	switch label {
	case "p50":
		return r.P50
	case "p90":
		return r.P90
	case "p99":
		return r.P99
	case "p99.9":
		return r.P999
	}
	return math.NaN()
}

// keptMarker starts the part of the report file that other benchmarks (Go
// benchmarks measured with their own commands) own; the report keeps it.
const keptMarker = "<!-- sections below are not written by bench/report -->"

// keptSections returns the tail of an existing report from keptMarker on,
// or "" when it has none.
func keptSections(old string) string {
	i := strings.Index(old, keptMarker)
	if i < 0 {
		return ""
	}
	return "\n" + old[i:]
}
