// Package vfs is the filesystem seam of the store: every file the store
// touches goes through an FS, so tests can substitute a fault-injecting one
// (package errorfs) for the operating system's (Default).
//
// Usage:
//
//	fs := vfs.Default
//	f, err := fs.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_RDWR, 0o644)
//	_, err = f.WriteAt(b, off)
//	err = f.Sync() // fdatasync: the bytes written so far are durable when it returns nil
//
// Caller obligations: a File is safe for concurrent ReadAt/WriteAt at
// disjoint ranges (pread/pwrite), but Truncate, Close and Sync must not race
// with writes the caller expects them to cover. After Sync fails the caller
// must assume the unsynced bytes are lost and must not retry (fsyncgate).
package vfs
