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

// consumeQueue is the 20-byte-entry index of one topic queue. Only the
// dispatcher (and recovery, before it starts) appends; readers look entries
// up concurrently.
type consumeQueue struct {
	topic    string
	queueID  int32
	fs       vfs.FS
	dir      string
	fileSize int64 // bytes per file, a multiple of 20

	mu struct {
		sync.RWMutex
		files []*cqFile // sorted by start. Protected by mu.
	}

	// minOffset is the first readable queue offset; maxOffset the next
	// offset to be written (entries below it are readable).
	minOffset atomic.Int64
	maxOffset atomic.Int64

	// pending holds encoded entries not yet written, starting at queue
	// offset maxOffset. Dispatcher only.
	pending []byte
	// dirty is set when written entries have not been fsynced.
	dirty atomic.Bool
	// syncedPos is the byte position below which entries are durable.
	// Checkpointer only.
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
func (cq *consumeQueue) recover(logMin, logEnd int64) error {
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
// a file end; it returns the number of bytes read (a multiple of 20).
func (cq *consumeQueue) readLocked(b []byte, offset int64) (int, error) {
	pos := offset * format.CQUnitSize
	f := cq.fileForLocked(pos)
	if f == nil {
		return 0, fmt.Errorf("store: consume queue %s has no file for offset %d", cq.dir, offset)
	}
	n := min(int64(len(b)), f.start+cq.fileSize-pos)
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

// writePending writes the buffered entries and publishes them by advancing
// maxOffset. Dispatcher only.
func (cq *consumeQueue) writePending() error {
	if len(cq.pending) == 0 {
		return nil
	}
	pos := cq.maxOffset.Load() * format.CQUnitSize
	all := cq.pending
	for len(cq.pending) > 0 {
		cq.mu.RLock()
		f := cq.fileForLocked(pos)
		cq.mu.RUnlock()
		if f == nil {
			var err error
			if f, err = cq.createFile(pos - pos%cq.fileSize); err != nil {
				return err
			}
		}
		n := min(int64(len(cq.pending)), f.start+cq.fileSize-pos)
		if _, err := f.file.WriteAt(cq.pending[:n], pos-f.start); err != nil {
			return err
		}
		cq.dirty.Store(true)
		pos += n
		cq.maxOffset.Store(pos / format.CQUnitSize)
		cq.pending = cq.pending[n:]
	}
	cq.pending = all[:0] // keep the whole buffer, not what is left past the written part
	return nil
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

// sync fsyncs the files holding entries written since the last sync.
// Checkpointer only.
func (cq *consumeQueue) sync() error {
	if !cq.dirty.Swap(false) {
		return nil
	}
	end := cq.maxOffset.Load() * format.CQUnitSize
	cq.mu.RLock()
	defer cq.mu.RUnlock()
	for _, f := range cq.mu.files {
		if f.start+cq.fileSize > cq.syncedPos && f.start < end {
			if err := f.file.Sync(); err != nil {
				cq.dirty.Store(true)
				return err
			}
		}
	}
	cq.syncedPos = end
	return nil
}
