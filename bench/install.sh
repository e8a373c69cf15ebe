#!/usr/bin/env bash
# Installs the tools the benchmark harness needs. Idempotent: re-running it
# only installs what is missing. Tools go outside the repo:
#   Debian packages: nginx-light (or nginx), haproxy, wrk, util-linux (taskset),
#                    curl, procps (pgrep), strace (system calls per request),
#                    linux-perf (profile summary; optional, skipped if missing)
#   fortio v1.66.0 into ${BENCH_GOBIN:-$HOME/go/bin}
set -euo pipefail

FORTIO_VERSION=v1.66.0
GOBIN_DIR="${BENCH_GOBIN:-$HOME/go/bin}"

log() { printf '[install] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    log "not root and no sudo: install nginx, wrk, util-linux yourself"; fi
fi

need_apt=()
command -v nginx   >/dev/null 2>&1 || need_apt+=(nginx)
command -v wrk     >/dev/null 2>&1 || need_apt+=(wrk)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
command -v curl    >/dev/null 2>&1 || need_apt+=(curl)
command -v pgrep   >/dev/null 2>&1 || need_apt+=(procps)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)
command -v strace  >/dev/null 2>&1 || need_apt+=(strace)
command -v perf    >/dev/null 2>&1 || need_apt+=(linux-perf)

if [ "${#need_apt[@]}" -gt 0 ]; then
  log "apt-get update"
  $SUDO apt-get update -qq
  for p in "${need_apt[@]}"; do
    if [ "$p" = nginx ]; then
      # nginx-light is smaller; fall back to nginx where it is not packaged.
      if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1; then
        log "nginx-light not available, installing nginx"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nginx >/dev/null
      fi
    elif [ "$p" = linux-perf ]; then
      # Optional: the report's profile summary; not every kernel has it.
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends linux-perf >/dev/null 2>&1 \
        || log "linux-perf not installed: the report will have no profile summary"
    else
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null
    fi
  done
  # The Debian package may start a system nginx on :80; the harness runs its
  # own instance, so stop the service if it was started (best effort).
  if command -v service >/dev/null 2>&1; then
    $SUDO service nginx stop >/dev/null 2>&1 || true
    $SUDO service haproxy stop >/dev/null 2>&1 || true
  fi
fi

if [ -x "$GOBIN_DIR/fortio" ] && "$GOBIN_DIR/fortio" version 2>/dev/null | grep -q "${FORTIO_VERSION#v}"; then
  :
else
  log "go install fortio.org/fortio@$FORTIO_VERSION -> $GOBIN_DIR"
  mkdir -p "$GOBIN_DIR"
  # Build outside any module so the repo's go.mod/go.sum are untouched.
  (cd / && GOBIN="$GOBIN_DIR" GOFLAGS=-mod=mod go install "fortio.org/fortio@$FORTIO_VERSION")
fi

for t in nginx haproxy wrk taskset curl pgrep strace; do
  command -v "$t" >/dev/null 2>&1 || { log "missing after install: $t"; exit 1; }
done
[ -x "$GOBIN_DIR/fortio" ] || { log "missing after install: $GOBIN_DIR/fortio"; exit 1; }
log "ok: nginx=$(command -v nginx) haproxy=$(command -v haproxy) wrk=$(command -v wrk) taskset=$(command -v taskset) fortio=$GOBIN_DIR/fortio"
