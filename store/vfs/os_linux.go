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

func release(b []byte) error { return syscall.Madvise(b, syscall.MADV_DONTNEED) }

// MADV_POPULATE_WRITE and MADV_POPULATE_READ (Linux 5.14).
const (
	madvPopulateRead  = 22
	madvPopulateWrite = 23
)

// prefault uses MADV_POPULATE_WRITE: besides allocating and zeroing the
// pages it takes the write fault (ext4's page_mkwrite, block mapping), so a
// later memcpy into them runs without entering the kernel. The price is
// that the zero pages are dirty: an fsync before the writer reaches them
// writes them too (one extra write of at most the prefaulted lead per
// fsync, which is why the store keeps that lead small and uses mappings
// only under AsyncFlush). Kernels that know neither advice return EINVAL.
func prefault(b []byte) error {
	err := syscall.Madvise(b, madvPopulateWrite)
	if err == syscall.EINVAL {
		err = syscall.Madvise(b, madvPopulateRead)
	}
	return err
}
