//go:build !linux

package store

func threadCPU() (ns int64, ok bool) { return 0, false }
