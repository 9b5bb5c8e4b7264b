// Package bench holds the comparison tools of scripts/bench-compare.sh. It is its own module so the
// NATS client it needs stays out of Apogee's go.mod.
package bench
