#!/usr/bin/env bash
# Measures the control plane under the apply that issue 14 found quadratic:
# N VirtualServices (default 10000) that all route host "reviews", applied
# in one request. Starts `weft controlplane` on loopback (ports chosen by
# the kernel) in a temporary state directory, then reports for the first
# apply, an unchanged re-apply and GET /api/v1/analyze: the HTTP status,
# the time, the response size, and the control plane's resident memory
# (VmRSS after each step, VmHWM the peak) against its RSS before the first
# apply. Prints a Markdown table.
#
#   bench/analysis.sh               # N=10000, weft built from this tree
#   N=2500 WEFT=/path/to/weft bench/analysis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

N=${N:-10000}
work=$(mktemp -d)
cp_pid=
cleanup() {
  if [ -n "$cp_pid" ]; then kill "$cp_pid" 2>/dev/null || true; wait "$cp_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

WEFT=${WEFT:-}
if [ -z "$WEFT" ]; then
  WEFT=$work/weft
  go build -o "$WEFT" ./cmd/weft
fi

"$WEFT" controlplane --state-dir "$work/state" --api-addr 127.0.0.1:0 --xds-addr 127.0.0.1:0 \
  --log-level error >"$work/cp.log" 2>&1 &
cp_pid=$!
for _ in $(seq 100); do
  [ -s "$work/state/endpoints.json" ] && break
  kill -0 "$cp_pid" 2>/dev/null || { cat "$work/cp.log" >&2; exit 1; }
  sleep 0.1
done
api=$(sed -n 's/.*"api": *"\([^"]*\)".*/\1/p' "$work/state/endpoints.json")
[ -n "$api" ] || { echo "analysis.sh: no API address in endpoints.json" >&2; exit 1; }
token=$(cat "$work/state/api-token")

# The apply body: one source holding N documents, JSON-escaped by hand (the
# YAML has no quotes or backslashes, only newlines to escape).
awk -v n="$N" 'BEGIN {
  printf "{\"sources\":[{\"name\":\"many.yaml\",\"content\":\""
  for (i = 0; i < n; i++)
    printf "---\\napiVersion: networking.istio.io/v1\\nkind: VirtualService\\nmetadata:\\n  name: vs-%05d\\nspec:\\n  hosts: [reviews]\\n  http:\\n  - route:\\n    - destination:\\n        host: reviews\\n", i
  printf "\"}]}"
}' >"$work/body.json"

kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$cp_pid/status"; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
rss0=$(kb VmRSS)

echo "| step | status | time s | response MB | RSS after − before MB | peak RSS − before MB |"
echo "|---|---|---|---|---|---|"
step() {
  local name=$1 method=$2 path=$3 out
  if [ "$method" = POST ]; then
    out=$(curl -s -o /dev/null -w '%{http_code} %{time_total} %{size_download}' --max-time 600 \
      -H "Authorization: Bearer $token" -H 'Content-Type: application/json' --data-binary @"$work/body.json" "http://$api$path")
  else
    out=$(curl -s -o /dev/null -w '%{http_code} %{time_total} %{size_download}' --max-time 600 "http://$api$path")
  fi
  read -r code secs bytes <<<"$out"
  printf '| %s | %s | %.2f | %.2f | %s | %s |\n' "$name" "$code" "$secs" "$(awk -v b="$bytes" 'BEGIN {print b / 1e6}')" \
    "$(mb $(( $(kb VmRSS) - rss0 )))" "$(mb $(( $(kb VmHWM) - rss0 )))"
}
step "apply $N VirtualServices (hosts [reviews])" POST /api/v1/apply
step "apply them again (unchanged)" POST /api/v1/apply
step "GET /api/v1/analyze" GET /api/v1/analyze
echo
echo "control plane RSS before the first apply: $(mb "$rss0") MB; weft: ${WEFT_LABEL:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo +changes)}"
