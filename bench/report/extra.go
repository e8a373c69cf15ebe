package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// maxRun is one max-throughput run of the matrix (wrk) or of h2c/gRPC
// (fortio -qps 0): requests per second and the proxy's CPU.
type maxRun struct {
	RPS, Cores float64 // Cores: proxy CPU cores busy, NaN without a proxy
	Other      float64 // background cores
}

func (m *maxRun) perCore() float64 {
	if m == nil || math.IsNaN(m.Cores) || m.Cores <= 0 {
		return math.NaN()
	}
	return m.RPS / m.Cores
}

func readMaxEnv(path string, proxied bool) (*maxRun, map[string]string, error) {
	s, err := readEnv(path)
	if err != nil {
		return nil, nil, err
	}
	m := &maxRun{Cores: math.NaN(), Other: math.NaN()}
	if w := num(s, "max_wall_s"); w > 0 {
		if proxied {
			m.Cores = num(s, "max_proxy_cpu_s") / w
		}
		m.Other = math.Max(0, (num(s, "max_machine_busy_s")-num(s, "max_proxy_cpu_s")-num(s, "max_backend_cpu_s")-num(s, "max_client_cpu_s"))/w)
	}
	return m, s, nil
}

// loadMatrixRun reads $dir/NAME/LABEL (wrk), nil when not run.
func loadMatrixRun(dir, name, label string) *maxRun {
	d := filepath.Join(dir, name, label)
	w, err := readWrk(filepath.Join(d, "wrk.txt"))
	if err != nil {
		return nil
	}
	m, _, err := readMaxEnv(filepath.Join(d, "stats.env"), true)
	if err != nil {
		return nil
	}
	m.RPS = w.RPS
	return m
}

// loadFortioMax reads $dir/NAME/MODE.json and MODE.env, nil when not run.
func loadFortioMax(dir, name, mode string, proxied bool) (*maxRun, *fortioResult) {
	f, err := readFortio(filepath.Join(dir, name, mode+".json"))
	if err != nil {
		return nil, nil
	}
	m, _, err := readMaxEnv(filepath.Join(dir, name, mode+".env"), proxied)
	if err != nil {
		return nil, nil
	}
	m.RPS = f.ActualQPS
	return m, f
}

var matrixProxies = []struct{ key, title string }{
	{"nginx", "nginx"}, {"haproxy", "haproxy"}, {"reverseproxy", "Go httputil.ReverseProxy"}, {"weft-gateway", "weft one hop (gateway)"},
}

// writeMatrix writes the connection-count and body-size runs.
func writeMatrix(w func(string, ...any), dir string, byKey map[string]*result, conns string) {
	any := false
	for _, p := range matrixProxies {
		if loadMatrixRun(dir, p.key, "c1") != nil {
			any = true
		}
	}
	if !any {
		return
	}
	w("## Connections and body sizes (max throughput, wrk)\n\n")
	w("Each cell is requests/s, then requests/s per proxy core. The %s-connection column is the main run above; "+
		"the others are one wrk run each (`wrk -t1 -cN`), on the same proxy process. Bodies are the backend's answer: "+
		"64 B by default, `/1k` 1 KiB, `/64k` 64 KiB.\n\n", conns)
	w("| proxy | 1 connection | %s connections | 256 connections | 1 KiB body | 64 KiB body |\n|---|---|---|---|---|---|\n", conns)
	cell := func(m *maxRun) string {
		if m == nil {
			return "–"
		}
		return fmt.Sprintf("%s / %s", kRPS(m.RPS), kRPS(m.perCore()))
	}
	for _, p := range matrixProxies {
		var main *maxRun
		if r := byKey[p.key]; r != nil {
			main = &maxRun{RPS: r.RPS, Cores: r.Cores}
		}
		w("| %s | %s | %s | %s | %s | %s |\n", p.title, cell(loadMatrixRun(dir, p.key, "c1")), cell(main),
			cell(loadMatrixRun(dir, p.key, "c256")), cell(loadMatrixRun(dir, p.key, "b1k")), cell(loadMatrixRun(dir, p.key, "b64k")))
	}
	w("\n")
}

// h2Results are the h2c and gRPC runs, direct and through the gateway.
type h2Results struct {
	h2cDirect, h2cWeft, grpcDirect, grpcWeft *maxRun
	fh2c, fh2cW, fgrpc, fgrpcW               *fortioResult
}

func loadH2(dir string) h2Results {
	var h h2Results
	h.h2cDirect, h.fh2c = loadFortioMax(dir, "h2c", "h2c", false)
	h.h2cWeft, h.fh2cW = loadFortioMax(dir, "h2c", "h2c-weft", true)
	h.grpcDirect, h.fgrpc = loadFortioMax(dir, "grpc", "grpc", false)
	h.grpcWeft, h.fgrpcW = loadFortioMax(dir, "grpc", "grpc-weft", true)
	return h
}

func writeH2(w func(string, ...any), h h2Results, conns string) {
	if h.h2cDirect == nil && h.grpcDirect == nil {
		return
	}
	w("## HTTP/2 (h2c) and gRPC through one hop\n\n")
	w("fortio's server is the upstream (HTTP on one port, gRPC ping on another); `fortio load -qps 0 -c %s` sends h2c "+
		"(`-h2`, prior knowledge) or unary gRPC pings (`-grpc -ping`), directly and through the weft gateway "+
		"(gateway ports 81 and 82; h2c arrives as HTTP/2 and goes upstream as HTTP/1.1, gRPC goes upstream as h2c).\n\n", conns)
	w("| protocol | direct rps | through weft rps | ÷ direct | weft proxy cores | rps per proxy core | p50 direct / weft ms | background cores |\n|---|---|---|---|---|---|---|---|\n")
	row := func(name string, d, x *maxRun, fd, fx *fortioResult) {
		if d == nil || x == nil {
			return
		}
		w("| %s | %.0f | %.0f | %s | %s | %s | %s / %s | %s / %s |\n", name, d.RPS, x.RPS, ratio(x.RPS, d.RPS), f2(x.Cores),
			kRPS(x.perCore()), ms(fd.pct(50)), ms(fx.pct(50)), f2(d.Other), f2(x.Other))
	}
	row("h2c", h.h2cDirect, h.h2cWeft, h.fh2c, h.fh2cW)
	row("gRPC unary", h.grpcDirect, h.grpcWeft, h.fgrpc, h.fgrpcW)
	w("\n")
}

// cpuPerReq is proxy CPU seconds per request in the max run.
func cpuPerReq(r *result) float64 {
	if r == nil || r.RPS <= 0 {
		return math.NaN()
	}
	return r.Cores / r.RPS
}

// fixedCPUPerReq is proxy CPU seconds per request in the fixed-rate run.
func fixedCPUPerReq(r *result) float64 {
	if r == nil || r.QPS <= 0 {
		return math.NaN()
	}
	return r.VCPU / r.QPS
}

func writeTelemetry(w func(string, ...any), on, off *result) {
	if on == nil || off == nil {
		return
	}
	w("## Telemetry on and off (same run, same config)\n\n")
	w("*On* is the gateway as deployed: Istio's standard metrics, 1%% trace sampling, reports to the control plane every second. ")
	w("*Off* is the same gateway started with `--no-telemetry` (no Tap: the data path does no telemetry work).\n\n")
	w("| | proxy CPU per request at max (µs) | proxy CPU per request at %.0f rps (µs) | rps per proxy core | p50 ms |\n|---|---|---|---|---|\n", on.QPS)
	w("| on | %s | %s | %s | %s |\n", f2v(cpuPerReq(on)*1e6), f2v(fixedCPUPerReq(on)*1e6), kRPS(on.PerC), ms(on.P50))
	w("| off | %s | %s | %s | %s |\n", f2v(cpuPerReq(off)*1e6), f2v(fixedCPUPerReq(off)*1e6), kRPS(off.PerC), ms(off.P50))
	w("| on ÷ off | %s | %s | – | – |\n\n", ratio(cpuPerReq(on), cpuPerReq(off)), ratio(fixedCPUPerReq(on), fixedCPUPerReq(off)))
}

// eachMB returns the per-process values (kB in the env) in MB.
func eachMB(s map[string]string, key string) []float64 {
	var out []float64
	for _, x := range strings.Fields(s[key]) {
		v, _ := strconv.ParseFloat(x, 64)
		out = append(out, v/1024)
	}
	return out
}

func maxOf(v []float64) float64 {
	m := math.NaN()
	for _, x := range v {
		if math.IsNaN(m) || x > m {
			m = x
		}
	}
	return m
}

// target is one row of the issue's targets table.
type target struct {
	metric, measured, goal string
	ok, measuredOK         bool
	bound                  string // what bounds it, shown when not met
}

// profileSummary groups the self time of a perf profile (perf report
// --sort dso,symbol) into where a request's CPU goes.
func profileSummary(path string) ([][2]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	groups := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasSuffix(fields[0], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(fields[0], "%"), 64)
		if err != nil {
			continue
		}
		sym := strings.Join(fields[3:], " ")
		groups[category(fields[1], fields[2], sym)] += pct
	}
	var out [][2]string
	for k, v := range groups {
		out = append(out, [2]string{k, fmt.Sprintf("%.1f%%", v)})
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.ParseFloat(strings.TrimSuffix(out[i][1], "%"), 64)
		b, _ := strconv.ParseFloat(strings.TrimSuffix(out[j][1], "%"), 64)
		return a > b
	})
	return out, sc.Err()
}

// category names what a sampled symbol is part of.
func category(dso, kind, sym string) string {
	switch {
	case kind == "[k]" && (strings.Contains(sym, "tcp") || strings.Contains(sym, "skb") || strings.Contains(sym, "ip_") ||
		strings.Contains(sym, "sock") || strings.Contains(sym, "net_") || strings.Contains(sym, "nf_") || strings.Contains(sym, "napi") ||
		strings.Contains(sym, "softirq") || strings.Contains(sym, "dev_")):
		return "kernel: TCP/IP over loopback (send, receive, wake the peer)"
	case kind == "[k]" && (strings.Contains(sym, "schedule") || strings.Contains(sym, "task_switch") || strings.Contains(sym, "futex") ||
		strings.Contains(sym, "wake") || strings.Contains(sym, "spin_unlock")):
		return "kernel: scheduling, wake-ups"
	case kind == "[k]" && (strings.Contains(sym, "epoll") || strings.Contains(sym, "poll")):
		return "kernel: epoll"
	case kind == "[k]":
		return "kernel: syscall entry/exit, other"
	case strings.Contains(sym, "proxy/http1."):
		return "weft: HTTP/1.1 codec (proxy/http1)"
	case strings.Contains(sym, "proxy/observe.") || strings.Contains(sym, "proxy/stats.") || strings.Contains(sym, "proxy/trace.") ||
		strings.Contains(sym, "proxy/accesslog."):
		return "weft: telemetry (observe, stats, trace)"
	case strings.Contains(sym, "weft-mesh/weft/"):
		return "weft: routing, forwarding, clusters, filters"
	case strings.HasPrefix(sym, "runtime.") && (strings.Contains(sym, "malloc") || strings.Contains(sym, "gc") || strings.Contains(sym, "scan") ||
		strings.Contains(sym, "mark") || strings.Contains(sym, "span") || strings.Contains(sym, "heap") || strings.Contains(sym, "Alloc") || strings.Contains(sym, "sweep")):
		return "Go runtime: allocation and GC"
	case strings.HasPrefix(sym, "runtime.") || strings.HasPrefix(sym, "internal/runtime") || strings.HasPrefix(sym, "gogo") || strings.HasPrefix(sym, "aeshash"):
		return "Go runtime: scheduler, netpoll, maps, other"
	case strings.HasPrefix(sym, "net/http.") || strings.HasPrefix(sym, "net/textproto.") || strings.HasPrefix(sym, "golang.org/x/net/http2"):
		return "Go net/http (h2, upgrades)"
	case strings.HasPrefix(sym, "syscall.") || strings.HasPrefix(sym, "internal/poll.") || strings.HasPrefix(sym, "net.") || strings.Contains(sym, "vdso"):
		return "Go: syscalls and net wrappers"
	}
	return "Go: other (strings, bufio, context, time, ...)"
}

// issueTargets computes issue 13's targets from the run.
func issueTargets(dir string, byKey map[string]*result, h h2Results) []target {
	direct, nginx := byKey["direct"], byKey["nginx"]
	gw, notel := byKey["weft-gateway"], byKey["weft-gateway-notel"]
	mesh, mtls := byKey["weft-mesh"], byKey["weft-mesh-mtls"]
	var ts []target
	nan := func(v ...float64) bool {
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return true
			}
		}
		return false
	}
	add := func(metric, goal string, v float64, format string, ok func(float64) bool, bound string, inputs ...*result) {
		t := target{metric: metric, goal: goal, bound: bound, measured: "–"}
		for _, r := range inputs {
			if r == nil {
				ts = append(ts, t)
				return
			}
		}
		if !nan(v) {
			t.measured, t.measuredOK, t.ok = fmt.Sprintf(format, v), true, ok(v)
		}
		ts = append(ts, t)
	}
	added := func(r, base *result, u bool) float64 {
		if r == nil || base == nil {
			return math.NaN()
		}
		if u {
			if r.U == nil || base.U == nil {
				return math.NaN()
			}
			return r.U.pct(50) - base.U.pct(50)
		}
		return r.P50 - base.P50
	}
	if gw != nil && nginx != nil {
		add("one hop (gateway), rps per proxy core ÷ nginx's", "≥ 0.7×", gw.PerC/nginx.PerC, "%.2f×",
			func(v float64) bool { return v >= 0.7 }, boundThroughput, gw, nginx)
		add("one hop, added p50 at 1000 rps ÷ nginx's added p50 (fixed rate)", "≤ 1.0×",
			added(gw, direct, false)/added(nginx, direct, false), "%.2f×", func(v float64) bool { return v <= 1.0 }, boundLatency, gw, nginx, direct)
		add("one hop, added p50 ÷ nginx's (`-uniform`)", "≤ 1.5×",
			added(gw, direct, true)/added(nginx, direct, true), "%.2f×", func(v float64) bool { return v <= 1.5 }, boundLatency, gw, nginx, direct)
	}
	if mtls != nil && nginx != nil {
		add("mesh path (2 sidecars, mTLS STRICT), added p50 ÷ nginx's one-hop added p50", "≤ 2.0×",
			added(mtls, direct, false)/added(nginx, direct, false), "%.2f×", func(v float64) bool { return v <= 2.0 }, boundMesh, mtls, nginx, direct)
		add("mesh path rps per core (both sidecars' CPU) ÷ nginx's", "≥ 0.35×", mtls.PerC/nginx.PerC, "%.2f×",
			func(v float64) bool { return v >= 0.35 }, boundMesh, mtls, nginx)
	}
	if mesh != nil {
		idle := maxOf(eachMB(mesh.S, "rss_anon_idle_each_kb"))
		fixed := maxOf(eachMB(mesh.S, "rss_anon_fixed_each_kb"))
		rss := maxOf(eachMB(mesh.S, "rss_fixed_each_kb"))
		add("sidecar private memory (RssAnon), idle", "≤ 8 MB", idle, "%.1f MB", func(v float64) bool { return v <= 8 }, boundMemory, mesh)
		add("sidecar private memory (RssAnon) at 1000 rps", "≤ 12 MB", fixed, "%.1f MB", func(v float64) bool { return v <= 12 }, boundMemory, mesh)
		add("sidecar RSS at 1000 rps", "≤ 20 MB", rss, "%.1f MB", func(v float64) bool { return v <= 20 }, boundMemory, mesh)
	}
	if gw != nil {
		add("proxy CPU at 1000 rps, one hop", "≤ 0.05 vCPU", gw.VCPU, "%.3f vCPU", func(v float64) bool { return v <= 0.05 }, boundCPU, gw)
	}
	if h.h2cDirect != nil && h.h2cWeft != nil {
		ts = append(ts, target{metric: "h2c through one hop, max rps ÷ direct", goal: "≥ 0.5×", measuredOK: true,
			measured: ratio(h.h2cWeft.RPS, h.h2cDirect.RPS), ok: h.h2cWeft.RPS/h.h2cDirect.RPS >= 0.5, bound: boundH2})
	}
	if h.grpcDirect != nil && h.grpcWeft != nil {
		ts = append(ts, target{metric: "gRPC unary through one hop, max rps ÷ direct", goal: "≥ 0.5×", measuredOK: true,
			measured: ratio(h.grpcWeft.RPS, h.grpcDirect.RPS), ok: h.grpcWeft.RPS/h.grpcDirect.RPS >= 0.5, bound: boundH2})
	}
	if gw != nil && notel != nil {
		add("telemetry on ÷ off, proxy CPU per request (max run)", "≤ 1.10×", cpuPerReq(gw)/cpuPerReq(notel), "%.2f×",
			func(v float64) bool { return v <= 1.10 }, boundTelemetry, gw, notel)
	}
	return ts
}

// What bounds each target, said when a run does not meet it. From the
// profiles in docs/BENCHMARKS.md (section "Where the time goes").
const (
	boundThroughput = "weft's own code is now under 5% of the gateway's CPU (profile below); the rest is the kernel and the Go runtime. Per request the gateway makes the socket calls nginx makes (two reads, two writes: see System calls per request) and each loopback write runs the receiver's TCP stack and wakes it, which costs the same whatever the proxy; on top of that the Go runtime adds its monitor thread (sysmon wakes every 20 µs while the process is busy: the nanosleep column, about 7% of the gateway's CPU in `runtime.sysmon`), a goroutine parked in netpoll for every read that finds nothing yet and woken by the scheduler, and GC for the ~22 allocations a request still makes. What would move it: fewer allocations (pooling the request and response objects, which the handler API's lifetime rules make risky), and the runtime's costs, which a Go proxy can only avoid by handling many connections per goroutine with an event loop of its own (non-blocking sockets and epoll, outside net's poller)."
	boundLatency    = "Added p50 at a fixed 1000 rps is the cost of one request on an idle proxy plus, in the bursty run, queueing behind the other 15 requests of a burst on one core. The per-request part is what bounds rps per core (see above); in addition a Go proxy pays a goroutine wake-up through netpoll (epoll_wait, futex) on each read that blocks, and the Go scheduler's handoff between the downstream and the upstream socket, where nginx's single event loop continues straight to the next ready socket."
	boundMesh       = "The mesh path is two weft hops on one core plus mutual TLS between them, so it costs about twice the one-hop figures plus AES-GCM record encryption and decryption in both sidecars (crypto/tls: a record per write, with its own copy). Multiplexing the sidecar-to-sidecar leg over HTTP/2 (as Linkerd does) saves connections, not CPU per request: HTTP/2 framing, HPACK and net/http2's goroutine per connection cost more than HTTP/1.1 over a kept-alive pool at this concurrency (see BenchmarkMeshHop in docs/BENCHMARKS.md)."
	boundMemory     = "An idle sidecar's private memory is the Go runtime (heap arenas and the GC's metadata, goroutine stacks), the xDS client's gRPC connection with its buffers and decoded resources, the proxy's compiled configuration and the telemetry registry; under load add the per-connection codec buffers (4 KiB read + 4 KiB write per connection, each side) and the heap the GC lets grow between cycles (GOGC=100 doubles the live heap). RSS adds the pages of the weft binary the process touched, shared between all weft processes on a host. Moving it needs a smaller binary image per role and a lower GOGC or GOMEMLIMIT for sidecars, traded against CPU."
	boundCPU        = "At 1000 rps the proxy's CPU is its per-request cost (see rps per core) times 1000 plus the idle work of the telemetry reporter and the Go runtime (GC, timers); on this VM every syscall and wake-up is several times dearer than on bare metal, and the kernel's share of the per-request cost is the same for nginx."
	boundH2         = "h2c and gRPC go through net/http's HTTP/2 server (one goroutine per connection reading frames, one per stream running the handler, flow-control and HPACK on both sides) and, for gRPC, net/http's HTTP/2 client upstream: weft's own codec is HTTP/1.1 only. A purpose-made HTTP/2 path would be the next step."
	boundTelemetry  = "Telemetry's per-request work is label lookup and counter/histogram updates (lock-free, no allocation once a label set exists), the x-weft-peer header, and trace-context handling; the 1% sampled spans and the per-second report add a little. On a noisy machine a difference under ~10% between two runs of a few seconds is within run-to-run noise: compare the Go benchmark BenchmarkProxyHopTelemetry too."
)

func writeTargets(w func(string, ...any), ts []target) {
	w("## Targets (issue 13) against this run\n\n")
	w("Ratios against peers measured in this same run. A target is *met* only when this run's number is within it; one run on a noisy, shared machine is evidence, not proof.\n\n")
	w("| metric | target | measured here | in this run |\n|---|---|---|---|\n")
	for _, t := range ts {
		v := "not measured"
		if t.measuredOK {
			v = "**not met**"
			if t.ok {
				v = "met"
			}
		}
		w("| %s | %s | %s | %s |\n", t.metric, t.goal, t.measured, v)
	}
	w("\n")
	seen := map[string]bool{}
	var unmet []target
	for _, t := range ts {
		if t.measuredOK && !t.ok {
			unmet = append(unmet, t)
		}
	}
	if len(unmet) == 0 {
		return
	}
	w("### What bounds the targets not met\n\n")
	for _, t := range unmet {
		if seen[t.bound] {
			w("**%s**: as above.\n\n", t.metric)
			continue
		}
		seen[t.bound] = true
		w("**%s** (%s, target %s): %s\n\n", t.metric, t.measured, t.goal, t.bound)
	}
}

func writeProfile(w func(string, ...any), dir string) {
	w("## Profile of the weft gateway in this run\n\n")
	groups, err := profileSummary(filepath.Join(dir, "weft-gateway", "profile", "perf-self.txt"))
	if err != nil || len(groups) == 0 {
		w("Not taken in this run (`BENCH_PROFILE=0`, or `perf` does not work here).\n\n")
		return
	}
	w("`perf record -e cpu-clock -g` on the gateway during a separate 5 s wrk run (16 connections) after the measured ones; self time grouped by what the code is:\n\n")
	w("| where | share of the gateway's CPU |\n|---|---|\n")
	for _, g := range groups {
		w("| %s | %s |\n", g[0], g[1])
	}
	w("\n")
}

func writeMemory(w func(string, ...any), byKey map[string]*result) {
	mesh := byKey["weft-mesh"]
	if mesh == nil {
		return
	}
	w("## Sidecar memory\n\n")
	w("Per sidecar of the mesh path (plaintext row): idle (before any load) and after the fixed-rate run. RssAnon is the process's private memory; RSS adds the weft binary's pages, shared between the weft processes of a host.\n\n")
	w("| sidecar | RSS idle | RssAnon idle | RSS at %.0f rps | RssAnon at %.0f rps |\n|---|---|---|---|---|\n", mesh.QPS, mesh.QPS)
	idle, aIdle := eachMB(mesh.S, "rss_idle_each_kb"), eachMB(mesh.S, "rss_anon_idle_each_kb")
	fixed, aFixed := eachMB(mesh.S, "rss_fixed_each_kb"), eachMB(mesh.S, "rss_anon_fixed_each_kb")
	at := func(v []float64, i int) string {
		if i < len(v) {
			return fmt.Sprintf("%.1f MB", v[i])
		}
		return "–"
	}
	for i, name := range []string{"client-1 (outbound)", "backend-1 (inbound)"} {
		w("| %s | %s | %s | %s | %s |\n", name, at(idle, i), at(aIdle, i), at(fixed, i), at(aFixed, i))
	}
	w("\n")
}

// syscallCounts sums `strace -c` summaries: calls and errors per system
// call.
func syscallCounts(path string) (map[string][2]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][2]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[len(fields)-1] == "total" || fields[len(fields)-1] == "syscall" {
			continue
		}
		if _, err := strconv.ParseFloat(fields[0], 64); err != nil {
			continue
		}
		name := fields[len(fields)-1]
		// % time, seconds, usecs/call, calls[, errors], syscall
		calls, err := strconv.ParseInt(fields[3], 10, 64)
		if err != nil {
			continue
		}
		var errs int64
		if len(fields) == 6 {
			errs, _ = strconv.ParseInt(fields[4], 10, 64)
		}
		c := out[name]
		out[name] = [2]int64{c[0] + calls, c[1] + errs}
	}
	return out, sc.Err()
}

func writeSyscalls(w func(string, ...any), dir string) {
	type row struct {
		title string
		per   map[string]float64
		errs  float64
		total float64
	}
	var rows []row
	names := map[string]float64{}
	for _, p := range matrixProxies {
		counts, err := syscallCounts(filepath.Join(dir, p.key, "syscalls", "strace.txt"))
		if err != nil || len(counts) == 0 {
			continue
		}
		f, err := readFortio(filepath.Join(dir, p.key, "syscalls", "fortio.json"))
		if err != nil || f.DurationHistogram.Count == 0 {
			continue
		}
		n := float64(f.DurationHistogram.Count)
		r := row{title: p.title, per: map[string]float64{}}
		for k, c := range counts {
			r.per[k] = float64(c[0]) / n
			r.errs += float64(c[1]) / n
			r.total += float64(c[0]) / n
			names[k] += float64(c[0]) / n
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return
	}
	var cols []string
	for k, v := range names {
		if v >= 0.05*float64(len(rows)) {
			cols = append(cols, k)
		}
	}
	sort.Slice(cols, func(i, j int) bool { return names[cols[i]] > names[cols[j]] })
	w("## System calls per request\n\n")
	w("Counted with `strace -c -f` on the proxy during a separate run of 20000 requests (fortio, %s connections, as fast as it goes); strace slows the proxy, so only the counts are used. *Failed* are calls that returned an error, nearly all EAGAIN: a read that found nothing yet, after which the proxy waits for the socket in epoll.\n\n", "16")
	w("| proxy | all | failed |")
	for _, c := range cols {
		w(" %s |", c)
	}
	w("\n|---|---|---|%s\n", strings.Repeat("---|", len(cols)))
	for _, r := range rows {
		w("| %s | %.2f | %.2f |", r.title, r.total, r.errs)
		for _, c := range cols {
			w(" %.2f |", r.per[c])
		}
		w("\n")
	}
	w("\n")
}
