#!/usr/bin/env bash
# Runs every test: Apogee's module with the race detector, then the two interop modules (interop/ and
# client/clienttest/interop/), which drive Apogee with the official RocketMQ Go client. Their test
# binaries run without -race because the official client has data races of its own; the apogee binary
# interop/ starts is built with -race. Allocation-count tests run once more without -race, which
# distorts them (they skip under it). Extra arguments go to every `go test`, e.g. -run or -count.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race "$@" ./...
go test -run 'Allocation|Aliased' "$@" ./broker ./remoting
(cd interop && go test "$@" ./...)
(cd client/clienttest/interop && go test "$@" ./...)
