#!/usr/bin/env bash
# Runs every test of both modules (Apogee and its interop tests with the official RocketMQ Go client)
# with the race detector. Extra arguments go to every `go test`, e.g. -run or -count.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race "$@" ./...
(cd interop && go test -race "$@" ./...)
