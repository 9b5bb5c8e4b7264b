package store

import (
	"syscall"
	"unsafe"
)

// threadCPU returns the CPU time of the calling thread (the caller locks
// its OS thread), or ok false if unavailable.
func threadCPU() (ns int64, ok bool) {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0, false
	}
	return ts.Nano(), true
}
