package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is the garbage collector's target for processes that run a broker or a load generator,
// unless GOGC is set. Their live heap is small (a broker's messages live in the page cache, not the
// heap) while they allocate per request, so at Go's default of 100 they collected several times a
// second under load and the collector, scanning goroutine stacks each time, took about a fifth of
// the CPU. At 400 the heap may grow to five times the live data: tens of MiB, well inside the memory
// budget. bench/jsbench, the JetStream load generator, uses the same setting so that comparisons
// are even.
const gcPercent = 400

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}
