package errorfs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/apogeemq/apogee/store/vfs"
)

// ErrInjected is wrapped by every error errorfs invents (except NoSpace ones).
var ErrInjected = errors.New("errorfs: injected error")

// Op is an operation that can fail.
type Op int

// Operations.
const (
	OpOpen Op = iota
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpAllocate
	OpRemove
	OpRename
	OpSyncDir
	OpMap
	opCount
)

var opNames = [...]string{"open", "read", "write", "sync", "truncate", "allocate", "remove", "rename", "syncdir", "map"}

func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Injector decides whether an operation fails. MaybeError is called before
// the operation; a non-nil result is returned instead of running it (a write
// first writes half its bytes, see the package doc). It must be safe for
// concurrent use.
type Injector interface {
	MaybeError(op Op, path string) error
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(op Op, path string) error

// MaybeError implements Injector.
func (f InjectorFunc) MaybeError(op Op, path string) error { return f(op, path) }

// OnIndex fails the n-th (0-based) call of op, and only that one.
func OnIndex(op Op, n int64) Injector {
	var count atomic.Int64
	return InjectorFunc(func(o Op, path string) error {
		if o == op && count.Add(1)-1 == n {
			return fmt.Errorf("%w: %s %s", ErrInjected, o, path)
		}
		return nil
	})
}

// Toggle is an Injector whose failing operations can be switched on and off
// at run time, and which can also report a fake disk usage.
type Toggle struct {
	mu struct {
		sync.Mutex
		failing [opCount]error // Protected by mu.
		usage   *vfs.DiskUsage // Protected by mu.
		count   [opCount]int64 // Protected by mu.
	}
}

// Fail makes every later op fail with err (nil switches failures off). Use
// NoSpace for ENOSPC.
func (t *Toggle) Fail(op Op, err error) {
	t.mu.Lock()
	t.mu.failing[op] = err
	t.mu.Unlock()
}

// SetDiskUsage makes DiskUsage report u (nil: report the real usage).
func (t *Toggle) SetDiskUsage(u *vfs.DiskUsage) {
	t.mu.Lock()
	t.mu.usage = u
	t.mu.Unlock()
}

// Count returns how many times op has been attempted.
func (t *Toggle) Count(op Op) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.count[op]
}

// MaybeError implements Injector.
func (t *Toggle) MaybeError(op Op, path string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.count[op]++
	if err := t.mu.failing[op]; err != nil {
		return fmt.Errorf("%s %s: %w", op, path, err)
	}
	return nil
}

func (t *Toggle) diskUsage() *vfs.DiskUsage {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.usage
}

// NoSpace is an error that vfs.IsNoSpace recognises.
var NoSpace error = syscall.ENOSPC

// Injected returns an error wrapping ErrInjected, for Toggle.Fail.
func Injected() error { return ErrInjected }

// FS is a vfs.FS with injected faults.
type FS struct {
	inner vfs.FS
	inj   Injector
}

// Wrap returns inner with faults decided by inj.
func Wrap(inner vfs.FS, inj Injector) *FS { return &FS{inner: inner, inj: inj} }

// OpenFile implements vfs.FS.
func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if err := fs.inj.MaybeError(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := fs.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &file{File: f, inj: fs.inj}, nil
}

// Remove implements vfs.FS.
func (fs *FS) Remove(name string) error {
	if err := fs.inj.MaybeError(OpRemove, name); err != nil {
		return err
	}
	return fs.inner.Remove(name)
}

// RemoveAll implements vfs.FS.
func (fs *FS) RemoveAll(name string) error {
	if err := fs.inj.MaybeError(OpRemove, name); err != nil {
		return err
	}
	return fs.inner.RemoveAll(name)
}

// Rename implements vfs.FS.
func (fs *FS) Rename(oldname, newname string) error {
	if err := fs.inj.MaybeError(OpRename, newname); err != nil {
		return err
	}
	return fs.inner.Rename(oldname, newname)
}

// MkdirAll implements vfs.FS.
func (fs *FS) MkdirAll(dir string, perm os.FileMode) error { return fs.inner.MkdirAll(dir, perm) }

// List implements vfs.FS.
func (fs *FS) List(dir string) ([]string, error) { return fs.inner.List(dir) }

// Stat implements vfs.FS.
func (fs *FS) Stat(name string) (os.FileInfo, error) { return fs.inner.Stat(name) }

// SyncDir implements vfs.FS.
func (fs *FS) SyncDir(dir string) error {
	if err := fs.inj.MaybeError(OpSyncDir, dir); err != nil {
		return err
	}
	return fs.inner.SyncDir(dir)
}

// DiskUsage implements vfs.FS; a Toggle injector can override the answer.
func (fs *FS) DiskUsage(dir string) (vfs.DiskUsage, error) {
	if t, ok := fs.inj.(*Toggle); ok {
		if u := t.diskUsage(); u != nil {
			return *u, nil
		}
	}
	return fs.inner.DiskUsage(dir)
}

type file struct {
	vfs.File
	inj Injector
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if err := f.inj.MaybeError(OpRead, f.Name()); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

// WriteAt writes the first half of p before failing, so a failed write can
// leave a torn record behind as a real one can.
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if err := f.inj.MaybeError(OpWrite, f.Name()); err != nil {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return f.File.WriteAt(p, off)
}

func (f *file) Sync() error {
	if err := f.inj.MaybeError(OpSync, f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *file) Truncate(size int64) error {
	if err := f.inj.MaybeError(OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *file) Allocate(size int64) error {
	if err := f.inj.MaybeError(OpAllocate, f.Name()); err != nil {
		return err
	}
	return f.File.Allocate(size)
}

// Map forwards to the wrapped file's mapping, if it has one. Writes
// through a mapping cannot be failed; a test that wants to fail commit-log
// writes fails OpMap, and the store then writes with WriteAt.
func (f *file) Map(size int) ([]byte, error) {
	if err := f.inj.MaybeError(OpMap, f.Name()); err != nil {
		return nil, err
	}
	m, ok := f.File.(vfs.Mapper)
	if !ok {
		return nil, fmt.Errorf("errorfs: %s cannot be mapped", f.Name())
	}
	return m.Map(size)
}
