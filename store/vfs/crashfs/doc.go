// Package crashfs wraps a vfs.FS and simulates a power cut: Crash puts
// every file back to its state at its last successful Sync, by undoing the
// writes made since (an undo log of the bytes each write replaced), cutting
// files back to their synced size, and deleting files created since their
// directory was last synced. After Crash every operation fails, as the
// process that owned the files is gone; reopen the directory with a new FS.
//
// Limits: writes through a memory mapping are invisible to it (the store
// maps segments only under ASYNC_FLUSH; under SYNC_FLUSH it uses pwrite),
// and renames and removes are durable at once.
//
// Usage:
//
//	fs := crashfs.Wrap(vfs.Default)
//	s, _ := store.Open(dir, &store.Options{FS: fs, FlushDiskType: store.SyncFlush})
//	... appends ...
//	fs.Crash() // then stop s without closing it cleanly, and reopen dir
package crashfs
