#!/usr/bin/env bash
# Runs every test: Apogee's module with the race detector, then the two interop modules (interop/ and
# client/clienttest/interop/), which drive Apogee with the official RocketMQ Go client. Their test
# binaries run without -race because the official client has data races of its own; the apogee binary
# interop/ starts is built with -race. Extra arguments go to every `go test`, e.g. -run or -count.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race "$@" ./...
(cd interop && go test "$@" ./...)
(cd client/clienttest/interop && go test "$@" ./...)
