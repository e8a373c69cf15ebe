#!/usr/bin/env bash
# Makes cmd/weft/default.pgo, the profile `go build` uses for profile-guided
# optimisation of the weft binary (Go's -pgo=auto), from a representative
# load: the weft gateway under bench/run.sh's gateway runs (fixed rate,
# uniform, max throughput, 1/16/256 connections, 64 B/1 KiB/64 KiB bodies),
# with telemetry on as deployed.
#
#   bench/pgo.sh            # about 3 minutes; then commit cmd/weft/default.pgo
#
# The gain is measured with bench/callgrind.sh (CALLGRIND_PGO=off against
# the profile) and in the harness; see docs/BENCHMARKS.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$(mktemp -d /tmp/weft-pgo.XXXXXX)"
# Profile a binary built without PGO, so the profile is not shaped by an
# earlier one.
go build -pgo=off -tags weftprofile -o "$OUT/weft" ./cmd/weft
BENCH_PATHS=weft-gateway BENCH_WEFT="$OUT/weft" BENCH_CPU_PROFILE="$OUT/gateway.pprof" \
  BENCH_FIXED="${PGO_FIXED:-10s}" BENCH_MAX="${PGO_MAX:-10s}" BENCH_QUIET_WAIT=10 BENCH_NOISY_RETRIES=0 \
  BENCH_PROFILE=0 BENCH_OUT="$OUT/bench" bench/run.sh
[ -s "$OUT/gateway.pprof" ] || { echo "pgo.sh: no profile written" >&2; exit 1; }
cp "$OUT/gateway.pprof" cmd/weft/default.pgo
echo "pgo.sh: wrote cmd/weft/default.pgo ($(wc -c <cmd/weft/default.pgo) bytes); raw results in $OUT" >&2
