#!/usr/bin/env bash
# Runs every fuzz target of the main module for a while each (default 10s): scripts/fuzz.sh [DURATION]
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline exceeded" when -fuzztime
# runs out while a worker is mid-input (golang/go#75804, fixed in Go 1.27). That failure writes no
# failing input. Such a run is repeated once; a run that writes an input, or fails twice, fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# run_target PKG TARGET: 0 on success, 1 on a real failure, 2 on the coordinator's deadline race.
run_target() {
  local pkg=$1 target=$2 dir before after
  dir="$(go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$target"
  before=$(ls "$dir" 2>/dev/null | wc -l)
  if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
    return 0
  fi
  after=$(ls "$dir" 2>/dev/null | wc -l)
  if [[ $after == "$before" ]] && grep -q '^    context deadline exceeded$' "$log" &&
    ! grep -qE 'Failing input|panic:' "$log"; then
    return 2
  fi
  return 1
}

for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($fuzztime)"
    rc=0
    run_target "$pkg" "$target" || rc=$?
    if [[ $rc == 2 ]]; then
      echo "  stopped by the fuzz coordinator's deadline race (golang/go#75804), no input written; running again"
      rc=0
      run_target "$pkg" "$target" || rc=$?
    fi
    if [[ $rc != 0 ]]; then
      cat "$log"
      echo "fuzz target $target of $pkg failed; the failing input is in that package's testdata/fuzz/$target"
      exit 1
    fi
  done
done
