package broker

import (
	"sync"
	"syscall"
)

// memoryBudget is 40 % of physical memory (RocketMQ's accessMessageInMemoryMaxRatio): the tail of the
// commit log that is assumed to be in the page cache. Falls back to 1 GiB if memory cannot be read.
var memoryBudget = sync.OnceValue(func() int64 {
	var info syscall.Sysinfo_t
	if err := syscall.Sysinfo(&info); err != nil || info.Totalram == 0 {
		return 1 << 30
	}
	return int64(info.Totalram) * int64(info.Unit) * 40 / 100
})
