//go:build !linux

package vfs

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

func preallocate(*os.File, int64) error { return nil }

func unmap([]byte) error { return nil }
