//go:build !linux

package vfs

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

func allocate(f *os.File, size int64) error {
	if st, err := f.Stat(); err != nil || st.Size() >= size {
		return err
	}
	return f.Truncate(size)
}

func unmap([]byte) error { return nil }

func prefault([]byte) error { return nil }

func release([]byte) error { return nil }
