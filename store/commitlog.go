package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/format"
	"github.com/apogeemq/apogee/store/vfs"
)

// segment is one commit-log file, allocated at its full size. It holds
// records back to back, then zeros, or a blank marker at the very end.
type segment struct {
	start int64 // commit-log offset of byte 0, also the file name
	file  vfs.File
	// data maps the whole file, or is nil when mapping failed; then writes
	// and reads go through file.
	data []byte
	// prefaulted is the end of the part of data made present by Prefault
	// (-1: prefaulting unsupported). Advanced by the prefaulter.
	prefaulted atomic.Int64
	// nextAsked is set when the appender has asked for the next segment
	// to be created ahead of need.
	nextAsked atomic.Bool
}

const (
	// prefaultChunk is how much of a mapping one Prefault call covers.
	prefaultChunk = 2 << 20
	// prefaultAhead is how far ahead of the write position the
	// prefaulter keeps the active segment's pages present. The pages are
	// dirty zeros until the writer fills them, so every fsync writes up to
	// this much extra; it only has to cover the writer while the
	// prefaulter waits for a CPU.
	prefaultAhead = 16 << 20
	// pageSize is a multiple of the page size (mapping offsets passed to
	// madvise must be aligned to it).
	pageSize = 64 << 10
)

// write copies b to position pos of the segment. Through the mapping it is
// a memcpy into the page cache (no system call, and it cannot fail: the
// blocks are allocated); otherwise a pwrite.
func (s *segment) write(b []byte, pos int64) error {
	if s.data != nil {
		copy(s.data[pos:], b)
		return nil
	}
	_, err := s.file.WriteAt(b, pos)
	return err
}

// read fills b from position pos.
func (s *segment) read(b []byte, pos int64) error {
	if s.data != nil {
		if pos+int64(len(b)) > int64(len(s.data)) {
			return io.ErrUnexpectedEOF
		}
		copy(b, s.data[pos:])
		return nil
	}
	n, err := s.file.ReadAt(b, pos)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (s *segment) close() error {
	var err error
	if s.data != nil {
		err = vfs.Unmap(s.data)
		s.data = nil
	}
	return errors.Join(err, s.file.Close())
}

// openSegment makes sure the file is allocated at full size and maps it.
func (cl *commitLog) openSegment(start int64, f vfs.File) (*segment, error) {
	if err := f.Allocate(cl.segmentSize); err != nil {
		return nil, err
	}
	seg := &segment{start: start, file: f}
	if m, ok := f.(vfs.Mapper); ok && !cl.noMap {
		data, err := m.Map(int(cl.segmentSize))
		if err == nil {
			seg.data = data
		} else {
			cl.mapFailed(err)
		}
	}
	return seg, nil
}

// commitLog is the shared append-only log. Writes are serialized by the
// Store's append lock; segments are guarded by mu so readers can look them
// up while the writer rolls and the cleaner deletes.
type commitLog struct {
	fs          vfs.FS
	dir         string
	segmentSize int64
	mapFailed   func(error) // reports a segment that is written with pwrite
	// noMap leaves segments unmapped (pwrite and pread only). Set under
	// SyncFlush: each fsync must write-protect every page of the file that
	// is mapped in the process (TLB shootdowns, then a fault on the next
	// write), which measured 37-45k vs 64-68k msgs/s with 64 appenders of
	// 1 KiB. Under AsyncFlush fsyncs are rare and the mapping wins
	// (no system call per append).
	noMap bool

	mu struct {
		sync.RWMutex
		segments []*segment // sorted by start. Protected by mu.
	}
	// createMu serializes creating segments (the appender and the
	// prefaulter, which creates the next one ahead of need).
	createMu sync.Mutex

	// written is the end of the last complete write: every byte below it
	// is in the page cache and readable. Advanced by the appender.
	written atomic.Int64
	// minOffset is the start of the first segment (bytes below were deleted).
	minOffset atomic.Int64
}

func openCommitLog(fs vfs.FS, dir string, segmentSize int64, noMap bool, mapFailed func(error)) (*commitLog, error) {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cl := &commitLog{fs: fs, dir: dir, segmentSize: segmentSize, noMap: noMap, mapFailed: mapFailed}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		start, ok := format.ParseSegmentName(name)
		if !ok {
			continue
		}
		if start%segmentSize != 0 {
			return nil, fmt.Errorf("store: segment %s does not match segment size %d", name, segmentSize)
		}
		f, err := fs.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
		if err != nil {
			cl.close()
			return nil, err
		}
		seg, err := cl.openSegment(start, f)
		if err != nil {
			f.Close()
			cl.close()
			return nil, err
		}
		cl.mu.segments = append(cl.mu.segments, seg)
	}
	for i := 1; i < len(cl.mu.segments); i++ {
		if cl.mu.segments[i].start != cl.mu.segments[i-1].start+segmentSize {
			cl.close()
			return nil, fmt.Errorf("store: commit log has a gap before segment %s", format.SegmentName(cl.mu.segments[i].start))
		}
	}
	if len(cl.mu.segments) > 0 {
		cl.minOffset.Store(cl.mu.segments[0].start)
	}
	return cl, nil
}

func (cl *commitLog) close() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var errs []error
	for _, s := range cl.mu.segments {
		errs = append(errs, s.close())
	}
	cl.mu.segments = nil
	return errors.Join(errs...)
}

// segmentForLocked returns the segment holding offset, or nil. cl.mu must
// be held.
func (cl *commitLog) segmentForLocked(offset int64) *segment {
	segs := cl.mu.segments
	i := sort.Search(len(segs), func(i int) bool { return segs[i].start+cl.segmentSize > offset })
	if i == len(segs) || segs[i].start > offset {
		return nil
	}
	return segs[i]
}

// last returns the newest segment, or nil.
func (cl *commitLog) last() *segment {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	if n := len(cl.mu.segments); n > 0 {
		return cl.mu.segments[n-1]
	}
	return nil
}

// segmentFor returns the segment holding offset, or nil.
func (cl *commitLog) segmentFor(offset int64) *segment {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	return cl.segmentForLocked(offset)
}

// readAt reads len(b) bytes at commit-log offset off, which must lie in one
// segment below written. It returns ErrNotFound for deleted or unwritten
// ranges.
func (cl *commitLog) readAt(b []byte, off int64) error {
	if off < cl.minOffset.Load() || off+int64(len(b)) > cl.written.Load() {
		return ErrNotFound
	}
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	seg := cl.segmentForLocked(off)
	if seg == nil || off-seg.start+int64(len(b)) > cl.segmentSize {
		return ErrNotFound
	}
	return seg.read(b, off-seg.start)
}

// createSegment returns the segment starting at start, creating it and
// reserving its blocks unless the prefaulter already did. It must directly
// follow the newest segment (or be the first).
func (cl *commitLog) createSegment(start int64) (*segment, error) {
	cl.createMu.Lock()
	defer cl.createMu.Unlock()
	if seg := cl.segmentFor(start); seg != nil && seg.start == start {
		return seg, nil
	}
	path := filepath.Join(cl.dir, format.SegmentName(start))
	f, err := cl.fs.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	seg, err := cl.openSegment(start, f)
	if err == nil {
		if err = cl.fs.SyncDir(cl.dir); err != nil {
			seg.close()
		}
	} else {
		f.Close()
	}
	if err != nil {
		cl.fs.Remove(path)
		return nil, err
	}
	cl.mu.Lock()
	cl.mu.segments = append(cl.mu.segments, seg)
	if len(cl.mu.segments) == 1 {
		cl.minOffset.Store(start)
	}
	cl.mu.Unlock()
	return seg, nil
}

// sync fdatasyncs every segment overlapping [from, to). It holds mu shared
// so the cleaner cannot close a file under it.
func (cl *commitLog) sync(from, to int64) error {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	for _, s := range cl.mu.segments {
		if s.start < to && s.start+cl.segmentSize > from {
			if err := s.file.Sync(); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeSegments deletes up to max of the oldest segments, stopping at the
// first one keep wants and never deleting the newest.
func (cl *commitLog) removeSegments(keep func(*segment) bool, max int) (removed int, err error) {
	// Nearly every call finds nothing to delete. Decide that under the read lock: a writer queued
	// for the lock holds up every new reader, the appender among them, behind an fsync in progress
	// (sync holds the read lock), which under SYNC_FLUSH turned a flush timeout into a stall.
	cl.mu.RLock()
	none := len(cl.mu.segments) <= 1 || keep(cl.mu.segments[0])
	cl.mu.RUnlock()
	if none || max <= 0 {
		return 0, nil
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for removed < max && len(cl.mu.segments) > 1 && !keep(cl.mu.segments[0]) {
		s := cl.mu.segments[0]
		s.close()
		if err := cl.fs.Remove(filepath.Join(cl.dir, format.SegmentName(s.start))); err != nil {
			return removed, err
		}
		cl.mu.segments = cl.mu.segments[1:]
		cl.minOffset.Store(cl.mu.segments[0].start)
		removed++
	}
	return removed, nil
}

// scanner walks the records of the commit log from an offset, reading
// segments in large chunks. It is used by recovery.
type scanner struct {
	cl  *commitLog
	buf []byte
	// buf[:hi] holds commit-log bytes [base, base+hi) (unmapped segments).
	base   int64
	hi     int
	off    int64 // offset of the next record
	seg    *segment
	segLen int64 // file size of seg
}

const scanChunk = 4 << 20

func (cl *commitLog) newScanner(from int64) *scanner {
	return &scanner{cl: cl, buf: make([]byte, scanChunk), off: from}
}

// next returns the next valid record (checking its CRC and that
// PHYSICALOFFSET matches its position), skipping blank markers into the next
// segment. At the end of the valid log it returns ok=false with err nil when
// the log ends cleanly, or with the corruption found.
func (sc *scanner) next() (view message.RecordView, ok bool, err error) {
	for {
		if sc.seg == nil || sc.off >= sc.seg.start+sc.cl.segmentSize {
			sc.cl.mu.RLock()
			sc.seg = sc.cl.segmentForLocked(sc.off)
			sc.cl.mu.RUnlock()
			if sc.seg == nil {
				return view, false, nil
			}
			if sc.segLen, err = sc.seg.file.Size(); err != nil {
				return view, false, err
			}
			sc.hi, sc.base = 0, sc.off
		}
		pos := sc.off - sc.seg.start // position in the file
		if pos+format.BlankSize > sc.segLen {
			return view, false, nil // end of the file
		}
		b, err := sc.window(8)
		if err != nil {
			return view, false, err
		}
		size, magic, _ := message.PeekSize(b)
		if size == 0 && magic == 0 {
			return view, false, nil // end of written data: allocated zeros
		}
		if magic == message.MagicBlank {
			if int64(size) != sc.seg.start+sc.cl.segmentSize-sc.off || size < format.BlankSize {
				return view, false, fmt.Errorf("%w: blank marker of %d bytes at %d", message.ErrCorrupt, size, sc.off)
			}
			sc.off += int64(size)
			sc.seg = nil
			continue
		}
		if size < message.MinRecordSize || int64(size) > sc.cl.segmentSize-pos-format.BlankSize {
			return view, false, fmt.Errorf("%w: record size %d at %d", message.ErrCorrupt, size, sc.off)
		}
		if b, err = sc.window(int(size)); err != nil {
			return view, false, err
		}
		view, err = message.ParseRecord(b, true)
		if err != nil {
			return view, false, fmt.Errorf("at %d: %w", sc.off, err)
		}
		if view.CommitLogOffset != sc.off {
			return view, false, fmt.Errorf("%w: record at %d says it is at %d", message.ErrCorrupt, sc.off, view.CommitLogOffset)
		}
		sc.off += int64(size)
		return view, true, nil
	}
}

// window returns n bytes at sc.off, reading more of the segment as needed
// (or slicing its mapping). Bytes past the end of the file are a torn tail
// (ErrCorrupt).
func (sc *scanner) window(n int) ([]byte, error) {
	if d := sc.seg.data; d != nil {
		pos := sc.off - sc.seg.start
		if pos+int64(n) > int64(len(d)) {
			return nil, fmt.Errorf("%w: torn record at %d", message.ErrCorrupt, sc.off)
		}
		return d[pos : pos+int64(n)], nil
	}
	start := int(sc.off - sc.base)
	if start+n <= sc.hi {
		return sc.buf[start : start+n], nil
	}
	if n > len(sc.buf) {
		sc.buf = make([]byte, n)
	}
	pos := sc.off - sc.seg.start
	want := min(int64(len(sc.buf)), sc.segLen-pos)
	if want < int64(n) {
		return nil, fmt.Errorf("%w: torn record at %d (%d of %d bytes)", message.ErrCorrupt, sc.off, want, n)
	}
	got, err := sc.seg.file.ReadAt(sc.buf[:want], pos)
	if got < n {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: short read at %d", message.ErrCorrupt, sc.off)
		}
		return nil, err
	}
	sc.base, sc.hi = sc.off, got
	return sc.buf[:n], nil
}

// truncate makes end the end of the log: the segment holding it is zeroed
// from there (a torn record leaves garbage that a later scan must not
// mistake for data) and later segments are deleted.
func (cl *commitLog) truncate(end int64) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for len(cl.mu.segments) > 0 {
		s := cl.mu.segments[len(cl.mu.segments)-1]
		if s.start < end || (s.start == end && len(cl.mu.segments) == 1) {
			if err := cl.zeroTail(s, end-s.start); err != nil {
				return err
			}
			break
		}
		s.close()
		if err := cl.fs.Remove(filepath.Join(cl.dir, format.SegmentName(s.start))); err != nil {
			return err
		}
		cl.mu.segments = cl.mu.segments[:len(cl.mu.segments)-1]
	}
	if len(cl.mu.segments) == 0 {
		cl.minOffset.Store(end)
	}
	cl.written.Store(end)
	return cl.fs.SyncDir(cl.dir)
}

// zeroTail zeroes the segment from pos up to the first 64 KiB run that is
// already all zeros (allocated space never written), then fsyncs. A torn
// record is a prefix of one append; what could survive this is a fragment
// after a long run of zeros inside a body, and a scan never takes a
// fragment for a record (magic, CRC and position must all match).
func (cl *commitLog) zeroTail(s *segment, pos int64) error {
	const block = 64 << 10
	buf := make([]byte, block)
	zero := make([]byte, block)
	wrote := false
	for pos < cl.segmentSize {
		n := min(block, cl.segmentSize-pos)
		if err := s.read(buf[:n], pos); err != nil {
			return err
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			break
		}
		if err := s.write(zero[:n], pos); err != nil {
			return err
		}
		wrote = true
		pos += n
	}
	if !wrote {
		return nil
	}
	return s.file.Sync()
}

// prefault makes the active segment's pages present and writable up to
// prefaultAhead past the write position, so the appender's copy takes no
// page fault at all: allocating and zeroing the page cache pages and the
// write fault move to the prefaulter goroutine, in prefaultChunk calls.
func (cl *commitLog) prefault() {
	pos := cl.written.Load()
	cl.mu.RLock()
	seg := cl.segmentForLocked(pos)
	if seg != nil {
		cl.prefaultLocked(seg, pos-seg.start)
	}
	cl.mu.RUnlock()
}

// prefaultLocked prefaults seg from pos. It starts at the write position:
// pages below it are never written again (and populating them for writing
// would dirty them, so the next fsync would write them again). cl.mu must
// be held shared so the segment cannot be unmapped underneath.
func (cl *commitLog) prefaultLocked(seg *segment, pos int64) {
	if seg.data == nil {
		return
	}
	target := min(pos+prefaultAhead, int64(len(seg.data)))
	for {
		done := seg.prefaulted.Load()
		if done < 0 || done >= target {
			return
		}
		done = max(done, pos&^(pageSize-1))
		next := min(done+prefaultChunk, int64(len(seg.data)))
		if vfs.Prefault(seg.data[done:next]) != nil {
			seg.prefaulted.Store(-1) // unsupported: writes fault pages in
			return
		}
		seg.prefaulted.Store(next)
	}
}

// releaseKeep is how much of the newest flushed log stays mapped into the process when the rest is
// released: consumers reading at the tail keep finding it there.
const releaseKeep = 32 << 20

// release unmaps from the process the mapped pages of the log below below minus releaseKeep. Without
// it every page written or read through the mappings counted in the broker's resident size, up to the
// size of a segment (1 GiB) and more, although it is page cache the kernel can reclaim; with it the
// resident size reflects the process's own memory. Pages below the flushed offset are clean, so this
// costs nothing but a minor fault should they be read again.
func (cl *commitLog) release(below int64) {
	below = (below - releaseKeep) &^ (pageSize - 1)
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	for _, seg := range cl.mu.segments {
		if seg.data == nil || seg.start >= below {
			continue
		}
		end := min(below-seg.start, int64(len(seg.data)))
		vfs.Release(seg.data[:end])
	}
}

// createNext creates the segment after the one being written, if there is
// none, and prefaults its start. Creating a segment costs a directory
// fsync, which on ext4 waits for a journal commit (measured: up to 0.5 s
// while gigabytes of the last segment were being written back); done by
// the appender when it rolls, that stalled every append. Errors are only
// logged: the appender then creates the segment itself and handles them.
func (cl *commitLog) createNext() error {
	seg := cl.segmentFor(cl.written.Load())
	if seg == nil || cl.last() != seg {
		return nil // nothing written yet, or the next one exists
	}
	next, err := cl.createSegment(seg.start + cl.segmentSize)
	if err != nil {
		return err
	}
	cl.mu.RLock()
	if len(cl.mu.segments) > 0 && cl.mu.segments[len(cl.mu.segments)-1] == next {
		cl.prefaultLocked(next, 0)
	}
	cl.mu.RUnlock()
	return nil
}

// needsPrefault reports whether the prefaulter should run for a write
// ending at end of seg.
func (s *segment) needsPrefault(end int64) bool {
	done := s.prefaulted.Load()
	return s.data != nil && done >= 0 && end-s.start+prefaultAhead/2 > done
}
