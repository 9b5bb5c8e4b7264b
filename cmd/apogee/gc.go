package main

import (
	"os"
	"runtime/debug"
)

// brokerGCPercent is the garbage collector's target for processes that run a broker, unless GOGC
// is set. A broker's live heap is small (messages live in the page cache, not the heap) while it
// allocates per request, so at Go's default of 100 it collected several times a second under load
// and the collector, scanning goroutine stacks each time, took about a fifth of its CPU. At 400 the
// heap may grow to five times the live data: tens of MiB, well inside the memory budget.
const brokerGCPercent = 400

func tuneGCForBroker() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(brokerGCPercent)
	}
}
