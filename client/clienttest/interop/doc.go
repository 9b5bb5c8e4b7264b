// Package interop checks that package client and the official RocketMQ Go client (v2.1.2) work
// together through `apogee dev`: messages produced by one are consumed by the other, ordered and
// transactional ones included. It is its own module so that the official client stays out of the
// main module's go.mod. Run it with `go test` in this directory (without -race: the official client
// has data races of its own).
package interop
