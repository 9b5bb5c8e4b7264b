//go:build !linux

package broker

// memoryBudget is the tail of the commit log assumed to be in the page cache; 1 GiB where physical
// memory is not read.
func memoryBudget() int64 { return 1 << 30 }
