// Package timer is the persistent timing structure behind RocketMQ 5-style
// timer messages (TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS): a
// timer log and a wheel of slots on disk, in the spirit of RocketMQ's
// TimerLog and TimerWheel. It holds millions of pending timers with
// memory bounded by the slots being delivered, survives kill -9, and
// delivers each timer at least once, at or just after its millisecond. It
// does no networking and knows nothing of messages: a timer is a
// caller-supplied reference (the commit-log offset and size of the stored
// timer message) and a due time.
//
// # Usage
//
//	w, err := timer.Open(dir, &timer.Options{})   // recovers after a crash
//	defer w.Close()
//	err = w.Add(ctx, deliverAt, commitLogOffset, size) // ErrTooFar beyond MaxDelay
//	go w.Run(ctx, func(batch []timer.Entry) error {
//		// re-append each message to its real topic; nil acknowledges the batch
//	})
//
// A caller that stores each timer message in a log of its own first (the
// broker's commit log) need not fsync Adds: after Open it re-adds every
// message of its log beyond MaxRef, provided it adds in log order.
//
// Caller obligations: deliver must tolerate at-least-once delivery (a
// crash re-delivers the timers acknowledged since the last checkpoint, a
// restart those of a partly delivered slot and of a slot rolled before
// it); it must return (Close waits for Run) and must not call Close. Add
// is durable against kill -9 when it returns; against power loss only
// under Options.SyncAdd or after Sync.
//
// # Costs (BenchmarkAdd, BenchmarkPending, BenchmarkDeliver)
//
// A pending timer costs 48 bytes of timer log on disk and no heap; the
// wheel is a fixed 32 bytes a slot on disk (8.4 MB by default, mapped) and
// a 33 KB bitmap in memory. A timer costs 40 bytes of heap only while its
// slot is being delivered, so a slot holding a very large number of timers
// (a million due in the same second) is the one case that costs memory in
// proportion; reading it walks its chain with one pread per timer (about
// 0.4 µs), letting go of Wheel.mu every 512 timers so Adds are not held up.
//
// # Layout on disk
//
//	<dir>/wheel                     header, then Slots slot records
//	<dir>/log/00000000000000000000  timer-log segments named by first entry index
//	<dir>/checkpoint                two checkpoint copies, at 0 and 512
//
// All integers are little endian; crc is CRC-32C of the bytes before it.
// A segment is a 64-byte header and EntriesPerSegment entries of 48 bytes;
// entry i of the log lives in segment i - i%EntriesPerSegment.
//
//	segment header, wheel header, checkpoint (64 B):
//	| magic (8) | version=1 (4) | flags (4) | a (8) | b (8) | c (8) | d (8) | e (8) | zero (4) | crc (4) |
//	  segment:    magic "APGTLOG\0", a = first index, b = highest slot of its entries
//	  wheel:      magic "APGWHEEL",  a = slot ms, b = slot count
//	  checkpoint: magic "APGTCKPT",  a = cursor slot, b = log end the wheel covers,
//	              c = sequence (the valid copy with the higher one wins),
//	              d = slot ms, e = highest ref added below b,
//	              flags bit 0 = clean shutdown
//
//	log entry (48 B):
//	| deliverAt ms (8) | ref (8) | prev (8) | slot (8) | size (4) | seq (4) | zero (4) | crc (4) |
//	  prev = index+1 of the previous entry of the same slot (0: first);
//	  slot = absolute slot number (ms / slot ms) the entry is linked into;
//	  seq  = the entry's 1-based position in that slot's chain
//
//	slot record (32 B), at 64 + 32*(slot mod Slots) in the wheel file:
//	| slot (8) | head (8) | count (4) | zero (8) | crc (4) |    all zeros = empty
//	  head = index+1 of the newest entry of the slot; count = chain length
//
// These layouts are part of the on-disk format and should not be changed.
//
// # How it works
//
// Add appends an entry whose prev points to the slot's current head and
// rewrites the slot record, under Wheel.mu: one pwrite for the entry and a
// store into the memory-mapped wheel file (a second pwrite where the
// filesystem cannot map). Nothing waits in a user-space buffer, so an Add
// that returned is in the page cache. A timer is linked
// into the slot of its due time, but never before the cursor (past timers
// fire at once) and never beyond the ring: a timer more than Slots slots
// ahead is parked in the last slot of the ring and re-added when that slot
// is read (a roll), so Slots only trades wheel size for rolls.
//
// Run reads each slot shortly (Lookahead) before it starts: it walks the
// chain from the head and puts the slot's timers into an in-memory heap
// ordered by due time, then fires each at its millisecond from a timer
// (not a polling loop), in batches. A bitmap of non-empty slots (one bit a
// slot: 33 KB for 3 days of 1 s slots) lets it sleep until the next slot
// that holds anything. Memory is therefore the bitmap plus 40 bytes per
// timer of the slots being delivered, whatever the number pending.
//
// The cursor is the lowest slot with an unacknowledged timer. The flusher
// goroutine fsyncs written segments, then the wheel, then writes the
// checkpoint (cursor, log end) every FlushInterval; after that it deletes
// segments whose timers all lie in slots before the durable cursor.
//
// # Recovery
//
// Open replays the log from the checkpoint's log end: each valid entry is
// relinked into its slot record; the first invalid entry (checksum) is the
// torn tail, which is zeroed, and later segments are removed. After an
// unclean stop every live slot record is checked against the entry it
// points to (in the log, same slot, same chain length); if any disagrees,
// all records are rebuilt from a scan of the whole log (the last entry of
// a slot is its head, its seq the count). A record of slot s proves that
// the cursor had passed s-Slots, so the cursor starts no lower; without a
// checkpoint it starts at the earliest slot in the log, but after any slot
// whose chain lost entries with a deleted segment (such a slot, and all
// before it, had been acknowledged).
//
// # Goroutines (all stopped by Close)
//
//	flusher   fsyncs, checkpoints, deletes finished segments
//	Run       the caller's goroutine; Close waits for it to return
//
// Lock order: Wheel.flushMu, then Wheel.mu.
package timer
