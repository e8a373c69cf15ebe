#!/usr/bin/env bash
# Runs every test: vet, unit tests, fuzz seeds and the end-to-end scenarios
# (which build weft and start real processes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt: not formatted:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -count=1 -timeout 40m "$@" ./...
