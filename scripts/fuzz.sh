#!/usr/bin/env bash
# Runs every fuzz target of the main module for a while each (default 10s): scripts/fuzz.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/apogee-fuzz.log 2>&1 || {
      cat /tmp/apogee-fuzz.log
      echo "fuzz target $target of $pkg failed; the failing input is in that package's testdata/fuzz/$target"
      exit 1
    }
  done
done
