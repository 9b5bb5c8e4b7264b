package vfs

import (
	"os"
	"syscall"
)

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

func allocate(f *os.File, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch err {
		case nil:
			return nil
		case syscall.EINTR:
			continue
		case syscall.EOPNOTSUPP, syscall.ENOSYS:
			return f.Truncate(size)
		}
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
}

func (f osFile) Map(size int) ([]byte, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: f.Name(), Err: err}
	}
	return b, nil
}

func unmap(b []byte) error { return syscall.Munmap(b) }

// madvPopulateRead is MADV_POPULATE_READ (Linux 5.14). Not
// MADV_POPULATE_WRITE: that marks the pages dirty, so the next fsync would
// write megabytes of zeros ahead of the data (measured: SyncFlush fsyncs
// slowed down, and every page is written to disk twice).
const madvPopulateRead = 22

func prefault(b []byte) error { return syscall.Madvise(b, madvPopulateRead) }
