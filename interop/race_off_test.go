//go:build !race

package interop

// raceEnabled: the tests run without -race (benchmarks), so the apogee binary is built without it.
const raceEnabled = false
