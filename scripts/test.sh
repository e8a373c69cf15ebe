#!/usr/bin/env bash
# Runs every test: vet, unit tests, fuzz seeds, the end-to-end scenarios
# (which build weft and start real processes on 127.0.0.1), and the
# Kubernetes-mode tests against a real single-node cluster (scripts/k8s).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"

# The observability e2e tests drive a real prometheus and a headless
# chromium (Debian packages). Install them where we may (root, or CI);
# otherwise say what is missing: those tests skip outside CI.
if [ "$(id -u)" = 0 ] || [ "${CI:-}" = true ]; then
  scripts/install-test-deps.sh
elif ! [ -x /usr/bin/prometheus ] || ! [ -x /usr/bin/chromium ]; then
  echo "test.sh: the observability e2e tests need prometheus and chromium; as root run scripts/install-test-deps.sh" >&2
  echo "  (apt-get install -y --no-install-recommends prometheus chromium); without them those tests skip" >&2
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt: not formatted:"; echo "$unformatted"; exit 1
fi
go vet ./...

# The Kubernetes tests need a cluster: as root (CI runs as root) build its
# binaries once (cached in ~/.cache/weft-k8s) and start it, unless one of
# ours already runs, which is reused and left running. The tests read
# WEFT_KUBECONFIG; without it they skip, except under CI=true, where they fail.
if [ -z "${WEFT_KUBECONFIG:-}" ] && [ "$(id -u)" = 0 ] && [ "${WEFT_SKIP_KUBE:-}" != 1 ]; then
  scripts/k8s/cluster.sh build >/dev/null
  if ! scripts/k8s/cluster.sh running; then
    # A cluster of an earlier run whose processes are gone (the machine or
    # session stopped) leaves addresses, rules and mounts: clear them first.
    scripts/k8s/cluster.sh down >/dev/null 2>&1 || true
    scripts/k8s/cluster.sh up
    # Stopping it is cleanup: a failure there is reported, not the run's result.
    trap 'scripts/k8s/cluster.sh down || echo "test.sh: scripts/k8s/cluster.sh down failed" >&2' EXIT
  fi
  eval "export $(scripts/k8s/cluster.sh env | grep ^KUBECONFIG= | sed 's/^KUBECONFIG=/WEFT_KUBECONFIG=/')"
  # Where kubectl is, and the cluster the tests import images into
  # (test/kube runs scripts/k8s/cluster.sh import).
  eval "export $(scripts/k8s/cluster.sh env | grep -E '^WEFT_K8S_(BIN|WORKDIR)=' | tr '\n' ' ')"
fi

# test/kube installs weft cluster-wide (istio-system, webhooks for every
# namespace), which other packages' cluster tests must not see: it runs
# after them, on its own (and kube/kubetest's lock file keeps other test
# runs on this machine's cluster out of its way).
pkgs=$(go list ./... | grep -v '/test/kube$')
go test -count=1 -timeout 60m "$@" $pkgs
if [ -d test/kube ]; then
  go test -count=1 -timeout 30m "$@" ./test/kube
fi
