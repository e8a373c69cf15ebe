#!/usr/bin/env bash
# Runs every test: vet, unit tests, fuzz seeds and the end-to-end scenarios
# (which build weft and start real processes on 127.0.0.1).
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
go test -count=1 -timeout 40m "$@" ./...
