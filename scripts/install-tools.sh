#!/usr/bin/env bash
# Installs the project's pinned tools into ./bin: all of them, or those
# named (./scripts/install-tools.sh staticcheck). templ is not here: it is
# pinned in go.mod and runs as `go tool templ`. The others stay out of
# go.mod on purpose: `go get -tool` would add their dependencies (task's are
# about 130) to the module's requirements.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A tools=(
  [task]=github.com/go-task/task/v3/cmd/task@v3.54.0
  [staticcheck]=honnef.co/go/tools/cmd/staticcheck@v0.8.2
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(task staticcheck)
for name in "${names[@]}"; do
  pkg=${tools[$name]:-}
  if [ -z "$pkg" ]; then
    echo "install-tools: unknown tool $name (known: ${!tools[*]})" >&2
    exit 1
  fi
  GOBIN="$PWD/bin" go install "$pkg"
  echo "installed: bin/$name ($pkg)"
done
