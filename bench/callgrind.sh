#!/usr/bin/env bash
# Instructions per request of Go benchmarks, counted by valgrind's callgrind:
# repeatable on a noisy, shared machine where wall-clock time is not.
#
#   bench/callgrind.sh [PKG] [BENCH_REGEXP...]
#   bench/callgrind.sh ./proxy/runtime 'BenchmarkDirect$' 'BenchmarkProxyHop$'
#
# Each benchmark runs twice under callgrind, with N and 2N iterations; the
# difference divided by N is the instructions of one iteration, without the
# process's start-up and the benchmark's set-up. The hop's own cost is the
# difference between a proxied benchmark and BenchmarkDirect (same client
# and upstream). Needs valgrind (apt-get install valgrind).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PKG="${1:-./proxy/runtime}"
shift || true
[ $# -gt 0 ] || set -- 'BenchmarkDirect$' 'BenchmarkProxyHop$'
N="${CALLGRIND_N:-2000}"
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
TMP="$(mktemp -d /tmp/weft-callgrind.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
# CALLGRIND_PGO: a profile for -pgo (default: off), to measure PGO's gain.
go test -c -pgo="${CALLGRIND_PGO:-off}" -o "$TMP/bench.test" "$PKG"
ir() { # BENCH ITERATIONS
  # Async preemption signals trip callgrind; the scheduler still preempts
  # at function calls. One P: no idle Ms spinning for work, whose
  # instructions would depend on timing.
  GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
    "$TMP/bench.test" -test.run '^$' -test.bench "$1" -test.benchtime="${2}x" -test.count=1 >"$TMP/log" 2>&1 \
    || { tail -n 20 "$TMP/log" >&2; exit 1; }
  awk '/^summary:/ {print $2}' "$TMP/cg.out"
}
for b in "$@"; do
  a=$(ir "$b" "$N")
  c=$(ir "$b" $((2 * N)))
  printf '%s\t%d instructions/op\n' "$b" $(( (c - a) / N ))
done
