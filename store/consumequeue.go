package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/apogeemq/apogee/store/format"
	"github.com/apogeemq/apogee/store/vfs"
)

// queueKey names a consume queue.
type queueKey struct {
	topic   string
	queueID int32
}

// cqFile is one consume-queue file; start is the byte position (20 * the
// queue offset of its first entry) and the file name.
type cqFile struct {
	start int64
	file  vfs.File
}

// cqWriteChunk is how many bytes of entries the dispatcher lets a queue's
// tail hold before it writes them to the file. Writing per dispatch batch
// cost a pwrite per message when producers send one message at a time; at
// 4 KiB one pwrite covers about 200 entries, and a tail holds at most a
// chunk plus one batch (the checkpointer writes the rest), unless writes
// fail for lack of space.
const cqWriteChunk = 4 << 10

// consumeQueue is the 20-byte-entry index of one topic queue. Only the
// dispatcher (and recovery, before it starts) appends; readers look entries
// up concurrently.
//
// The newest entries live in memory (the tail) until the dispatcher has a
// chunk of them or the checkpointer needs them on disk; readers see the
// tail as part of the queue. Consume queues are derived from the commit
// log, and the checkpoint only claims what the checkpointer wrote and
// fsynced, so a crash loses nothing recovery does not rebuild.
type consumeQueue struct {
	topic    string
	queueID  int32
	fs       vfs.FS
	dir      string
	fileSize int64 // bytes per file, a multiple of 20

	mu struct {
		sync.RWMutex
		files []*cqFile // sorted by start. Protected by mu.
		// tail holds the readable entries not yet written to the files,
		// from byte position tailPos (the end of the written part) up to
		// maxOffset. Protected by mu; only writeTail removes from it.
		tail    []byte
		tailPos int64
	}
	// writing serializes writeTail (dispatcher, checkpointer). Held
	// around mu, never inside it.
	writing sync.Mutex

	// minOffset is the first readable queue offset; maxOffset the next
	// offset to be written (entries below it are readable).
	minOffset atomic.Int64
	maxOffset atomic.Int64

	// pending holds the encoded entries of the dispatch batch, starting at
	// queue offset maxOffset; publish makes them readable. Dispatcher only.
	pending []byte
	// syncedPos is the byte position below which entries are durable.
	// Checkpointer only (and recovery, before it starts).
	syncedPos int64
}

func cqDir(root, topic string, queueID int32) string {
	return filepath.Join(root, topic, strconv.Itoa(int(queueID)))
}

// openConsumeQueue opens (or creates the directory of) a consume queue and
// loads its files. It cuts off entries that point at or past logEnd and
// entries that do not look written, and sets minOffset to the first entry at
// or past logMin.
func openConsumeQueue(fs vfs.FS, dir string, entriesPerFile int, logMin, logEnd int64) (*consumeQueue, error) {
	cq := &consumeQueue{fs: fs, dir: dir, fileSize: int64(entriesPerFile) * format.CQUnitSize}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Make the queue's directories durable: the checkpoint will promise
	// entries in files under them.
	topicDir := filepath.Dir(dir)
	if err := errors.Join(fs.SyncDir(topicDir), fs.SyncDir(filepath.Dir(topicDir))); err != nil {
		return nil, err
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		start, ok := format.ParseSegmentName(name)
		if !ok || start%cq.fileSize != 0 {
			continue
		}
		f, err := fs.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
		if err != nil {
			cq.close()
			return nil, err
		}
		cq.mu.files = append(cq.mu.files, &cqFile{start: start, file: f})
	}
	if err := cq.recover(logMin, logEnd); err != nil {
		cq.close()
		return nil, err
	}
	return cq, nil
}

// recover sets min and max offsets from the files; see openConsumeQueue.
// Not concurrent with anything.
func (cq *consumeQueue) recover(logMin, logEnd int64) error {
	if err := cq.writeTail(true); err != nil { // the cut below works on the files
		return err
	}
	var unit [format.CQUnitSize]byte
	// Find the end: the last entry that is valid and inside the log.
	for len(cq.mu.files) > 0 {
		last := cq.mu.files[len(cq.mu.files)-1]
		size, err := last.file.Size()
		if err != nil {
			return err
		}
		size -= size % format.CQUnitSize
		for size > 0 {
			if _, err := last.file.ReadAt(unit[:], size-format.CQUnitSize); err != nil {
				return err
			}
			u := format.DecodeCQUnit(unit[:])
			if u.Valid() && u.CommitLogOffset+int64(u.Size) <= logEnd {
				break
			}
			size -= format.CQUnitSize
		}
		if size > 0 || len(cq.mu.files) == 1 {
			if err := last.file.Truncate(size); err != nil {
				return err
			}
			cq.maxOffset.Store((last.start + size) / format.CQUnitSize)
			break
		}
		last.file.Close()
		if err := cq.fs.Remove(filepath.Join(cq.dir, format.SegmentName(last.start))); err != nil {
			return err
		}
		cq.mu.files = cq.mu.files[:len(cq.mu.files)-1]
	}
	cq.mu.tailPos = cq.maxOffset.Load() * format.CQUnitSize
	cq.syncedPos = min(cq.syncedPos, cq.mu.tailPos)
	if len(cq.mu.files) == 0 {
		return nil
	}
	// Find the start: the first entry at or past logMin.
	cq.minOffset.Store(cq.mu.files[0].start / format.CQUnitSize)
	return cq.trimLocked(logMin)
}

// trimLocked deletes files wholly below logMin and advances minOffset to the
// first entry at or past logMin. Called with mu held (or before sharing).
func (cq *consumeQueue) trimLocked(logMin int64) error {
	max := cq.maxOffset.Load()
	for {
		min := cq.minOffset.Load()
		if min >= max {
			return nil
		}
		u, err := cq.readUnitLocked(min)
		if err != nil {
			return err
		}
		if u.Valid() && u.CommitLogOffset >= logMin {
			return nil
		}
		// Skip ahead: if the file's last entry is below logMin, drop the file.
		f := cq.fileForLocked(min * format.CQUnitSize)
		if f != nil && len(cq.mu.files) > 1 && f == cq.mu.files[0] {
			lastOff := (f.start+cq.fileSize)/format.CQUnitSize - 1
			if lastOff < max {
				lu, err := cq.readUnitLocked(lastOff)
				if err != nil {
					return err
				}
				if lu.CommitLogOffset < logMin {
					f.file.Close()
					if err := cq.fs.Remove(filepath.Join(cq.dir, format.SegmentName(f.start))); err != nil {
						return err
					}
					cq.mu.files = cq.mu.files[1:]
					cq.minOffset.Store(lastOff + 1)
					continue
				}
			}
		}
		cq.minOffset.Store(min + 1)
	}
}

func (cq *consumeQueue) close() error {
	cq.mu.Lock()
	defer cq.mu.Unlock()
	var errs []error
	for _, f := range cq.mu.files {
		errs = append(errs, f.file.Close())
	}
	cq.mu.files = nil
	return errors.Join(errs...)
}

func (cq *consumeQueue) fileForLocked(pos int64) *cqFile {
	files := cq.mu.files
	if len(files) == 0 {
		return nil
	}
	i := int((pos - files[0].start) / cq.fileSize)
	if pos < files[0].start || i >= len(files) {
		return nil
	}
	return files[i]
}

func (cq *consumeQueue) readUnitLocked(offset int64) (format.CQUnit, error) {
	var b [format.CQUnitSize]byte
	if _, err := cq.readLocked(b[:], offset); err != nil {
		return format.CQUnit{}, err
	}
	return format.DecodeCQUnit(b[:]), nil
}

// readLocked fills b with the entries starting at queue offset offset, up to
// a file end or the end of the written part; it returns the number of bytes
// read (a multiple of 20).
func (cq *consumeQueue) readLocked(b []byte, offset int64) (int, error) {
	pos := offset * format.CQUnitSize
	if pos >= cq.mu.tailPos {
		i := pos - cq.mu.tailPos
		if i >= int64(len(cq.mu.tail)) {
			return 0, fmt.Errorf("store: consume queue %s has no entry %d", cq.dir, offset)
		}
		n := copy(b, cq.mu.tail[i:])
		if n -= n % format.CQUnitSize; n == 0 {
			return 0, io.ErrShortBuffer
		}
		return n, nil
	}
	f := cq.fileForLocked(pos)
	if f == nil {
		return 0, fmt.Errorf("store: consume queue %s has no file for offset %d", cq.dir, offset)
	}
	n := min(int64(len(b)), f.start+cq.fileSize-pos, cq.mu.tailPos-pos)
	n -= n % format.CQUnitSize
	got, err := f.file.ReadAt(b[:n], pos-f.start)
	got -= got % format.CQUnitSize
	if got > 0 && (err == nil || err == io.EOF) {
		return got, nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return 0, err
}

// read copies entries [offset, offset+len(b)/20) into b, which must be
// below maxOffset, possibly across files. It returns the bytes filled.
func (cq *consumeQueue) read(b []byte, offset int64) (int, error) {
	cq.mu.RLock()
	defer cq.mu.RUnlock()
	done := 0
	for done < len(b) {
		n, err := cq.readLocked(b[done:], offset+int64(done/format.CQUnitSize))
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// next returns the queue offset the next added entry must have.
// Dispatcher only.
func (cq *consumeQueue) next() int64 {
	return cq.maxOffset.Load() + int64(len(cq.pending)/format.CQUnitSize)
}

// add buffers an entry for queue offset offset. Entries below the queue's
// end are already present (a redispatch after recovery) and are skipped.
// An offset past the end would leave a hole; add refuses it and returns
// false (recovery checks records before they get here, so at run time it
// means a bug). Dispatcher only.
func (cq *consumeQueue) add(offset int64, u format.CQUnit) bool {
	next := cq.next()
	if offset < next {
		return true
	}
	if offset > next {
		return false
	}
	var b [format.CQUnitSize]byte
	format.EncodeCQUnit(b[:], u)
	cq.pending = append(cq.pending, b[:]...)
	return true
}

// publish makes the batch's entries readable: it moves them to the tail and
// advances maxOffset. Dispatcher only.
func (cq *consumeQueue) publish() {
	if len(cq.pending) == 0 {
		return
	}
	cq.mu.Lock()
	cq.mu.tail = append(cq.mu.tail, cq.pending...)
	cq.mu.Unlock()
	cq.maxOffset.Add(int64(len(cq.pending) / format.CQUnitSize))
	cq.pending = cq.pending[:0]
}

// tailSize returns how many bytes of entries are not yet written.
func (cq *consumeQueue) tailSize() int {
	cq.mu.RLock()
	defer cq.mu.RUnlock()
	return len(cq.mu.tail)
}

// writeTail writes the tail to the files (creating them as needed) and drops
// what it wrote from memory. With release an emptied tail also gives up its
// buffer, so a queue that went quiet holds no memory.
func (cq *consumeQueue) writeTail(release bool) error {
	cq.writing.Lock()
	defer cq.writing.Unlock()
	cq.mu.RLock()
	buf, pos := cq.mu.tail, cq.mu.tailPos
	cq.mu.RUnlock()
	// buf stays as it is without the lock: publish only appends past it
	// (perhaps into a new array), and only writeTail, which this goroutine
	// now holds, shifts the tail.
	done := 0
	var err error
	for done < len(buf) {
		p := pos + int64(done)
		cq.mu.RLock()
		f := cq.fileForLocked(p)
		cq.mu.RUnlock()
		if f == nil {
			if f, err = cq.createFile(p - p%cq.fileSize); err != nil {
				break
			}
		}
		n := int(min(int64(len(buf)-done), f.start+cq.fileSize-p))
		if _, err = f.file.WriteAt(buf[done:done+n], p-f.start); err != nil {
			break
		}
		done += n
	}
	if done > 0 || release {
		cq.mu.Lock()
		rest := copy(cq.mu.tail, cq.mu.tail[done:])
		cq.mu.tail = cq.mu.tail[:rest]
		if rest == 0 && release {
			cq.mu.tail = nil
		}
		cq.mu.tailPos += int64(done)
		cq.mu.Unlock()
	}
	return err
}

func (cq *consumeQueue) createFile(start int64) (*cqFile, error) {
	f, err := cq.fs.OpenFile(filepath.Join(cq.dir, format.SegmentName(start)), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := cq.fs.SyncDir(cq.dir); err != nil {
		f.Close()
		return nil, err
	}
	cf := &cqFile{start: start, file: f}
	cq.mu.Lock()
	if len(cq.mu.files) == 0 {
		cq.minOffset.Store(start / format.CQUnitSize)
	}
	cq.mu.files = append(cq.mu.files, cf)
	cq.mu.Unlock()
	return cf, nil
}

// sync fsyncs the files holding entries written since the last sync. The
// caller writes the tail first. Checkpointer only.
func (cq *consumeQueue) sync() error {
	var buf [4]*cqFile
	cq.mu.RLock()
	end := cq.mu.tailPos
	files := buf[:0]
	for _, f := range cq.mu.files {
		if f.start+cq.fileSize > cq.syncedPos && f.start < end {
			files = append(files, f)
		}
	}
	cq.mu.RUnlock()
	// Not under mu: publish would wait for the fsync. The checkpointer is
	// also the only goroutine that deletes files (trim), so they stay open.
	for _, f := range files {
		if err := f.file.Sync(); err != nil {
			return err
		}
	}
	cq.syncedPos = end
	return nil
}
