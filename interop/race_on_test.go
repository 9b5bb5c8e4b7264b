//go:build race

package interop

// raceEnabled: the tests run with -race, so the apogee binary is built with it too.
const raceEnabled = true
