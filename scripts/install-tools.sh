#!/usr/bin/env bash
# Installs the project's pinned tools into ./bin. templ is not here: it is
# pinned in go.mod and runs as `go tool templ`.
set -euo pipefail
cd "$(dirname "$0")/.."
GOBIN="$PWD/bin" go install github.com/go-task/task/v3/cmd/task@v3.54.0
echo "installed: bin/task"
