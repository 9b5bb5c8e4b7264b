package timer

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/apogeemq/apogee/store/vfs"
)

var (
	// ErrClosed is returned by calls on a closed Wheel.
	ErrClosed = errors.New("timer: closed")
	// ErrTooFar is returned by Add for a delivery time more than
	// Options.MaxDelay ahead of now.
	ErrTooFar = errors.New("timer: delivery time beyond the maximum delay")
	// ErrRunning is returned by Run while another Run is active.
	ErrRunning = errors.New("timer: already running")
	// ErrOptionsChanged is returned by Open when SlotDuration or Slots
	// differ from those the directory was created with.
	ErrOptionsChanged = errors.New("timer: slot duration or slot count differs from the directory's")
	// ErrCorrupt marks (errors.Is) damage that recovery could not repair.
	ErrCorrupt = errors.New("timer: corrupt")
)

// IsCorrupt reports whether err marks on-disk corruption.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

// Entry is a timer: a caller-supplied reference (typically the commit-log
// offset and size of the stored timer message) due at DeliverAt.
type Entry struct {
	DeliverAt int64 // Unix milliseconds
	Ref       int64
	Size      int32
}

// Due returns DeliverAt as a time.
func (e Entry) Due() time.Time { return time.UnixMilli(e.DeliverAt) }

// Stats describe a Wheel.
type Stats struct {
	Pending     int64 // timers added and not yet acknowledged
	Loaded      int   // timers of read slots held in memory, including those being delivered
	Rolled      int64 // timers re-added because they lay beyond the ring (since Open)
	Delivered   int64 // timers acknowledged (since Open)
	MemoryBytes int64 // approximate heap held: loaded timers, slot bitmap
	LogBytes    int64 // disk held by timer-log segments
	Segments    int
	Cursor      time.Time // every timer due before it is acknowledged
}

type segment struct {
	first   int64
	f       vfs.File
	maxSlot int64 // highest slot of its entries; Protected by Wheel.mu
	dirty   bool  // written since the last flush; Protected by Wheel.mu
}

// loaded is a timer of a read slot, held in memory until acknowledged.
type loaded struct {
	Entry
	home int64 // slot whose chain holds it on disk
	idx  int64 // log index, the tie-breaker after DeliverAt
}

// Wheel is a persistent timing wheel. All methods are safe for concurrent
// use.
type Wheel struct {
	dir      string
	opts     Options
	slotMs   int64
	nslots   int64
	perSeg   int64
	wheel    vfs.File
	mapped   []byte // the wheel file, when mapped (nil: pread/pwrite)
	records  []byte // mapped[headerSize:]; Protected by mu after Open
	ckpt     vfs.File
	wake     chan struct{} // scheduler, cap 1
	flushReq chan struct{} // flusher, cap 1
	done     chan struct{} // closed by Close
	wg       sync.WaitGroup
	runWG    sync.WaitGroup
	flushMu  sync.Mutex // serializes flush; taken before mu

	mu struct {
		sync.Mutex
		err       error // sticky: write, fsync or corruption
		closed    bool
		running   bool
		segs      map[int64]*segment // by first index
		newSegs   bool               // segments created since the last flush
		end       int64              // next log index
		cursor    int64              // lowest slot not acknowledged
		loadedEnd int64              // slots below it have been read
		bits      []uint64           // ring positions whose record may hold a slot >= loadedEnd
		heap      []loaded           // read timers not being delivered, min-heap by (DeliverAt, idx)
		inflight  map[int64]int32    // home slot -> read timers not acknowledged
		pending   int64
		rolled    int64
		delivered int64
		ckptSeq   int64
		maxRef    int64                       // highest ref passed to Add; math.MinInt64: none
		flushed   struct{ end, cursor int64 } // durable state
		flushDone chan struct{}               // closed and replaced after each flush
		nextWake  int64                       // ms the scheduler sleeps until
		buf       [headerSize]byte
	}
}

// Open opens or creates the wheel in dir and recovers it: a torn tail of
// the timer log is cut, slot records are checked against the log and
// rebuilt from it when they disagree. It starts the flusher goroutine.
func Open(dir string, opts *Options) (*Wheel, error) {
	o := *opts.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	w := &Wheel{
		dir: dir, opts: o,
		slotMs: o.SlotDuration.Milliseconds(), nslots: int64(o.Slots), perSeg: int64(o.EntriesPerSegment),
		wake: make(chan struct{}, 1), flushReq: make(chan struct{}, 1), done: make(chan struct{}),
	}
	w.mu.segs = make(map[int64]*segment)
	w.mu.inflight = make(map[int64]int32)
	w.mu.flushDone = make(chan struct{})
	if err := w.recover(); err != nil {
		w.closeFiles()
		return nil, err
	}
	w.wg.Go(w.flusher)
	return w, nil
}

func (w *Wheel) slotOf(ms int64) int64 {
	if ms < 0 {
		return (ms - w.slotMs + 1) / w.slotMs
	}
	return ms / w.slotMs
}

func (w *Wheel) ring(slot int64) int64 {
	r := slot % w.nslots
	if r < 0 {
		r += w.nslots
	}
	return r
}

func (w *Wheel) segmentPath(first int64) string {
	return filepath.Join(w.dir, "log", fmt.Sprintf("%020d", first))
}

// Add schedules ref for delivery at deliverAt. A time in the past is
// delivered at once. Under Options.SyncAdd it returns after an fsync
// covering the entry (or ctx's end: the entry may then still be durable);
// otherwise once the entry is in the page cache. It returns ErrTooFar
// beyond Options.MaxDelay, ErrClosed, or the sticky I/O error.
func (w *Wheel) Add(ctx context.Context, deliverAt time.Time, ref int64, size int32) error {
	ms := deliverAt.UnixMilli()
	if deliverAt.After(time.Now().Add(w.opts.MaxDelay)) {
		return ErrTooFar
	}
	w.mu.Lock()
	if err := w.usableLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	idx, err := w.addLocked(Entry{DeliverAt: ms, Ref: ref, Size: size})
	if err != nil {
		w.mu.Unlock()
		return err
	}
	w.mu.pending++
	w.mu.maxRef = max(w.mu.maxRef, ref)
	wake := ms < w.mu.nextWake
	if wake {
		w.mu.nextWake = ms
	}
	if !w.opts.SyncAdd {
		w.mu.Unlock()
		if wake {
			signal(w.wake)
		}
		return nil
	}
	if wake {
		signal(w.wake)
	}
	for w.mu.flushed.end <= idx {
		if err := w.usableLocked(); err != nil {
			w.mu.Unlock()
			return err
		}
		ch := w.mu.flushDone
		w.mu.Unlock()
		signal(w.flushReq)
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
	w.mu.Unlock()
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (w *Wheel) usableLocked() error {
	if w.mu.err != nil {
		return w.mu.err
	}
	if w.mu.closed {
		return ErrClosed
	}
	return nil
}

// failLocked records the first I/O error; every later call returns it.
func (w *Wheel) failLocked(err error) error {
	if w.mu.err == nil {
		w.mu.err = err
		// Wake the Adds waiting for a flush: no flush completes after a failure (flush returns
		// the error without running), so they must see the error now.
		close(w.mu.flushDone)
		w.mu.flushDone = make(chan struct{})
	}
	return w.mu.err
}

// addLocked appends e to the log and links it into its slot: the slot of
// its time, but not before the cursor (past timers fire at once) and not
// beyond the ring (a roll: it is re-added when that slot is read). It
// returns the entry's log index.
func (w *Wheel) addLocked(e Entry) (int64, error) {
	target := max(w.slotOf(e.DeliverAt), w.mu.cursor)
	target = min(target, w.mu.cursor+w.nslots-1)
	if target == w.mu.loadedEnd && w.slotOf(e.DeliverAt) < target {
		// Due in a slot already read, but the cursor has moved on to the
		// next, unread one: read that now, so the timer can go straight
		// to the heap and fire on time.
		if err := w.loadSlotLocked(target, false); err != nil {
			return 0, err
		}
	}
	pos := w.ring(target)
	rec, err := w.readRecordLocked(pos)
	if err != nil {
		return 0, err
	}
	if rec.slot != target {
		rec = slotRecord{slot: target}
	}
	idx := w.mu.end
	seg, err := w.segmentForLocked(idx)
	if err != nil {
		return 0, err
	}
	le := logEntry{deliverAt: e.DeliverAt, ref: e.Ref, size: e.Size, prev: rec.head, slot: target, seq: rec.count + 1}
	b := w.mu.buf[:entrySize]
	encodeEntry(b, &le)
	if _, err := seg.f.WriteAt(b, headerSize+(idx-seg.first)*entrySize); err != nil {
		return 0, w.failLocked(fmt.Errorf("timer: writing the log: %w", err))
	}
	w.mu.end++
	seg.dirty = true
	if target > seg.maxSlot {
		seg.maxSlot = target
		if err := w.writeSegmentHeaderLocked(seg); err != nil {
			return 0, err
		}
	}
	rec.head, rec.count = idx+1, rec.count+1
	if err := w.writeRecordLocked(pos, &rec); err != nil {
		return 0, err
	}
	if target < w.mu.loadedEnd {
		w.pushLocked(loaded{Entry: e, home: target, idx: idx})
		w.mu.inflight[target]++
	} else {
		w.mu.bits[pos/64] |= 1 << (pos % 64)
	}
	return idx, nil
}

func (w *Wheel) readRecordLocked(pos int64) (slotRecord, error) {
	var rec slotRecord
	b := w.mu.buf[:recordSize]
	if w.records != nil {
		b = w.records[pos*recordSize:]
	} else if _, err := w.wheel.ReadAt(b, headerSize+pos*recordSize); err != nil {
		return rec, w.failLocked(fmt.Errorf("timer: reading the wheel: %w", err))
	}
	if !decodeRecord(b, &rec) {
		return rec, w.failLocked(fmt.Errorf("%w: slot record %d", ErrCorrupt, pos))
	}
	return rec, nil
}

func (w *Wheel) writeRecordLocked(pos int64, rec *slotRecord) error {
	if w.records != nil {
		encodeRecord(w.records[pos*recordSize:], rec)
		return nil
	}
	b := w.mu.buf[:recordSize]
	encodeRecord(b, rec)
	if _, err := w.wheel.WriteAt(b, headerSize+pos*recordSize); err != nil {
		return w.failLocked(fmt.Errorf("timer: writing the wheel: %w", err))
	}
	return nil
}

func (w *Wheel) writeSegmentHeaderLocked(seg *segment) error {
	b := w.mu.buf[:headerSize]
	encodeHeader(b, &header{magic: segmentMagic, a: seg.first, b: seg.maxSlot})
	if _, err := seg.f.WriteAt(b, 0); err != nil {
		return w.failLocked(fmt.Errorf("timer: writing a segment header: %w", err))
	}
	seg.dirty = true
	return nil
}

// segmentForLocked returns the segment holding idx, creating it (full
// size, allocated) when idx starts a new one.
func (w *Wheel) segmentForLocked(idx int64) (*segment, error) {
	first := idx - idx%w.perSeg
	if seg := w.mu.segs[first]; seg != nil {
		return seg, nil
	}
	f, err := w.opts.FS.OpenFile(w.segmentPath(first), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, w.failLocked(fmt.Errorf("timer: creating a segment: %w", err))
	}
	if err := f.Allocate(headerSize + w.perSeg*entrySize); err != nil {
		f.Close()
		return nil, w.failLocked(fmt.Errorf("timer: allocating a segment: %w", err))
	}
	seg := &segment{first: first, f: f, maxSlot: -1 << 62}
	w.mu.segs[first] = seg
	w.mu.newSegs = true
	return seg, w.writeSegmentHeaderLocked(seg)
}

// readEntryLocked reads and validates the entry at idx.
func (w *Wheel) readEntryLocked(idx int64, e *logEntry) error {
	seg := w.mu.segs[idx-idx%w.perSeg]
	if seg == nil || idx >= w.mu.end || idx < 0 {
		return w.failLocked(fmt.Errorf("%w: log entry %d is not in the log", ErrCorrupt, idx))
	}
	b := w.mu.buf[:entrySize]
	if _, err := seg.f.ReadAt(b, headerSize+(idx-seg.first)*entrySize); err != nil {
		return w.failLocked(fmt.Errorf("timer: reading the log: %w", err))
	}
	if !decodeEntry(b, e) {
		return w.failLocked(fmt.Errorf("%w: log entry %d", ErrCorrupt, idx))
	}
	return nil
}

// flusher fsyncs the log and the wheel and writes the checkpoint every
// FlushInterval, or at once when an Add under SyncAdd waits.
func (w *Wheel) flusher() {
	t := time.NewTicker(w.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		case <-w.flushReq:
		}
		w.flush(false)
	}
}

// Sync makes every Add and every acknowledgement so far durable.
func (w *Wheel) Sync() error { return w.flush(false) }

// flush fsyncs written segments and the wheel, then writes the checkpoint
// (cursor and the log end the wheel covers), then deletes segments whose
// timers are all acknowledged durably. Order matters: the checkpoint never
// names a log end or cursor that is not durable.
func (w *Wheel) flush(clean bool) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	if w.mu.err != nil {
		defer w.mu.Unlock()
		return w.mu.err
	}
	end, cursor, maxRef := w.mu.end, w.mu.cursor, w.mu.maxRef
	if end == w.mu.flushed.end && cursor == w.mu.flushed.cursor && !clean {
		w.mu.Unlock()
		return nil
	}
	var dirty []*segment
	for _, seg := range w.mu.segs {
		if seg.dirty {
			seg.dirty = false
			dirty = append(dirty, seg)
		}
	}
	newSegs := w.mu.newSegs
	w.mu.newSegs = false
	w.mu.ckptSeq++
	seq := w.mu.ckptSeq
	w.mu.Unlock()

	err := w.syncFiles(dirty, newSegs)
	if err == nil {
		err = w.writeCheckpoint(seq, cursor, end, maxRef, clean)
	}
	w.mu.Lock()
	if err != nil {
		err = w.failLocked(err) // wakes the waiting Adds
		w.mu.Unlock()
		return err
	}
	w.mu.flushed.end, w.mu.flushed.cursor = end, cursor
	close(w.mu.flushDone)
	w.mu.flushDone = make(chan struct{})
	var drop []*segment
	for first, seg := range w.mu.segs {
		if seg.maxSlot < cursor && first+w.perSeg <= end && first+w.perSeg <= w.mu.end {
			delete(w.mu.segs, first)
			drop = append(drop, seg)
		}
	}
	w.mu.Unlock()
	for _, seg := range drop {
		seg.f.Close()
		w.opts.FS.Remove(seg.f.Name()) // a leftover is removed at the next Open
	}
	return nil
}

func (w *Wheel) syncFiles(dirty []*segment, newSegs bool) error {
	for _, seg := range dirty {
		if err := seg.f.Sync(); err != nil {
			return fmt.Errorf("timer: syncing the log: %w", err)
		}
	}
	if newSegs {
		if err := w.opts.FS.SyncDir(filepath.Join(w.dir, "log")); err != nil {
			return fmt.Errorf("timer: syncing the log directory: %w", err)
		}
	}
	if err := w.wheel.Sync(); err != nil {
		return fmt.Errorf("timer: syncing the wheel: %w", err)
	}
	return nil
}

// writeCheckpoint writes copy seq%2 of the checkpoint and fsyncs it; Open
// takes the valid copy with the higher sequence, so a torn write loses
// only the newest checkpoint.
func (w *Wheel) writeCheckpoint(seq, cursor, end, maxRef int64, clean bool) error {
	var b [headerSize]byte
	h := header{magic: ckptMagic, a: cursor, b: end, c: seq, d: w.slotMs, e: maxRef}
	if clean {
		h.flags = flagClean
	}
	encodeHeader(b[:], &h)
	if _, err := w.ckpt.WriteAt(b[:], (seq%2)*ckptCopyOffset); err != nil {
		return fmt.Errorf("timer: writing the checkpoint: %w", err)
	}
	if err := w.ckpt.Sync(); err != nil {
		return fmt.Errorf("timer: syncing the checkpoint: %w", err)
	}
	return nil
}

// MaxRef returns the highest ref ever passed to Add that the wheel holds
// (after a crash: that recovery found), or math.MinInt64 if none. A caller
// that adds timers in the order of a log it owns (the commit-log offsets
// of the timer topic) can Add without fsync and, after Open, re-add every
// message of that log beyond MaxRef: the timers a crash lost between the
// caller's append and Add.
func (w *Wheel) MaxRef() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.maxRef
}

// Stats returns counters and sizes.
func (w *Wheel) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	loadedCount := 0
	for _, c := range w.mu.inflight {
		loadedCount += int(c)
	}
	return Stats{
		Pending:     w.mu.pending,
		Loaded:      loadedCount,
		Rolled:      w.mu.rolled,
		Delivered:   w.mu.delivered,
		MemoryBytes: int64(cap(w.mu.heap))*int64(sizeofLoaded) + int64(len(w.mu.bits))*8 + int64(len(w.mu.inflight))*48 + int64(len(w.mu.segs))*128,
		LogBytes:    int64(len(w.mu.segs)) * (headerSize + w.perSeg*entrySize),
		Segments:    len(w.mu.segs),
		Cursor:      time.UnixMilli(w.mu.cursor * w.slotMs),
	}
}

const sizeofLoaded = 40

// Close waits for Run to return, stops the flusher, writes a final
// checkpoint (marked clean, so the next Open skips validation) and closes
// the files. It returns the sticky error, if any.
func (w *Wheel) Close() error {
	w.mu.Lock()
	if w.mu.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.mu.closed = true
	w.mu.Unlock()
	close(w.done)
	w.runWG.Wait()
	w.wg.Wait()
	err := w.flush(true)
	w.closeFiles()
	return err
}

func (w *Wheel) closeFiles() {
	for _, seg := range w.mu.segs {
		seg.f.Close()
	}
	if w.mapped != nil {
		vfs.Unmap(w.mapped)
		w.mapped, w.records = nil, nil
	}
	if w.wheel != nil {
		w.wheel.Close()
	}
	if w.ckpt != nil {
		w.ckpt.Close()
	}
}

// nextSetLocked returns the first ring position at or after slot from
// (in slot order, up to slot to) whose bit is set.
func (w *Wheel) nextSetLocked(from, to int64) (int64, bool) {
	for s := from; s <= to; {
		pos := w.ring(s)
		word := w.mu.bits[pos/64] >> (pos % 64)
		if word != 0 {
			s += int64(bits.TrailingZeros64(word))
			if s <= to {
				return s, true
			}
			return 0, false
		}
		s += min(64-pos%64, w.nslots-pos) // the last word of the ring may be partial
	}
	return 0, false
}
