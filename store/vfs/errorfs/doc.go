// Package errorfs wraps a vfs.FS and injects errors into chosen operations,
// after pebble's vfs/errorfs. Tests use it to fail writes, fsyncs, renames and
// file creation, to report a full disk, and to tear writes (a failed write
// may leave a prefix of its bytes in the file, as a real one can).
//
// Usage:
//
//	inj := errorfs.OnIndex(errorfs.OpSync, 3)       // the 4th Sync fails
//	fs := errorfs.Wrap(vfs.Default, inj)
//	s, err := store.Open(dir, &store.Options{FS: fs})
//
// Injected errors wrap ErrInjected (or syscall.ENOSPC for NoSpace).
package errorfs
