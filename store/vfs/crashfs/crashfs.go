package crashfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/apogeemq/apogee/store/vfs"
)

// ErrCrashed is returned by every operation after Crash.
var ErrCrashed = errors.New("crashfs: the machine has crashed")

type undo struct {
	off int64
	old []byte
}

// fileState is what the simulation knows of one path.
type fileState struct {
	undo       []undo
	syncedSize int64
}

// FS is a vfs.FS that can lose everything not synced.
type FS struct {
	inner vfs.FS
	// NoMap makes Map fail, so the store writes its segments with pwrite
	// and every write is simulated (set it before use).
	NoMap bool

	mu struct {
		sync.Mutex
		crashed bool
		files   map[string]*fileState // by path. Protected by mu.
		created map[string]bool       // created, directory not synced. Protected by mu.
	}
}

// Wrap returns inner with power-cut simulation.
func Wrap(inner vfs.FS) *FS {
	fs := &FS{inner: inner}
	fs.mu.files = make(map[string]*fileState)
	fs.mu.created = make(map[string]bool)
	return fs
}

// Crash discards everything not synced. Later operations fail with
// ErrCrashed.
func (fs *FS) Crash() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.mu.crashed = true
	var errs []error
	for path, st := range fs.mu.files {
		if fs.mu.created[path] {
			continue
		}
		f, err := fs.inner.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := len(st.undo) - 1; i >= 0; i-- {
			if _, err := f.WriteAt(st.undo[i].old, st.undo[i].off); err != nil {
				errs = append(errs, err)
			}
		}
		if size, err := f.Size(); err == nil && size > st.syncedSize {
			errs = append(errs, f.Truncate(st.syncedSize))
		}
		errs = append(errs, f.Close())
	}
	for path := range fs.mu.created {
		errs = append(errs, fs.inner.Remove(path))
	}
	return errors.Join(errs...)
}

func (fs *FS) check() error {
	if fs.mu.crashed {
		return ErrCrashed
	}
	return nil
}

// stateLocked returns the state of path, created from f's size when new.
func (fs *FS) stateLocked(path string, f vfs.File) *fileState {
	st := fs.mu.files[path]
	if st == nil {
		st = &fileState{}
		st.syncedSize, _ = f.Size()
		fs.mu.files[path] = st
	}
	return st
}

// OpenFile implements vfs.FS.
func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return nil, err
	}
	_, statErr := fs.inner.Stat(name)
	f, err := fs.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		fs.mu.created[name] = true
	}
	st := fs.stateLocked(name, f)
	if flag&os.O_TRUNC != 0 {
		st.undo, st.syncedSize = nil, 0 // truncation of an existing file: treat as durable
	}
	return &file{File: f, fs: fs, path: name}, nil
}

// Remove implements vfs.FS.
func (fs *FS) Remove(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return err
	}
	delete(fs.mu.files, name)
	delete(fs.mu.created, name)
	return fs.inner.Remove(name)
}

// RemoveAll implements vfs.FS.
func (fs *FS) RemoveAll(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return err
	}
	for p := range fs.mu.files {
		if p == name || strings.HasPrefix(p, name+string(filepath.Separator)) {
			delete(fs.mu.files, p)
			delete(fs.mu.created, p)
		}
	}
	return fs.inner.RemoveAll(name)
}

// Rename implements vfs.FS (durable at once; see the package doc).
func (fs *FS) Rename(oldname, newname string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return err
	}
	if st, ok := fs.mu.files[oldname]; ok {
		fs.mu.files[newname] = st
		delete(fs.mu.files, oldname)
	}
	delete(fs.mu.created, oldname)
	return fs.inner.Rename(oldname, newname)
}

// MkdirAll implements vfs.FS.
func (fs *FS) MkdirAll(dir string, perm os.FileMode) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return err
	}
	return fs.inner.MkdirAll(dir, perm)
}

// List implements vfs.FS.
func (fs *FS) List(dir string) ([]string, error) { return fs.inner.List(dir) }

// Stat implements vfs.FS.
func (fs *FS) Stat(name string) (os.FileInfo, error) { return fs.inner.Stat(name) }

// SyncDir implements vfs.FS: files created in dir become durable.
func (fs *FS) SyncDir(dir string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.check(); err != nil {
		return err
	}
	for p := range fs.mu.created {
		if filepath.Dir(p) == filepath.Clean(dir) {
			delete(fs.mu.created, p)
		}
	}
	return fs.inner.SyncDir(dir)
}

// DiskUsage implements vfs.FS.
func (fs *FS) DiskUsage(dir string) (vfs.DiskUsage, error) { return fs.inner.DiskUsage(dir) }

type file struct {
	vfs.File
	fs   *FS
	path string
}

// WriteAt records the bytes it replaces, then writes.
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check(); err != nil {
		return 0, err
	}
	st := f.fs.stateLocked(f.path, f.File)
	old := make([]byte, len(p))
	n, err := f.File.ReadAt(old, off)
	if err != nil && err != io.EOF {
		return 0, err
	}
	if n > 0 {
		st.undo = append(st.undo, undo{off: off, old: old[:n]})
	}
	return f.File.WriteAt(p, off)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if err := f.checkLocked(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *file) checkLocked() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.fs.check()
}

// Sync makes the file's writes durable: the undo log is dropped.
func (f *file) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check(); err != nil {
		return err
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	st := f.fs.stateLocked(f.path, f.File)
	st.undo = nil
	st.syncedSize, _ = f.File.Size()
	return nil
}

func (f *file) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check(); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *file) Allocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.check(); err != nil {
		return err
	}
	return f.File.Allocate(size)
}

// Map forwards the mapping; writes through it are not simulated.
func (f *file) Map(size int) ([]byte, error) {
	if err := f.checkLocked(); err != nil {
		return nil, err
	}
	if f.fs.NoMap {
		return nil, errors.New("crashfs: mapping disabled")
	}
	m, ok := f.File.(vfs.Mapper)
	if !ok {
		return nil, errors.New("crashfs: file cannot be mapped")
	}
	return m.Map(size)
}
