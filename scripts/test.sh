#!/usr/bin/env bash
# Runs every test of both modules: Apogee's with the race detector, then the interop tests, which
# build the apogee binary with -race and drive it with the official RocketMQ Go client. The interop
# test binary itself runs without -race because the official client has data races of its own.
# Extra arguments go to every `go test`, e.g. -run or -count.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race "$@" ./...
(cd interop && go test "$@" ./...)
