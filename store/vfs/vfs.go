package vfs

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// File is an open file.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Sync makes the written data (and the size) durable (fdatasync). An
	// error means some written bytes may be lost; it must not be retried.
	Sync() error
	// Truncate changes the file size.
	Truncate(size int64) error
	// Size returns the current file size.
	Size() (int64, error)
	// Allocate makes the file at least size bytes long with disk blocks
	// reserved (fallocate), so writes below size, through WriteAt or a
	// mapping, cannot fail with ENOSPC (or SIGBUS). The new bytes read as
	// zeros. Where fallocate is unsupported it extends the file sparsely.
	Allocate(size int64) error
	// Name returns the path the file was opened with.
	Name() string
}

// DiskUsage describes the filesystem that holds a directory.
type DiskUsage struct {
	Total uint64 // bytes
	Free  uint64 // bytes available to unprivileged users
}

// UsedRatio returns the used fraction in [0, 1] (0 when Total is 0).
func (u DiskUsage) UsedRatio() float64 {
	if u.Total == 0 || u.Free >= u.Total {
		return 0
	}
	return float64(u.Total-u.Free) / float64(u.Total)
}

// FS is a filesystem. Paths are OS paths. All methods are safe for
// concurrent use.
type FS interface {
	// OpenFile opens a file like os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes a path and everything under it.
	RemoveAll(name string) error
	// Rename renames a file; it is atomic within a directory. Call SyncDir
	// to make it durable.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents.
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the names in dir, sorted. A missing dir is an empty list.
	List(dir string) ([]string, error)
	// Stat describes a file.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes creates, removes and renames in dir durable.
	SyncDir(dir string) error
	// DiskUsage reports the space of the filesystem holding dir.
	DiskUsage(dir string) (DiskUsage, error)
}

// IsNoSpace reports whether err means the filesystem is out of space or
// quota (ENOSPC, EDQUOT).
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Mapper is implemented by files that can be memory-mapped. The store maps
// files only after Allocate, so touching the mapping cannot fault on a full
// disk.
type Mapper interface {
	// Map maps [0, size) of the file shared and read-write.
	Map(size int) ([]byte, error)
}

// Unmap releases a mapping returned by Mapper.Map.
func Unmap(b []byte) error { return unmap(b) }

// Prefault makes the pages of a shared file mapping present in the page
// cache and mapped writable (MADV_POPULATE_WRITE, or MADV_POPULATE_READ
// where that is missing), so later writes through the mapping skip page
// allocation, zeroing and the write fault. The pages become dirty (they are
// written back at the next fsync even if nothing was stored in them yet).
// One call for many pages is much cheaper than faulting them one by one. It
// is a hint: an error (old kernels) can be ignored.
func Prefault(b []byte) error { return prefault(b) }

// Release unmaps the pages of part of a shared file mapping from the process (MADV_DONTNEED). The
// data stays in the file and the page cache (a dirty page is still written back), and the next
// access maps it again from the cache; the process's resident size just stops counting it. It is a
// hint: an error can be ignored.
func Release(b []byte) error { return release(b) }
