#!/usr/bin/env bash
# weft benchmark harness: one run measures every path to the same backend and
# writes docs/BENCHMARKS.md. See bench/README.md.
#
#   bench/install.sh                              # once: nginx, wrk, taskset, fortio
#   bench/run.sh                                  # full run (~3 minutes)
#   BENCH_FIXED=2s BENCH_MAX=2s bench/run.sh      # smoke run
#   BENCH_PATHS=direct,nginx bench/run.sh         # a subset of paths
#
# Environment (all optional):
#   BENCH_PATHS      comma list of direct,nginx,haproxy,reverseproxy,weft-gateway,
#                    weft-gateway-notel,weft-mesh,weft-mesh-mtls,h2c,grpc
#                    (default: all; the two mesh paths share their sidecars and differ
#                    only in the PeerAuthentication applied: DISABLE, then STRICT;
#                    h2c and grpc measure fortio's server directly and through the
#                    weft gateway)
#   BENCH_MATRIX     1 = also measure max throughput of nginx, haproxy, reverseproxy and
#                    the weft gateway with 1 and 256 connections and 1 KiB and 64 KiB
#                    bodies (default 1)
#   BENCH_PROFILE    1 = after the measured runs, profile the weft gateway with
#                    `perf record` during a separate wrk run, for the report's
#                    profile summary (default 1 when perf works)
#   BENCH_FIXED      fortio fixed-rate duration (default 15s)
#   BENCH_QPS        fortio fixed rate (default 1000)
#   BENCH_MAX        wrk max-throughput duration (default 10s)
#   BENCH_CONNS      connections for fortio and wrk (default 16)
#   BENCH_WARMUP     fortio warm-up before measuring, discarded (default 2s; 0 = none)
#   BENCH_UNIFORM    also run the fixed rate with fortio -uniform (default 1; 0 = skip)
#   BENCH_PERF       1 = profile the proxy with `perf record` during the max run
#                    (needs linux-perf; lowers that run's numbers) (default 0)
#   BENCH_QUIET_WAIT before each path, wait up to this many seconds for the machine
#                    to be idle (busy <= BENCH_QUIET_MAX cores, default 0.3) (default 60; 0 = no wait)
#   BENCH_NOISY_MAX, BENCH_NOISY_RETRIES
#                    measure a path again (up to RETRIES more times, default 2) when
#                    other work used more than MAX cores (default 0.3) during its runs
#   BENCH_SYSCALLS   1 = count the system calls per request of each proxy with
#                    `strace -c -f` during a separate run of 20000 requests (needs
#                    strace; default 1 when strace is installed)
#   BENCH_CPU_PROFILE write a CPU profile (pprof) of the weft gateway (telemetry on)
#                    over all its runs to this file: bench/pgo.sh makes
#                    cmd/weft/default.pgo from it
#   BENCH_OUT        raw results directory (default: a new /tmp/weft-bench.XXXXXX)
#   BENCH_REPORT     report file (default: docs/BENCHMARKS.md for a full run with the
#                    default durations, rate and connections and no perf, else
#                    $BENCH_OUT/BENCHMARKS.md)
#   BENCH_PORT_BASE  first of the loopback ports used (default 18080)
#   BENCH_WEFT       use this weft binary instead of building ./cmd/weft
#   BENCH_CLIENT_CPU core for clients and the control plane (default 0)
#   BENCH_PROXY_CPU  core for the proxy under test (default 1)
#   BENCH_BACKEND_CPU cores for the backend (default: unpinned, "0,1")
#   FORTIO           fortio binary (default: ${BENCH_GOBIN:-$HOME/go/bin}/fortio as
#                    installed by bench/install.sh, else fortio on PATH)
#
# shellcheck disable=SC2086 # $ppids and friends are pid lists, split on purpose
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DEFAULT_FIXED=15s
DEFAULT_MAX=10s
ALL_PATHS=direct,nginx,haproxy,reverseproxy,weft-gateway,weft-gateway-notel,weft-mesh,weft-mesh-mtls,h2c,grpc

PATHS="${BENCH_PATHS:-$ALL_PATHS}"
FIXED="${BENCH_FIXED:-$DEFAULT_FIXED}"
MAXD="${BENCH_MAX:-$DEFAULT_MAX}"
QPS="${BENCH_QPS:-1000}"
CONNS="${BENCH_CONNS:-16}"
WARMUP="${BENCH_WARMUP:-2s}"
UNIFORM="${BENCH_UNIFORM:-1}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-60}"
PERF="${BENCH_PERF:-0}"
NOISY_MAX="${BENCH_NOISY_MAX:-0.3}"
NOISY_RETRIES="${BENCH_NOISY_RETRIES:-2}"
QUIET_MAX="${BENCH_QUIET_MAX:-0.3}"
PORT_BASE="${BENCH_PORT_BASE:-18080}"
CLIENT_CPU="${BENCH_CLIENT_CPU:-0}"
PROXY_CPU="${BENCH_PROXY_CPU:-1}"
BACKEND_CPU="${BENCH_BACKEND_CPU:-0,1}"
BODY_SIZE=64
MATRIX="${BENCH_MATRIX:-1}"
SYSCALLS="${BENCH_SYSCALLS:-1}"
command -v strace >/dev/null 2>&1 || SYSCALLS=0
PROFILE="${BENCH_PROFILE:-1}"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] FAIL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
if [ -z "${FORTIO:-}" ]; then
  FORTIO="${BENCH_GOBIN:-$HOME/go/bin}/fortio" # where bench/install.sh puts v1.66.0
  [ -x "$FORTIO" ] || FORTIO="$(command -v fortio || true)"
fi
[ -n "$FORTIO" ] && [ -x "$FORTIO" ] || die "fortio not found (run bench/install.sh)"
for t in wrk taskset curl go; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (run bench/install.sh)"
done

want() { case ",$PATHS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
for p in ${PATHS//,/ }; do
  case "$p" in direct|nginx|haproxy|reverseproxy|weft-gateway|weft-gateway-notel|weft-mesh|weft-mesh-mtls|h2c|grpc) ;; *) die "unknown path '$p' in BENCH_PATHS (known: $ALL_PATHS)" ;; esac
done
if [ "${BENCH_PERF:-0}" != 0 ]; then command -v perf >/dev/null 2>&1 || die "BENCH_PERF=1 needs perf (apt-get install linux-perf)"; fi
if want nginx; then command -v nginx >/dev/null 2>&1 || die "nginx not found (run bench/install.sh)"; fi
if want haproxy; then command -v haproxy >/dev/null 2>&1 || die "haproxy not found (run bench/install.sh)"; fi
NEED_WEFT=false
if want weft-gateway || want weft-gateway-notel || want weft-mesh || want weft-mesh-mtls || want h2c || want grpc; then NEED_WEFT=true; fi
if [ "$PROFILE" != 0 ] && ! { command -v perf >/dev/null 2>&1 && perf record -q -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; }; then
  PROFILE=0 # no perf here: the report says so
fi

# dur_s DURATION : whole seconds in a fortio/wrk duration (500ms, 15s, 2m).
dur_s() {
  awk -v d="$1" 'BEGIN {
    v = d + 0; u = d; sub(/^[0-9.]+/, "", u)
    if (u == "ms") v /= 1000; else if (u == "m") v *= 60; else if (u == "h") v *= 3600
    printf "%d", v + 0.999
  }'
}
# bounded DURATION CMD... : runs CMD, killed if it outlives DURATION by 60s.
bounded() {
  local s
  s=$(( $(dur_s "$1") + 60 ))
  shift
  timeout -k 5 "$s" "$@"
}

# calc EXPR : floating-point arithmetic, 3 decimals.
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }

# ---------------------------------------------------------------- output
OUT="${BENCH_OUT:-$(mktemp -d /tmp/weft-bench.XXXXXX)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
TMP="$OUT/tmp"
rm -rf "$TMP"
mkdir -p "$TMP"
if [ -n "${BENCH_REPORT:-}" ]; then
  REPORT="$BENCH_REPORT"
elif [ "$FIXED" = "$DEFAULT_FIXED" ] && [ "$MAXD" = "$DEFAULT_MAX" ] && [ "$PATHS" = "$ALL_PATHS" ] \
  && [ "$QPS" = 1000 ] && [ "$CONNS" = 16 ] && [ "$PERF" = 0 ]; then
  REPORT="$ROOT/docs/BENCHMARKS.md"
else
  REPORT="$OUT/BENCHMARKS.md"
fi
log "raw results in $OUT"

# ---------------------------------------------------------------- processes
declare -a PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${PIDS[@]}"; do
    pkill -TERM -P "$p" 2>/dev/null || true # nginx's worker
    kill -TERM "$p" 2>/dev/null || true
  done
  for _ in $(seq 1 30); do
    local alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start VAR CPUS LOG CMD... : runs CMD pinned to CPUS in the background and
# stores its pid in VAR (taskset execs, so the pid is the command's own).
start() {
  local __var="$1" cpus="$2" logf="$3"
  shift 3
  taskset -c "$cpus" "$@" >"$logf" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  printf -v "$__var" '%s' "$pid"
}

# stop PID... : ends processes this script started, and waits for them.
stop() {
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  # Forget them, so that cleanup never signals a recycled pid.
  local keep=() q
  for q in "${PIDS[@]}"; do
    case " $* " in *" $q "*) ;; *) keep+=("$q") ;; esac
  done
  PIDS=("${keep[@]}")
}

alive_or_die() { # PID NAME LOG
  kill -0 "$1" 2>/dev/null && return 0
  log "$2 exited early; last lines of $3:"
  tail -n 30 "$3" >&2 || true
  die "$2 is not running"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # PORT PID NAME LOG [TIMEOUT_S]
  local t=$(( ${5:-20} * 10 ))
  for _ in $(seq 1 "$t"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    alive_or_die "$2" "$3" "$4"
    sleep 0.1
  done
  die "$3 did not listen on 127.0.0.1:$1 within ${5:-20}s (log: $4)"
}

# wait_200 NAME TIMEOUT_S PID LOG URL [curl args...]
wait_200() {
  local name="$1" timeout="$2" pid="$3" logf="$4" url="$5"
  shift 5
  local code=000
  for _ in $(seq 1 $(( timeout * 10 ))); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true)
    [ "$code" = 200 ] && return 0
    for p in $pid; do alive_or_die "$p" "$name" "$logf"; done
    sleep 0.1
  done
  die "$name: GET $url $* did not answer 200 within ${timeout}s (last status $code; log: $logf)"
}

# The process and its children (nginx: master and worker).
tree_pids() {
  local p
  for p in "$@"; do
    echo "$p"
    pgrep -P "$p" 2>/dev/null || true
  done
}

CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID... : utime+stime of the processes and their children, in ticks.
cpu_ticks() {
  local total=0 p stat rest
  for p in $(tree_pids "$@"); do
    stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    rest=${stat##*) }
    # shellcheck disable=SC2206
    local f=($rest)
    total=$(( total + f[11] + f[12] ))
  done
  echo "$total"
}

# mem_kb FIELD PID... : sum of FIELD (VmRSS, VmHWM) over the process tree, kB.
mem_kb() {
  local field="$1" total=0 p v
  shift
  for p in $(tree_pids "$@"); do
    v=$(awk -v f="$field:" '$1==f {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

now() { date +%s.%N; }

# busy_ticks : machine-wide busy CPU ticks (all but idle and iowait), from /proc/stat.
busy_ticks() { awk '$1=="cpu" { print $2+$3+$4+$7+$8+$9; exit }' /proc/stat; }

# child_ticks VAR : stores in VAR the user+sys CPU of this shell's reaped
# children (fortio, wrk), in ticks. Must not run in a subshell: a subshell's
# `times` does not see the parent's children.
child_ticks() {
  times >"$TMP/times.txt"
  printf -v "$1" '%s' "$(tail -n 1 "$TMP/times.txt" | awk -v tck="$CLK_TCK" '{
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
    printf "%d", t * tck + 0.5
  }')"
}

# wait_quiet NAME : waits (up to BENCH_QUIET_WAIT seconds) until the machine is
# nearly idle, i.e. other work on this shared machine has paused, so that a
# path is not measured in the middle of someone's build. Proceeds anyway after
# the wait, with a warning; the report shows the background CPU of every run.
wait_quiet() {
  local name="$1" limit="$QUIET_WAIT" waited=0 b0 b1 busy
  [ "$limit" = 0 ] && return 0
  while :; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    busy=$(calc "($b1 - $b0) / $CLK_TCK")
    if awk -v b="$busy" -v m="$QUIET_MAX" 'BEGIN { exit !(b <= m) }'; then
      [ "$waited" -gt 0 ] && log "[$name] machine quiet after ${waited}s (busy $busy cores)"
      return 0
    fi
    waited=$((waited + 1))
    if [ "$waited" -ge "$limit" ]; then
      log "[$name] WARNING: machine still busy ($busy cores used by other work) after ${limit}s; measuring anyway"
      return 0
    fi
    [ $((waited % 10)) = 1 ] && log "[$name] machine busy ($busy cores used by other work); waiting up to ${limit}s"
  done
}

# ---------------------------------------------------------------- ports
P_BACKEND=$PORT_BASE
P_NGINX=$((PORT_BASE + 1))
P_HAPROXY=$((PORT_BASE + 2))
P_RP=$((PORT_BASE + 3))
P_FHTTP=$((PORT_BASE + 4))
P_FGRPC=$((PORT_BASE + 5))
P_GW_H2C=$((PORT_BASE + 22))
P_GW_GRPC=$((PORT_BASE + 23))
P_API=$((PORT_BASE + 10))
P_XDS=$((PORT_BASE + 11))
P_GW=$((PORT_BASE + 20))
P_GWADMIN=$((PORT_BASE + 21))
P_OUT=$((PORT_BASE + 30))
P_CADMIN=$((PORT_BASE + 31))
P_IN=$((PORT_BASE + 32))
P_BADMIN=$((PORT_BASE + 33))
for p in $P_BACKEND $P_NGINX $P_HAPROXY $P_RP $P_FHTTP $P_FGRPC $P_GW_H2C $P_GW_GRPC $P_API $P_XDS $P_GW $P_GWADMIN $P_OUT $P_CADMIN $P_IN $P_BADMIN; do
  port_free "$p" || die "port 127.0.0.1:$p is in use (set BENCH_PORT_BASE)"
done

# ---------------------------------------------------------------- build
log "building backend and report"
go build -o "$OUT/backend" ./bench/backend
go build -o "$OUT/report" ./bench/report
go build -o "$OUT/bin-reverseproxy" ./bench/reverseproxy
WEFT=""
if $NEED_WEFT; then
  if [ -n "${BENCH_WEFT:-}" ]; then
    WEFT="$BENCH_WEFT"
    [ -x "$WEFT" ] || die "BENCH_WEFT=$WEFT is not executable"
  else
    log "building weft"
    go build -o "$OUT/weft" ./cmd/weft
    WEFT="$OUT/weft"
  fi
fi

# ---------------------------------------------------------------- metadata
CMDLINE="bench/run.sh"
for v in BENCH_PATHS BENCH_MATRIX BENCH_PROFILE BENCH_FIXED BENCH_MAX BENCH_QPS BENCH_CONNS BENCH_WARMUP BENCH_UNIFORM BENCH_PERF BENCH_QUIET_WAIT BENCH_QUIET_MAX BENCH_NOISY_MAX BENCH_NOISY_RETRIES BENCH_PORT_BASE BENCH_CLIENT_CPU BENCH_PROXY_CPU BENCH_BACKEND_CPU; do
  if [ -n "${!v:-}" ]; then CMDLINE="$v=${!v} $CMDLINE"; fi
done
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command=$CMDLINE"
  echo "nproc=$(nproc)"
  echo "cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "cpu_mhz=$(awk -F': ' '/^cpu MHz/ {print $2; exit}' /proc/cpuinfo)"
  echo "mem_total=$(awk '/^MemTotal/ {print $2" "$3}' /proc/meminfo)"
  echo "kernel=$(uname -sr)"
  echo "go=$(go version | awk '{print $3}')"
  # +dirty: the tree differs from HEAD outside the harness's own files.
  echo "git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$([ -z "$(git status --porcelain -- . ':!bench' ':!docs/BENCHMARKS.md' 2>/dev/null)" ] || echo '+dirty')"
  echo "nginx=$(nginx -v 2>&1 | sed 's/^nginx version: //')"
  echo "haproxy=$(haproxy -v 2>/dev/null | head -n1 | awk '{print $3}')"
  echo "matrix=$MATRIX"
  echo "profile=$PROFILE"
  echo "syscalls=$SYSCALLS"
  echo "wrk=$(wrk -v 2>&1 | head -n1 | awk '{print $2}')"
  echo "fortio=$("$FORTIO" version 2>&1 | head -n1)"
  echo "paths=$PATHS"
  echo "fixed=$FIXED"
  echo "max=$MAXD"
  echo "qps=$QPS"
  echo "conns=$CONNS"
  echo "warmup=$WARMUP"
  echo "uniform=$UNIFORM"
  echo "quiet_wait=$QUIET_WAIT"
  echo "perf=$PERF"
  echo "quiet_max=$QUIET_MAX"
  echo "noisy_max=$NOISY_MAX"
  echo "noisy_retries=$NOISY_RETRIES"
  echo "body_size=$BODY_SIZE"
  echo "client_cpu=$CLIENT_CPU"
  echo "proxy_cpu=$PROXY_CPU"
  echo "backend_cpu=$BACKEND_CPU"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.env"

# ---------------------------------------------------------------- backend
log "starting backend on 127.0.0.1:$P_BACKEND (cpus $BACKEND_CPU)"
start BACKEND_PID "$BACKEND_CPU" "$TMP/backend.log" "$OUT/backend" -addr "127.0.0.1:$P_BACKEND" -size "$BODY_SIZE"
wait_port "$P_BACKEND" "$BACKEND_PID" backend "$TMP/backend.log"
wait_200 backend 10 "$BACKEND_PID" "$TMP/backend.log" "http://127.0.0.1:$P_BACKEND/"

# mark "PROXY_PIDS" BACKEND_PID : takes the CPU and time marks a run's
# figures start from (globals M_*; not in a subshell: child_ticks).
mark() {
  M_C=$(cpu_ticks $1); M_B=$(cpu_ticks "$2"); child_ticks M_K; M_M=$(busy_ticks); M_T=$(now)
}

# marked PREFIX "PROXY_PIDS" BACKEND_PID : prints the run's PREFIX_* figures
# since mark: wall time, and the CPU of the proxies, the backend, this
# shell's children (the client) and the whole machine.
marked() {
  local t m k c b
  t=$(now); m=$(busy_ticks); child_ticks k; c=$(cpu_ticks $2); b=$(cpu_ticks "$3")
  echo "$1_wall_s=$(calc "$t - $M_T")"
  echo "$1_proxy_cpu_s=$(calc "($c - $M_C) / $CLK_TCK")"
  echo "$1_backend_cpu_s=$(calc "($b - $M_B) / $CLK_TCK")"
  echo "$1_client_cpu_s=$(calc "($k - $M_K) / $CLK_TCK")"
  echo "$1_machine_busy_s=$(calc "($m - $M_M) / $CLK_TCK")"
}

# ---------------------------------------------------------------- measure
# measure NAME URL HOST_HEADER "PROXY_PIDS" PROXY_LOG
#   HOST_HEADER: empty for the URL's own host.
#   PROXY_PIDS: space-separated pids of the proxy processes (empty for direct).
measure_once() {
  local name="$1" url="$2" host="$3" ppids="$4" plog="$5"
  local dir="$OUT/$name"
  mkdir -p "$dir"
  local -a hdr=()
  [ -n "$host" ] && hdr=(-H "Host: $host")

  log "[$name] checking $url ${host:+(Host: $host)}"
  wait_200 "$name" 30 "$BACKEND_PID $ppids" "$plog" "$url" "${hdr[@]}"
  wait_quiet "$name"
  local rss_idle=0 rss_idle_each="" p
  if [ "$ATTEMPT" -gt 1 ]; then
    # Idle RSS is only idle before the first attempt's load.
    rss_idle=$(cat "$dir/rss_idle_kb"); rss_idle_each=$(cat "$dir/rss_idle_each_kb")
  elif [ -n "$ppids" ]; then
    rss_idle=$(mem_kb VmRSS $ppids)
    for p in $ppids; do rss_idle_each="$rss_idle_each $(mem_kb VmRSS "$p")"; done
  fi
  echo "$rss_idle" >"$dir/rss_idle_kb"; echo "$rss_idle_each" >"$dir/rss_idle_each_kb"
  # RssAnon is the process's private memory; the rest of RSS is the weft
  # binary's pages, shared by every weft process on the host.
  if [ "$ATTEMPT" -eq 1 ]; then
    if [ -n "$ppids" ]; then mem_kb RssAnon $ppids >"$dir/rss_anon_idle_kb"; else echo 0 >"$dir/rss_anon_idle_kb"; fi
    local a=""
    for p in $ppids; do a="$a $(mem_kb RssAnon "$p")"; done
    echo "${a# }" >"$dir/rss_anon_idle_each_kb"
  fi

  if [ "$WARMUP" != 0 ] && [ "$WARMUP" != 0s ]; then
    log "[$name] warm-up $WARMUP at $QPS qps"
    bounded "$WARMUP" taskset -c "$CLIENT_CPU" "$FORTIO" load -qps "$QPS" -c "$CONNS" -t "$WARMUP" -r 0.00001 \
      "${hdr[@]}" -json "$dir/warmup.json" "$url" >"$dir/warmup.log" 2>&1 \
      || { tail -n 20 "$dir/warmup.log" >&2; die "[$name] warm-up fortio failed"; }
  fi

  log "[$name] fixed rate: fortio -qps $QPS -c $CONNS -t $FIXED"
  mark "$ppids" "$BACKEND_PID"
  bounded "$FIXED" taskset -c "$CLIENT_CPU" "$FORTIO" load -qps "$QPS" -c "$CONNS" -t "$FIXED" -r 0.00001 \
    "${hdr[@]}" -json "$dir/fortio.json" "$url" >"$dir/fortio.log" 2>&1 \
    || { tail -n 20 "$dir/fortio.log" >&2; die "[$name] fortio failed (log: $dir/fortio.log)"; }
  {
    marked fixed "$ppids" "$BACKEND_PID"
    echo "rss_fixed_kb=$( [ -n "$ppids" ] && mem_kb VmRSS $ppids || echo 0)"
    echo "rss_anon_fixed_kb=$( [ -n "$ppids" ] && mem_kb RssAnon $ppids || echo 0)"
    local q e1="" e2=""
    for q in $ppids; do e1="$e1 $(mem_kb VmRSS "$q")"; e2="$e2 $(mem_kb RssAnon "$q")"; done
    echo "rss_fixed_each_kb=\"${e1# }\""
    echo "rss_anon_fixed_each_kb=\"${e2# }\""
  } >"$dir/stats.env"
  "$OUT/report" -check-fortio "$dir/fortio.json" -name "$name" \
    || die "[$name] requests failed in the fixed-rate run (see $dir/fortio.json, $dir/fortio.log, $plog)"

  if [ "$UNIFORM" != 0 ]; then
    # Same rate with fortio's -uniform: the connections' send times are spread
    # over the period instead of all connections firing together, so a
    # single-threaded proxy is not handed bursts of $CONNS requests at once.
    log "[$name] fixed rate, uniform: fortio -qps $QPS -c $CONNS -t $FIXED -uniform"
    mark "$ppids" "$BACKEND_PID"
    bounded "$FIXED" taskset -c "$CLIENT_CPU" "$FORTIO" load -qps "$QPS" -c "$CONNS" -t "$FIXED" -r 0.00001 -uniform \
      "${hdr[@]}" -json "$dir/fortio-uniform.json" "$url" >"$dir/fortio-uniform.log" 2>&1 \
      || { tail -n 20 "$dir/fortio-uniform.log" >&2; die "[$name] fortio -uniform failed (log: $dir/fortio-uniform.log)"; }
    marked uniform "$ppids" "$BACKEND_PID" >>"$dir/stats.env"
    "$OUT/report" -check-fortio "$dir/fortio-uniform.json" -name "$name" \
      || die "[$name] requests failed in the uniform fixed-rate run (see $dir/fortio-uniform.json, $plog)"
  fi

  log "[$name] max throughput: wrk -t1 -c$CONNS -d$MAXD"
  local each0=() each1=()
  for p in $ppids; do each0+=("$(cpu_ticks "$p")"); done
  mark "$ppids" "$BACKEND_PID"
  local perf_pid=""
  if [ "$PERF" != 0 ] && [ -n "$ppids" ]; then
    # Profile the proxy during the max run (perf's own overhead lowers the
    # numbers of this run: use BENCH_PERF for diagnosis, not for the report).
    taskset -c "$CLIENT_CPU" perf record -q -e cpu-clock -F 999 -g -p "$(echo $ppids | tr ' ' ',')" \
      -o "$dir/perf.data" -- sleep "$(dur_s "$MAXD")" >"$dir/perf.log" 2>&1 &
    perf_pid=$!
  fi
  bounded "$MAXD" taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"$MAXD" --latency "${hdr[@]}" "$url" >"$dir/wrk.txt" 2>&1 \
    || { cat "$dir/wrk.txt" >&2; die "[$name] wrk failed"; }
  marked max "$ppids" "$BACKEND_PID" >"$dir/max.env"
  for p in $ppids; do each1+=("$(cpu_ticks "$p")"); done
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || log "[$name] perf record failed (see $dir/perf.log)"
    perf report -i "$dir/perf.data" --children --sort symbol --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -n 120 >"$dir/perf-children.txt" || true
    perf report -i "$dir/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -n 60 >"$dir/perf-self.txt" || true
    log "[$name] profile: $dir/perf-children.txt (inclusive), $dir/perf-self.txt (self)"
  fi
  local cpu_each="" i
  for i in "${!each0[@]}"; do cpu_each="$cpu_each $(calc "(${each1[$i]} - ${each0[$i]}) / $CLK_TCK")"; done
  local rss_after=0 rss_peak=0
  if [ -n "$ppids" ]; then
    rss_after=$(mem_kb VmRSS $ppids)
    rss_peak=$(mem_kb VmHWM $ppids)
  fi
  {
    cat "$dir/max.env"
    echo "max_proxy_cpu_each_s=\"${cpu_each# }\""
    echo "proxy_processes=$(tree_pids $ppids | grep -c . || true)"
    echo "rss_idle_kb=$rss_idle"
    echo "rss_anon_idle_kb=$(cat "$dir/rss_anon_idle_kb" 2>/dev/null || echo 0)"
    echo "rss_anon_idle_each_kb=\"$(cat "$dir/rss_anon_idle_each_kb" 2>/dev/null)\""
    echo "rss_idle_each_kb=\"${rss_idle_each# }\""
    echo "rss_after_kb=$rss_after"
    echo "rss_peak_kb=$rss_peak"
  } >>"$dir/stats.env"
  "$OUT/report" -check-wrk "$dir/wrk.txt" -name "$name" \
    || die "[$name] requests failed in the max-throughput run (see $dir/wrk.txt, $plog)"
  log "[$name] $(grep -h 'Requests/sec' "$dir/wrk.txt" | tr -s ' ')"
}

# background_max DIR : the most CPU (cores) that other work used during any of
# the path's runs (fixed, uniform, max), from its stats.env.
background_max() {
  awk -F= '{ gsub(/"/, "", $2); v[$1] = $2 }
    END {
      n = split("fixed uniform max", ph, " "); worst = 0
      for (i = 1; i <= n; i++) {
        p = ph[i]; w = v[p "_wall_s"]
        if (w == "" || w <= 0) continue
        b = (v[p "_machine_busy_s"] - v[p "_proxy_cpu_s"] - v[p "_backend_cpu_s"] - v[p "_client_cpu_s"]) / w
        if (b > worst) worst = b
      }
      printf "%.2f", worst
    }' "$1/stats.env"
}

# measure ... : measure_once, repeated (up to BENCH_NOISY_RETRIES more times)
# while other work on the machine used more than BENCH_NOISY_MAX cores during
# any of the path's runs. The last attempt's numbers are kept either way.
measure() {
  local name="$1" attempt=1 bg
  while :; do
    ATTEMPT=$attempt measure_once "$@"
    bg=$(background_max "$OUT/$name")
    echo "attempts=$attempt" >>"$OUT/$name/stats.env"
    if awk -v b="$bg" -v m="$NOISY_MAX" 'BEGIN { exit !(b <= m) }'; then
      return 0
    fi
    if [ "$attempt" -gt "$NOISY_RETRIES" ]; then
      log "[$name] WARNING: other work used up to $bg cores during this path's runs; keeping these numbers (see the report's background column)"
      return 0
    fi
    attempt=$((attempt + 1))
    log "[$name] other work used up to $bg cores during the runs (> $NOISY_MAX); measuring the path again (attempt $attempt)"
  done
}

# max_only NAME LABEL CONNS URL "PROXY_PIDS" : one max-throughput run (wrk,
# CONNS connections) into $OUT/NAME/LABEL, for the matrix of connection
# counts and body sizes.
max_only() {
  local name="$1" label="$2" conns="$3" url="$4" ppids="$5"
  local dir="$OUT/$name/$label"
  mkdir -p "$dir"
  wait_quiet "$name/$label"
  log "[$name/$label] max throughput: wrk -t1 -c$conns -d$MAXD $url"
  mark "$ppids" "$BACKEND_PID"
  bounded "$MAXD" taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"$MAXD" --latency "$url" >"$dir/wrk.txt" 2>&1 \
    || { cat "$dir/wrk.txt" >&2; die "[$name/$label] wrk failed"; }
  {
    marked max "$ppids" "$BACKEND_PID"
    echo "conns=$conns"
  } >"$dir/stats.env"
  "$OUT/report" -check-wrk "$dir/wrk.txt" -name "$name/$label" \
    || die "[$name/$label] requests failed (see $dir/wrk.txt)"
}

# matrix NAME BASE_URL "PROXY_PIDS" : the connection-count and body-size
# runs of a proxy (BENCH_MATRIX).
matrix() {
  [ "$MATRIX" = 0 ] && return 0
  max_only "$1" c1 1 "$2/" "$3"
  max_only "$1" c256 256 "$2/" "$3"
  max_only "$1" b1k "$CONNS" "$2/1k" "$3"
  max_only "$1" b64k "$CONNS" "$2/64k" "$3"
}

# fortio_max DIR MODE TARGET "PROXY_PIDS" : max throughput with fortio
# (-qps 0) speaking h2c (MODE h2c) or gRPC ping (MODE grpc) to TARGET, into
# $OUT/DIR/MODE.json and MODE.env; the upstream is fortio's server.
fortio_max() {
  local name="$1" mode="$2" target="$3" ppids="$4"
  local dir="$OUT/$name"
  mkdir -p "$dir"
  local -a args=(-h2)
  case "$mode" in grpc*) args=(-grpc -ping) ;; esac
  wait_quiet "$name/$mode"
  bounded 2s taskset -c "$CLIENT_CPU" "$FORTIO" load "${args[@]}" -qps 0 -c "$CONNS" -t 2s "$target" >"$dir/$mode-warmup.log" 2>&1 \
    || { tail -n 20 "$dir/$mode-warmup.log" >&2; die "[$name/$mode] warm-up failed"; }
  log "[$name/$mode] max throughput: fortio load ${args[*]} -qps 0 -c $CONNS -t $MAXD $target"
  mark "$ppids" "$FSRV_PID"
  bounded "$MAXD" taskset -c "$CLIENT_CPU" "$FORTIO" load "${args[@]}" -qps 0 -c "$CONNS" -t "$MAXD" -json "$dir/$mode.json" "$target" \
    >"$dir/$mode.log" 2>&1 || { tail -n 20 "$dir/$mode.log" >&2; die "[$name/$mode] fortio failed"; }
  marked max "$ppids" "$FSRV_PID" >"$dir/$mode.env"
  "$OUT/report" -check-fortio "$dir/$mode.json" -name "$name/$mode" \
    || die "[$name/$mode] requests failed (see $dir/$mode.json)"
}

# syscalls NAME URL "PIDS" [HOST] : system calls per request of the proxy
# processes, counted by `strace -c -f` during a separate run of 20000
# requests (strace slows the proxy down; only the counts are used).
syscalls() {
  [ "$SYSCALLS" = 0 ] && return 0
  local name="$1" url="$2" pids="$3" host="${4:-}" dir="$OUT/$1/syscalls" p
  local -a hdr=() st=()
  [ -n "$host" ] && hdr=(-H "Host: $host")
  mkdir -p "$dir"
  log "[$name] counting system calls per request (strace -c, 20000 requests)"
  for p in $(tree_pids $pids); do
    taskset -c "$CLIENT_CPU" strace -c -f -p "$p" -o "$dir/strace.$p.txt" >/dev/null 2>&1 &
    st+=($!)
  done
  sleep 1
  bounded 60s taskset -c "$CLIENT_CPU" "$FORTIO" load -qps 0 -c "$CONNS" -n 20000 "${hdr[@]}" -json "$dir/fortio.json" "$url" >"$dir/fortio.log" 2>&1 || true
  sleep 0.5
  for p in "${st[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${st[@]}"; do wait "$p" 2>/dev/null || true; done
  cat "$dir"/strace.*.txt >"$dir/strace.txt" 2>/dev/null || true
}

# profile NAME URL PID : a separate wrk run with `perf record` on the proxy,
# summarised in the report (BENCH_PROFILE); its numbers are not reported.
profile() {
  [ "$PROFILE" = 0 ] && return 0
  local dir="$OUT/$1/profile"
  mkdir -p "$dir"
  log "[$1] profile: perf record during a separate wrk run"
  taskset -c "$CLIENT_CPU" perf record -q -e cpu-clock -F 999 -g -p "$3" -o "$dir/perf.data" -- sleep 5 >"$dir/perf.log" 2>&1 &
  local perf_pid=$!
  bounded 5s taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d5s "$2" >"$dir/wrk.txt" 2>&1 || true
  wait "$perf_pid" || { log "[$1] perf record failed (see $dir/perf.log)"; return 0; }
  perf report -i "$dir/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' >"$dir/perf-self.txt" || true
  rm -f "$dir/perf.data"
}

# ---------------------------------------------------------------- direct
if want direct; then
  measure direct "http://127.0.0.1:$P_BACKEND/" "" "" "$TMP/backend.log"
fi

# ---------------------------------------------------------------- fortio server (h2c, gRPC)
FSRV_PID=""
if want h2c || want grpc; then
  log "starting fortio server: http/h2c 127.0.0.1:$P_FHTTP, grpc 127.0.0.1:$P_FGRPC (cpus $BACKEND_CPU)"
  start FSRV_PID "$BACKEND_CPU" "$TMP/fortio-server.log" "$FORTIO" server -http-port "127.0.0.1:$P_FHTTP" \
    -grpc-port "127.0.0.1:$P_FGRPC" -redirect-port disabled -echo-server-default-params "size=$BODY_SIZE"
  wait_port "$P_FHTTP" "$FSRV_PID" "fortio server" "$TMP/fortio-server.log"
  wait_port "$P_FGRPC" "$FSRV_PID" "fortio server" "$TMP/fortio-server.log"
  want h2c && fortio_max h2c h2c "http://127.0.0.1:$P_FHTTP/echo" ""
  want grpc && fortio_max grpc grpc "127.0.0.1:$P_FGRPC" ""
fi

# ---------------------------------------------------------------- nginx
if want nginx; then
  NGX="$TMP/nginx"
  mkdir -p "$NGX/logs"
  cat >"$NGX/nginx.conf" <<EOF
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $NGX/client_body;
  proxy_temp_path $NGX/proxy;
  fastcgi_temp_path $NGX/fastcgi;
  uwsgi_temp_path $NGX/uwsgi;
  scgi_temp_path $NGX/scgi;
  upstream backend {
    server 127.0.0.1:$P_BACKEND;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  cp "$NGX/nginx.conf" "$OUT/nginx.conf"
  log "starting nginx on 127.0.0.1:$P_NGINX (cpu $PROXY_CPU)"
  start NGINX_PID "$PROXY_CPU" "$TMP/nginx.log" nginx -p "$NGX" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" -g 'daemon off;'
  wait_port "$P_NGINX" "$NGINX_PID" nginx "$TMP/nginx.log"
  measure nginx "http://127.0.0.1:$P_NGINX/" "" "$NGINX_PID" "$NGX/logs/error.log"
  matrix nginx "http://127.0.0.1:$P_NGINX" "$NGINX_PID"
  syscalls nginx "http://127.0.0.1:$P_NGINX/" "$NGINX_PID"
  stop "$NGINX_PID"
fi

# ---------------------------------------------------------------- haproxy
if want haproxy; then
  HAP="$TMP/haproxy"
  mkdir -p "$HAP"
  # One thread, as nginx has one worker; upstream connections reused.
  cat >"$HAP/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend bench
  bind 127.0.0.1:$P_HAPROXY
  default_backend backend
backend backend
  server backend 127.0.0.1:$P_BACKEND
EOF
  cp "$HAP/haproxy.cfg" "$OUT/haproxy.cfg"
  log "starting haproxy on 127.0.0.1:$P_HAPROXY (cpu $PROXY_CPU)"
  start HAP_PID "$PROXY_CPU" "$TMP/haproxy.log" haproxy -db -f "$HAP/haproxy.cfg"
  wait_port "$P_HAPROXY" "$HAP_PID" haproxy "$TMP/haproxy.log"
  measure haproxy "http://127.0.0.1:$P_HAPROXY/" "" "$HAP_PID" "$TMP/haproxy.log"
  matrix haproxy "http://127.0.0.1:$P_HAPROXY" "$HAP_PID"
  syscalls haproxy "http://127.0.0.1:$P_HAPROXY/" "$HAP_PID"
  stop "$HAP_PID"
fi

# ---------------------------------------------------------------- httputil.ReverseProxy
if want reverseproxy; then
  log "starting reverseproxy (httputil.ReverseProxy) on 127.0.0.1:$P_RP (cpu $PROXY_CPU)"
  start RP_PID "$PROXY_CPU" "$TMP/reverseproxy.log" "$OUT/bin-reverseproxy" -addr "127.0.0.1:$P_RP" -upstream "127.0.0.1:$P_BACKEND"
  wait_port "$P_RP" "$RP_PID" reverseproxy "$TMP/reverseproxy.log"
  measure reverseproxy "http://127.0.0.1:$P_RP/" "" "$RP_PID" "$TMP/reverseproxy.log"
  matrix reverseproxy "http://127.0.0.1:$P_RP" "$RP_PID"
  syscalls reverseproxy "http://127.0.0.1:$P_RP/" "$RP_PID"
  stop "$RP_PID"
fi

# ---------------------------------------------------------------- weft
if $NEED_WEFT; then
  log "starting weft control plane (api :$P_API, xds :$P_XDS, cpu $CLIENT_CPU)"
  start CP_PID "$CLIENT_CPU" "$TMP/controlplane.log" "$WEFT" controlplane --state-dir "$TMP/state" \
    --api-addr "127.0.0.1:$P_API" --xds-addr "127.0.0.1:$P_XDS"
  wait_port "$P_API" "$CP_PID" "control plane" "$TMP/controlplane.log" 30
  wait_port "$P_XDS" "$CP_PID" "control plane" "$TMP/controlplane.log" 30

  # write_config FILE WORKLOAD_PORT [MTLS] : the routing config shared by the
  # weft paths. With MTLS (DISABLE or STRICT) the backend is a sidecar
  # (label security.istio.io/tlsMode: istio) and a mesh-wide
  # PeerAuthentication sets the mode.
  write_config() {
    cat >"$1" <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bench-gateway
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bench
  namespace: default
spec:
  hosts:
  - "*"
  gateways:
  - bench-gateway
  http:
  - match:
    - uri:
        prefix: /
    route:
    - destination:
        host: backend
        port:
          number: 8080
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: backend
  namespace: default
spec:
  hosts:
  - backend.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 8080
    name: http
    protocol: HTTP
  resolution: STATIC
  workloadSelector:
    labels:
      app: backend
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: backend-1
  namespace: default
spec:
  address: 127.0.0.1
  ports:
    http: $2
  labels:
    app: backend
EOF
    if [ -n "$FSRV_PID" ] && [ -z "${3:-}" ]; then
      # h2c (gateway port 81) and gRPC (port 82) to fortio's server.
      cat >>"$1" <<EOF
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bench-h2c
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 81
      name: http2
      protocol: HTTP2
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bench-grpc
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 82
      name: grpc
      protocol: GRPC
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: fortio-h2c
  namespace: default
spec:
  hosts:
  - "*"
  gateways:
  - bench-h2c
  http:
  - route:
    - destination:
        host: fortio
        port:
          number: 8080
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: fortio-grpc
  namespace: default
spec:
  hosts:
  - "*"
  gateways:
  - bench-grpc
  http:
  - route:
    - destination:
        host: fortio
        port:
          number: 8079
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: fortio
  namespace: default
spec:
  hosts:
  - fortio.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 8080
    name: http
    protocol: HTTP
  - number: 8079
    name: grpc
    protocol: GRPC
  resolution: STATIC
  workloadSelector:
    labels:
      app: fortio
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: fortio-1
  namespace: default
spec:
  address: 127.0.0.1
  ports:
    http: $P_FHTTP
    grpc: $P_FGRPC
  labels:
    app: fortio
EOF
    fi
    if [ -n "${3:-}" ]; then
      sed -i 's/^    app: backend$/    app: backend\n    security.istio.io\/tlsMode: istio/' "$1"
      cat >>"$1" <<EOF
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: $3
EOF
    fi
  }

  apply() { # FILE
    "$WEFT" apply --server "http://127.0.0.1:$P_API" --token-file "$TMP/state/api-token" -f "$1" >"$1.out" 2>&1 \
      || { cat "$1.out" >&2; die "weft apply -f $1 failed"; }
    cp "$1" "$OUT/"
  }

  # gateway NAME [FLAGS...] : starts a weft gateway as GW_PID.
  gateway() {
    local name="$1"
    shift
    log "starting weft gateway ($name) on 127.0.0.1:$P_GW (cpu $PROXY_CPU)"
    local -a envp=()
    if [ "$name" = gateway ] && [ -n "${BENCH_CPU_PROFILE:-}" ]; then envp=(env "WEFT_CPU_PROFILE=$BENCH_CPU_PROFILE"); fi
    start GW_PID "$PROXY_CPU" "$TMP/$name.log" "${envp[@]}" "$WEFT" proxy gateway --xds "127.0.0.1:$P_XDS" --server "http://127.0.0.1:$P_API" --token-file "$TMP/state/api-token" \
      --name ingressgateway --namespace istio-system --labels istio=ingressgateway \
      --port-map "80=127.0.0.1:$P_GW,81=127.0.0.1:$P_GW_H2C,82=127.0.0.1:$P_GW_GRPC" --admin "127.0.0.1:$P_GWADMIN" "$@"
    wait_200 "weft gateway /ready" 30 "$GW_PID" "$TMP/$name.log" "http://127.0.0.1:$P_GWADMIN/ready"
  }
  if want weft-gateway || want weft-gateway-notel || want h2c || want grpc; then
    write_config "$TMP/gateway.yaml" "$P_BACKEND"
    apply "$TMP/gateway.yaml"
  fi
  if want weft-gateway || want h2c || want grpc; then
    # Telemetry on, as deployed: metrics, 1% trace sampling, reports to the
    # control plane every second.
    gateway gateway --telemetry "http://127.0.0.1:$P_API"
    if want weft-gateway; then
      measure weft-gateway "http://127.0.0.1:$P_GW/" "" "$GW_PID" "$TMP/gateway.log"
      matrix weft-gateway "http://127.0.0.1:$P_GW" "$GW_PID"
    fi
    if want h2c; then
      wait_200 "weft gateway h2c route" 30 "$GW_PID" "$TMP/gateway.log" "http://127.0.0.1:$P_GW_H2C/echo" --http2-prior-knowledge
      fortio_max h2c h2c-weft "http://127.0.0.1:$P_GW_H2C/echo" "$GW_PID"
    fi
    want grpc && fortio_max grpc grpc-weft "127.0.0.1:$P_GW_GRPC" "$GW_PID"
    want weft-gateway && profile weft-gateway "http://127.0.0.1:$P_GW/" "$GW_PID"
    want weft-gateway && syscalls weft-gateway "http://127.0.0.1:$P_GW/" "$GW_PID"
    stop "$GW_PID"
  fi
  if want weft-gateway-notel; then
    gateway gateway-notel --no-telemetry
    measure weft-gateway-notel "http://127.0.0.1:$P_GW/" "" "$GW_PID" "$TMP/gateway-notel.log"
    stop "$GW_PID"
  fi

  if want weft-mesh || want weft-mesh-mtls; then
    first=DISABLE
    want weft-mesh || first=STRICT
    write_config "$TMP/mesh.yaml" "$P_IN" "$first"
    apply "$TMP/mesh.yaml"
    log "starting weft sidecars: client outbound :$P_OUT, backend inbound :$P_IN (both cpu $PROXY_CPU)"
    start SA_PID "$PROXY_CPU" "$TMP/sidecar-client.log" "$WEFT" proxy sidecar --xds "127.0.0.1:$P_XDS" --server "http://127.0.0.1:$P_API" --token-file "$TMP/state/api-token" \
      --name client-1 --namespace default --workload client --labels app=client --telemetry "http://127.0.0.1:$P_API" \
      --outbound "127.0.0.1:$P_OUT" --admin "127.0.0.1:$P_CADMIN"
    start SB_PID "$PROXY_CPU" "$TMP/sidecar-backend.log" "$WEFT" proxy sidecar --xds "127.0.0.1:$P_XDS" --server "http://127.0.0.1:$P_API" --token-file "$TMP/state/api-token" \
      --name backend-1 --namespace default --workload backend --labels app=backend --telemetry "http://127.0.0.1:$P_API" \
      --inbound "127.0.0.1:$P_IN" --app "127.0.0.1:$P_BACKEND" --admin "127.0.0.1:$P_BADMIN"
    wait_200 "weft sidecar client-1 /ready" 30 "$SA_PID" "$TMP/sidecar-client.log" "http://127.0.0.1:$P_CADMIN/ready"
    wait_200 "weft sidecar backend-1 /ready" 30 "$SB_PID" "$TMP/sidecar-backend.log" "http://127.0.0.1:$P_BADMIN/ready"
    # mesh_mode MODE : waits until a request through both sidecars is
    # reported by the backend's sidecar with the connection security MODE
    # implies, so each path measures what its name says.
    mesh_mode() {
      local want=none i
      [ "$1" = STRICT ] && want=mutual_tls
      for i in $(seq 1 100); do
        curl -s -o /dev/null -H "Host: backend:8080" "http://127.0.0.1:$P_OUT/" || true
        if curl -s "http://127.0.0.1:$P_BADMIN/stats/prometheus" \
          | grep '^istio_requests_total{' | grep 'reporter="destination"' | grep -q "connection_security_policy=\"$want\""; then
          return 0
        fi
        sleep 0.1
      done
      die "mesh path: no request reported with connection_security_policy=$want after applying $1"
    }
    if want weft-mesh; then
      mesh_mode DISABLE
      measure weft-mesh "http://127.0.0.1:$P_OUT/" "backend:8080" "$SA_PID $SB_PID" "$TMP/sidecar-client.log"
    fi
    if want weft-mesh-mtls; then
      write_config "$TMP/mesh-mtls.yaml" "$P_IN" STRICT
      apply "$TMP/mesh-mtls.yaml"
      mesh_mode STRICT
      measure weft-mesh-mtls "http://127.0.0.1:$P_OUT/" "backend:8080" "$SA_PID $SB_PID" "$TMP/sidecar-client.log"
    fi
    stop "$SA_PID" "$SB_PID"
  fi
  stop "$CP_PID"
fi

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.env"

# ---------------------------------------------------------------- report
"$OUT/report" -in "$OUT" -o "$REPORT"
log "report written to $REPORT"
