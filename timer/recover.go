package timer

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/apogeemq/apogee/store/vfs"
)

// recover opens the files of w.dir and brings the wheel to a consistent
// state (see doc.go, Recovery). It runs before any goroutine starts.
func (w *Wheel) recover() error {
	fs := w.opts.FS
	logDir := filepath.Join(w.dir, "log")
	if err := fs.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("timer: %w", err)
	}
	records, fresh, err := w.openWheelFile()
	if err != nil {
		return err
	}
	ck, haveCkpt, err := w.openCheckpoint()
	if err != nil {
		return err
	}
	if err := w.openSegments(logDir); err != nil {
		return err
	}
	firsts := slices.Sorted(maps.Keys(w.mu.segs))
	cursor, from, clean := w.slotOf(time.Now().UnixMilli()), int64(0), true
	w.mu.maxRef = math.MinInt64
	rebuild := false
	switch {
	case haveCkpt:
		cursor, from, clean = ck.a, ck.b, ck.flags&flagClean != 0
		w.mu.maxRef = ck.e
		w.mu.ckptSeq = ck.c
	case len(firsts) > 0 || !fresh:
		// The checkpoint is gone but a log exists: rebuild everything and
		// start from the earliest pending slot.
		clean, rebuild, cursor = false, true, math.MinInt64
	}
	if len(firsts) > 0 {
		from = max(from, firsts[0])
	}

	// Replay the log past the checkpoint into the slot records; its first
	// invalid entry is the end (a torn tail).
	end, err := w.scan(from, math.MaxInt64, func(idx int64, e *logEntry) { w.apply(records, idx, e) })
	if err != nil {
		return err
	}
	if err := w.cutTail(end); err != nil {
		return err
	}
	w.mu.end = end

	if !clean && !rebuild {
		rebuild = !w.recordsValid(records, cursor)
	}
	if rebuild {
		clear(records)
		// Segments are deleted out of order, so scan each one.
		chains := make(map[int64][2]uint32) // slot -> entries found, highest seq
		for _, first := range firsts {
			seg := w.mu.segs[first]
			if seg == nil {
				continue // cut with the tail
			}
			seg.maxSlot = math.MinInt64 >> 1
			_, err := w.scan(first, min(first+w.perSeg, end), func(idx int64, e *logEntry) {
				w.apply(records, idx, e)
				c := chains[e.slot]
				chains[e.slot] = [2]uint32{c[0] + 1, max(c[1], e.seq)}
			})
			if err != nil {
				return err
			}
		}
		// A chain that lacks entries lost them with a deleted segment,
		// which happens only once its slot, and every slot before it, was
		// acknowledged durably: start after it.
		incomplete := int64(math.MinInt64)
		for slot, c := range chains {
			if c[0] != c[1] {
				incomplete = max(incomplete, slot)
			}
		}
		if cursor == math.MinInt64 {
			cursor = w.slotOf(time.Now().UnixMilli())
			for pos := range w.nslots {
				var rec slotRecord
				if decodeRecord(records[pos*recordSize:], &rec) && rec.head > 0 {
					cursor = min(cursor, rec.slot)
				}
			}
		}
		if incomplete != math.MinInt64 {
			cursor = max(cursor, incomplete+1)
		}
	}
	// A record of slot s proves the cursor had passed s-Slots when it was
	// written (Add never links beyond the ring), even if that checkpoint
	// was lost: start there, or its ring position would be taken twice.
	w.mu.bits = make([]uint64, (w.nslots+63)/64)
	for pos := range w.nslots {
		var rec slotRecord
		if !decodeRecord(records[pos*recordSize:], &rec) {
			return fmt.Errorf("%w: slot record %d after rebuild", ErrCorrupt, pos)
		}
		if rec.head > 0 {
			cursor = max(cursor, rec.slot-w.nslots+1)
		}
	}
	for pos := range w.nslots {
		var rec slotRecord
		decodeRecord(records[pos*recordSize:], &rec)
		if rec.head > 0 && rec.slot >= cursor {
			w.mu.bits[pos/64] |= 1 << (pos % 64)
			w.mu.pending += int64(rec.count)
		}
	}
	if !clean && w.records == nil {
		if _, err := w.wheel.WriteAt(records, headerSize); err != nil {
			return fmt.Errorf("timer: writing the wheel: %w", err)
		}
	}
	w.mu.cursor, w.mu.loadedEnd = cursor, cursor
	w.mu.nextWake = math.MaxInt64
	// Mark the directory in use (not clean) with a durable checkpoint.
	if err := w.syncFiles(slices.Collect(maps.Values(w.mu.segs)), true); err != nil {
		return err
	}
	if fresh {
		if err := fs.SyncDir(w.dir); err != nil {
			return fmt.Errorf("timer: syncing %s: %w", w.dir, err)
		}
	}
	w.mu.ckptSeq++
	if err := w.writeCheckpoint(w.mu.ckptSeq, cursor, end, w.mu.maxRef, false); err != nil {
		return err
	}
	w.mu.flushed.end, w.mu.flushed.cursor = end, cursor
	return nil
}

func (w *Wheel) openWheelFile() (records []byte, fresh bool, err error) {
	size := headerSize + w.nslots*recordSize
	f, err := w.opts.FS.OpenFile(filepath.Join(w.dir, "wheel"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("timer: %w", err)
	}
	w.wheel = f
	got, err := f.Size()
	if err != nil {
		return nil, false, fmt.Errorf("timer: %w", err)
	}
	var b [headerSize]byte
	if got < headerSize {
		fresh = true
		if err := f.Allocate(size); err != nil {
			return nil, false, fmt.Errorf("timer: allocating the wheel: %w", err)
		}
		encodeHeader(b[:], &header{magic: wheelMagic, a: w.slotMs, b: w.nslots})
		if _, err := f.WriteAt(b[:], 0); err != nil {
			return nil, false, fmt.Errorf("timer: writing the wheel: %w", err)
		}
	} else {
		var h header
		if _, err := f.ReadAt(b[:], 0); err != nil {
			return nil, false, fmt.Errorf("timer: reading the wheel: %w", err)
		}
		if !decodeHeader(b[:], wheelMagic, &h) {
			return nil, false, fmt.Errorf("%w: wheel header", ErrCorrupt)
		}
		if h.a != w.slotMs || h.b != w.nslots {
			return nil, false, fmt.Errorf("%w: directory has %d ms x %d slots", ErrOptionsChanged, h.a, h.b)
		}
		if got < size {
			if err := f.Allocate(size); err != nil {
				return nil, false, fmt.Errorf("timer: allocating the wheel: %w", err)
			}
		}
	}
	// Map the slot records when the filesystem can (the file is allocated
	// in full, so touching the mapping cannot fault): an Add then costs
	// one pwrite, and the records live in the page cache, not the heap.
	if m, ok := f.(vfs.Mapper); ok {
		if b, err := m.Map(int(size)); err == nil {
			w.mapped = b
			w.records = b[headerSize:]
			return w.records, fresh, nil
		}
	}
	records = make([]byte, w.nslots*recordSize)
	if _, err := f.ReadAt(records, headerSize); err != nil {
		return nil, false, fmt.Errorf("timer: reading the wheel: %w", err)
	}
	return records, fresh, nil
}

func (w *Wheel) openCheckpoint() (header, bool, error) {
	f, err := w.opts.FS.OpenFile(filepath.Join(w.dir, "checkpoint"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return header{}, false, fmt.Errorf("timer: %w", err)
	}
	w.ckpt = f
	var best header
	found := false
	for _, off := range []int64{0, ckptCopyOffset} {
		var b [headerSize]byte
		var h header
		if n, _ := f.ReadAt(b[:], off); n == headerSize && decodeHeader(b[:], ckptMagic, &h) && (!found || h.c > best.c) {
			best, found = h, true
		}
	}
	if found && best.d != w.slotMs {
		return header{}, false, fmt.Errorf("%w: checkpoint has %d ms slots", ErrOptionsChanged, best.d)
	}
	return best, found, nil
}

func (w *Wheel) openSegments(logDir string) error {
	names, err := w.opts.FS.List(logDir)
	if err != nil {
		return fmt.Errorf("timer: %w", err)
	}
	size := headerSize + w.perSeg*entrySize
	for i, name := range names {
		first, err := strconv.ParseInt(name, 10, 64)
		if err != nil || len(name) != 20 {
			continue // not ours
		}
		f, err := w.opts.FS.OpenFile(filepath.Join(logDir, name), os.O_RDWR, 0o644)
		if err != nil {
			return fmt.Errorf("timer: %w", err)
		}
		var b [headerSize]byte
		var h header
		got, _ := f.Size()
		n, _ := f.ReadAt(b[:], 0)
		if n < headerSize || !decodeHeader(b[:], segmentMagic, &h) || h.a != first {
			f.Close()
			if i == len(names)-1 {
				// Created just before a crash: nothing acknowledged is in it.
				w.opts.FS.Remove(filepath.Join(logDir, name))
				continue
			}
			return fmt.Errorf("%w: segment %s header", ErrCorrupt, name)
		}
		if first%w.perSeg != 0 || got != size {
			f.Close()
			return fmt.Errorf("%w: segment %s is %d bytes; EntriesPerSegment=%d wants %d", ErrOptionsChanged, name, got, w.perSeg, size)
		}
		w.mu.segs[first] = &segment{first: first, f: f, maxSlot: h.b}
	}
	return nil
}

// scan reads valid entries from index from up to limit (exclusive),
// through consecutive segments, and returns the index of the first
// missing or invalid entry.
func (w *Wheel) scan(from, limit int64, fn func(idx int64, e *logEntry)) (int64, error) {
	const chunk = 4096
	buf := make([]byte, chunk*entrySize)
	idx := from
	for idx < limit {
		seg := w.mu.segs[idx-idx%w.perSeg]
		if seg == nil {
			return idx, nil
		}
		n := min(chunk, seg.first+w.perSeg-idx, limit-idx)
		b := buf[:n*entrySize]
		if _, err := seg.f.ReadAt(b, headerSize+(idx-seg.first)*entrySize); err != nil {
			return 0, fmt.Errorf("timer: reading the log: %w", err)
		}
		for i := range n {
			var e logEntry
			if !decodeEntry(b[i*entrySize:], &e) {
				return idx, nil
			}
			seg.maxSlot = max(seg.maxSlot, e.slot)
			w.mu.maxRef = max(w.mu.maxRef, e.ref)
			fn(idx, &e)
			idx++
		}
	}
	return idx, nil
}

// apply links the entry at idx into its slot record, unless the record
// already holds a later slot of the same ring position.
func (w *Wheel) apply(records []byte, idx int64, e *logEntry) {
	b := records[w.ring(e.slot)*recordSize:]
	var rec slotRecord
	if decodeRecord(b, &rec) && rec.head > 0 && rec.slot > e.slot {
		return
	}
	rec = slotRecord{slot: e.slot, head: idx + 1, count: e.seq}
	encodeRecord(b, &rec)
}

// cutTail zeroes leftover entries after end in its segment (so a later
// scan cannot mistake them for entries) and removes later segments.
func (w *Wheel) cutTail(end int64) error {
	for first, seg := range w.mu.segs {
		if first > end-end%w.perSeg {
			seg.f.Close()
			delete(w.mu.segs, first)
			if err := w.opts.FS.Remove(w.segmentPath(first)); err != nil {
				return fmt.Errorf("timer: %w", err)
			}
		}
	}
	seg := w.mu.segs[end-end%w.perSeg]
	if seg == nil {
		return nil
	}
	zero := make([]byte, entrySize)
	b := make([]byte, entrySize)
	for idx := end; idx < seg.first+w.perSeg; idx++ {
		off := headerSize + (idx-seg.first)*entrySize
		if _, err := seg.f.ReadAt(b, off); err != nil {
			return fmt.Errorf("timer: reading the log: %w", err)
		}
		if !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
			break
		}
		if _, err := seg.f.WriteAt(zero, off); err != nil {
			return fmt.Errorf("timer: writing the log: %w", err)
		}
	}
	return nil
}

// recordsValid checks every live slot record against the entry it points
// to: in the log, same slot, same chain length.
func (w *Wheel) recordsValid(records []byte, cursor int64) bool {
	b := make([]byte, entrySize)
	for pos := range w.nslots {
		var rec slotRecord
		if !decodeRecord(records[pos*recordSize:], &rec) {
			return false
		}
		if rec.head == 0 || rec.slot < cursor {
			continue
		}
		idx := rec.head - 1
		seg := w.mu.segs[idx-idx%w.perSeg]
		if idx >= w.mu.end || seg == nil {
			return false
		}
		var e logEntry
		if _, err := seg.f.ReadAt(b, headerSize+(idx-seg.first)*entrySize); err != nil || !decodeEntry(b, &e) ||
			e.slot != rec.slot || e.seq != rec.count {
			return false
		}
	}
	return true
}
