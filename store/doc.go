// Package store is Apogee's message store: RocketMQ's commit log, consume
// queues and index, with flushing, checkpoint and recovery, and retention.
// It does no networking; the broker calls it.
//
// # Layout on disk
//
//	<dir>/commitlog/00000000000000000000     segments of Options.SegmentSize, named by start offset
//	<dir>/consumequeue/<topic>/<queueId>/00000000000000000000   20-byte entries
//	<dir>/index/<first commit-log offset>     hash index files (memory-mapped)
//	<dir>/checkpoint                          what is durable (format.Checkpoint)
//	<dir>/abort                               exists while the store is open
//
// Records use the stored message layout of package message, so GetMessages
// returns bytes a PULL_MESSAGE answer ships as they are. Other byte layouts
// are drawn in package format.
//
// # Usage
//
//	s, err := store.Open(dir, &store.Options{FlushDiskType: store.SyncFlush, StoreHost: addr})
//	defer s.Close()
//	res, err := s.Append(ctx, msg)                // res.Status: PutOK, FlushDiskTimeout, DiskFull, ...
//	var get store.GetResult                        // reuse per goroutine: no allocation per pull
//	err = s.GetMessages(topic, queueID, offset, 32, filter, &get)
//	// get.Status, get.NextBeginOffset, get.MinOffset, get.MaxOffset, get.Body
//
// # Write path and durability
//
// Segments are allocated at full size when created (fallocate), so writing
// into them can never hit ENOSPC or SIGBUS. Once the active segment is half
// full the prefaulter creates the next one, so a roll does not wait for the
// directory fsync. Under AsyncFlush segments are memory-mapped and the
// prefaulter keeps the pages ahead of the writer present and writable
// (MADV_POPULATE_WRITE: the appender's copy takes no page fault); under
// SyncFlush they are written with pwrite and read with pread, because fsync
// of mapped pages costs more than the mapping saves when fsyncs are
// frequent. Append
// encodes the record outside the lock, then under the append lock
// (Store.mu) assigns the queue offset, commit-log offset and store time,
// copies the record into the segment (a batch in one copy) and publishes
// the new end. If a segment cannot be mapped it is written with pwrite
// instead. An acknowledged append is always in the kernel page cache (never
// in a user-space buffer), so it survives kill -9 in both flush modes.
//
// Under SyncFlush the append then waits for the flusher goroutine, which
// fsyncs whenever woken and, after each fsync, immediately covers whatever
// was written meanwhile: concurrent appends share one fsync (group commit).
// Invariants: flushed only grows; flushed <= written; a waiter is released
// only when flushed >= the end of its record, or on timeout, context end or
// the sticky error. An fsync error is never retried: it stops all writes
// (ErrWritesStopped) until the store is reopened and recovered (fsyncgate).
// Running out of space is not an error that stops the store: allocating a
// segment or writing a consume queue that fails with ENOSPC makes appends
// return DiskFull (nothing is acknowledged that is not stored) until the
// cleaner sees space again. Any other write error stops writes.
//
// # Dispatch and reads
//
// The dispatcher goroutine turns written records into consume-queue entries
// and index entries, in log order and in batches. Appends hand it their
// records through a list with its own lock (Store.pend), and wake it only
// when it sleeps. After a batch it pauses (dispatchPause, 0.5 ms, which the
// runtime may round up to 1 ms) without sleeping, so a steady stream of
// single appends costs one wake-up per pause instead of one per append; a
// pause that gathered at most one record only delayed it, and turns pausing
// off for dispatchNoPause (50 ms). A message is readable by queue offset
// once dispatched; Listener.MessageArrived reports it.
//
// New consume-queue entries go to an in-memory tail of their queue, which
// readers see as part of the queue; the dispatcher writes a tail to the
// file once it holds 4 KiB (cqWriteChunk), and the checkpoint writes the
// rest. So no dispatch batch costs a pwrite per queue; a crash loses only
// entries the checkpoint does not claim, which recovery rebuilds. The index
// files are memory-mapped, so adding a key is no system call either.
//
// # Checkpoint and recovery
//
// Every CheckpointInterval the housekeeping goroutine writes the consume
// queues' tails, fsyncs consume queues and index and writes the checkpoint
// (temp file, fsync, rename, fsync dir): the commit log is durable below
// CommitLogFlushed, and queues and index below DispatchDurable. After an
// unclean stop the queue files may hold entries that reached only the page
// cache, so the first checkpoint fsyncs every queue file before claiming
// them. Open re-validates every record from DispatchDurable
// to the end of the files (size, magic, body CRC, position, and that each
// queue offset follows the previous one of its queue), cuts the log at
// the first failure (a torn tail), redispatches those records (entries that
// are already present are skipped), and cuts consume-queue entries that
// point past the end. A clean Close writes a final checkpoint and removes the
// abort file, so the next Open re-validates nothing.
//
// # Retention and disk space
//
// Every CleanInterval the cleaner reads disk usage. At or above
// DiskFullRatio appends are refused with DiskFull (reads keep working) until
// usage drops. Segments last modified more than FileReservedTime ago are
// deleted at the DeleteWhen hours, or at any hour above DiskMaxUsedRatio;
// above DiskForceCleanRatio the oldest segments go even if not expired. The
// newest segment is never deleted. Consume queues and index are trimmed to
// the new first offset.
//
// # Goroutines (all stopped by Close)
//
//	flusher       fsyncs the commit log (owns Store.flush)
//	dispatcher    builds consume queues and index (owns consumeQueue.pending)
//	housekeeping  checkpoints (writes queue tails, fsyncs), cleans, and every
//	              second unmaps flushed log pages from the process but the
//	              newest 32 MiB (so resident size is the process's own)
//	prefaulter    makes the pages ahead of the write position present and
//	              creates the next segment ahead of need
//	waiter expiry (SyncFlush only) fails AppendThen callbacks still waiting
//	              for an fsync after SyncFlushTimeout
//
// Under SyncFlush, Append waits for the fsync that covers it; AppendThen
// returns at once and its callback runs on the goroutine that completes the
// wait (the flusher, or the waiter expiry), so a broker needs no goroutine
// per message waiting for the disk.
//
// Lock order: Store.mu, then Store.pend / commitLog.createMu, then
// commitLog.mu / Store.cqs / consumeQueue.mu / index.mu; consumeQueue.writing
// is taken before consumeQueue.mu; Store.flush is never held with another
// lock.
package store
