#!/usr/bin/env bash
# Installs the Debian packages the observability end-to-end tests drive:
# prometheus (/usr/bin/prometheus) and chromium (/usr/bin/chromium); and
# iproute2 (ip), with which the transparent-capture tests make their
# network namespaces.
# Idempotent: does nothing when both are present. Needs root (apt-get).
#
# The tests start their own prometheus on a random loopback port; the
# package's system service is kept from starting (policy-rc.d during the
# install, then stopped and disabled if it started anyway), so nothing of
# Debian's holds :9090 or writes to /var/lib/prometheus behind the tests.
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing ${missing[*]}; install as root with:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends prometheus chromium" >&2
  exit 1
fi

echo "install-test-deps: installing ${missing[*]}"
# Keep the package's service from starting (invoke-rc.d honours policy-rc.d).
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# If a service manager started prometheus anyway, stop it and keep it off.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi

for b in /usr/bin/prometheus /usr/bin/chromium; do
  if [ ! -x "$b" ]; then
    echo "install-test-deps: $b missing after install" >&2
    exit 1
  fi
done
if ! command -v ip >/dev/null 2>&1; then
  echo "install-test-deps: ip (iproute2) missing after install" >&2
  exit 1
fi
echo "install-test-deps: $(/usr/bin/prometheus --version 2>&1 | head -1)"
echo "install-test-deps: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
