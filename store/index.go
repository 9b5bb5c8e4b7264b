package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/apogeemq/apogee/store/format"
	"github.com/apogeemq/apogee/store/vfs"
)

// errIndexUnavailable is returned by add while index files cannot be created.
var errIndexUnavailable = errors.New("store: index file creation failed recently; key not indexed")

// indexFile is one hash index file, memory-mapped. Layout in package format.
type indexFile struct {
	name    string
	file    vfs.File
	data    []byte
	slots   int
	entries int
	hdr     format.IndexHeader
}

// index maps "topic#key" to commit-log offsets. The dispatcher adds keys; any
// goroutine queries. Files are bounded (IndexEntries each); a full file is
// followed by a new one.
type index struct {
	fs      vfs.FS
	dir     string
	slots   int
	entries int

	mu struct {
		sync.RWMutex
		files []*indexFile // oldest first. Protected by mu.
	}
	dirty bool // entries added since the last sync. Protected by mu.
	// noCreateUntil delays the next attempt to create a file after one
	// failed (a full disk), so each key does not retry. Protected by mu.
	noCreateUntil time.Time
}

func openIndex(fs vfs.FS, dir string, slots, entries int) (*index, error) {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ix := &index{fs: fs, dir: dir, slots: slots, entries: entries}
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if _, ok := format.ParseSegmentName(name); !ok {
			continue
		}
		f, err := ix.mapFile(name, false)
		if err != nil {
			// An unreadable index file is rebuilt from the log where it
			// matters; drop it.
			fs.Remove(filepath.Join(dir, name))
			continue
		}
		ix.mu.files = append(ix.mu.files, f)
	}
	return ix, nil
}

func (ix *index) mapFile(name string, create bool) (*indexFile, error) {
	path := filepath.Join(ix.dir, name)
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_TRUNC
	}
	f, err := ix.fs.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*indexFile, error) {
		f.Close()
		return nil, err
	}
	size := format.IndexFileSize(ix.slots, ix.entries)
	if create {
		if err := errors.Join(f.Allocate(size), ix.fs.SyncDir(ix.dir)); err != nil {
			f.Close()
			ix.fs.Remove(path)
			return nil, err
		}
	} else if got, err := f.Size(); err != nil || got != size {
		return fail(fmt.Errorf("store: index file %s has size %d, want %d (%v)", name, got, size, err))
	}
	m, ok := f.(vfs.Mapper)
	if !ok {
		return fail(fmt.Errorf("store: index file %s cannot be mapped", name))
	}
	data, err := m.Map(int(size))
	if err != nil {
		return fail(err)
	}
	xf := &indexFile{name: name, file: f, data: data, slots: ix.slots, entries: ix.entries}
	xf.hdr = format.DecodeIndexHeader(data)
	if int(xf.hdr.EntryCount) > ix.entries || xf.hdr.EntryCount < 0 {
		vfs.Unmap(data)
		return fail(fmt.Errorf("store: index file %s header claims %d entries", name, xf.hdr.EntryCount))
	}
	return xf, nil
}

func (xf *indexFile) close() error {
	return errors.Join(vfs.Unmap(xf.data), xf.file.Close())
}

// add indexes key at commit-log offset off stored at storeTimestamp (ms).
// Offsets below the newest file's last entry are skipped (redispatch after
// a crash; a message at exactly that offset may be indexed twice, which
// query's callers tolerate). Dispatcher only.
func (ix *index) add(topic, key string, off, storeTimestamp int64) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var xf *indexFile
	if n := len(ix.mu.files); n > 0 {
		xf = ix.mu.files[n-1]
		if xf.hdr.EntryCount > 0 && off < xf.hdr.EndPhyOffset {
			return nil
		}
		if int(xf.hdr.EntryCount) >= xf.entries {
			format.EncodeIndexHeader(xf.data, xf.hdr)
			xf = nil
		}
	}
	if xf == nil {
		if time.Now().Before(ix.noCreateUntil) {
			return errIndexUnavailable
		}
		var err error
		if xf, err = ix.mapFile(format.SegmentName(off), true); err != nil {
			ix.noCreateUntil = time.Now().Add(time.Second)
			return err
		}
		ix.mu.files = append(ix.mu.files, xf)
	}
	hash := format.IndexKeyHash(topic, key)
	slot := int(hash) % xf.slots
	prev := format.IndexSlot(xf.data, slot)
	if prev < 0 || prev > xf.hdr.EntryCount {
		prev = 0
	}
	h := &xf.hdr
	if h.EntryCount == 0 {
		h.BeginTimestamp, h.BeginPhyOffset = storeTimestamp, off
	}
	diff := max(0, (storeTimestamp-h.BeginTimestamp)/1000)
	n := h.EntryCount + 1
	format.EncodeIndexEntry(xf.data[format.IndexEntryPos(xf.slots, int(n)):], format.IndexEntry{
		KeyHash: hash, CommitLogOffset: off, TimeDiff: int32(min(diff, 1<<31-1)), Prev: prev,
	})
	format.PutIndexSlot(xf.data, slot, n)
	if prev == 0 {
		h.SlotsUsed++
	}
	h.EntryCount = n
	h.EndTimestamp, h.EndPhyOffset = max(h.EndTimestamp, storeTimestamp), off
	// The header is written to the file at sync and close, not per entry:
	// a stale header after a crash only hides entries past it, which
	// recovery re-adds (readers check entry numbers against it).
	ix.dirty = true
	return nil
}

// query returns up to max commit-log offsets indexed under topic#key with a
// store time in [begin, end] ms, newest first. Results can include hash
// collisions; callers check the message.
func (ix *index) query(topic, key string, max int, begin, end int64) []int64 {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	hash := format.IndexKeyHash(topic, key)
	var out []int64
	for i := len(ix.mu.files) - 1; i >= 0 && len(out) < max; i-- {
		xf := ix.mu.files[i]
		h := xf.hdr
		if h.EntryCount == 0 || h.EndTimestamp < begin || h.BeginTimestamp > end+1000 {
			continue
		}
		n := format.IndexSlot(xf.data, int(hash)%xf.slots)
		for steps := 0; n > 0 && n <= h.EntryCount && steps <= int(h.EntryCount) && len(out) < max; steps++ {
			e := format.DecodeIndexEntry(xf.data[format.IndexEntryPos(xf.slots, int(n)):])
			ts := h.BeginTimestamp + int64(e.TimeDiff)*1000
			if e.KeyHash == hash && ts >= begin-999 && ts <= end {
				out = append(out, e.CommitLogOffset)
			}
			if e.Prev >= n {
				break
			}
			n = e.Prev
		}
	}
	return out
}

// sync fsyncs the newest file if entries were added.
func (ix *index) sync() error {
	ix.mu.Lock()
	if !ix.dirty || len(ix.mu.files) == 0 {
		ix.mu.Unlock()
		return nil
	}
	ix.dirty = false
	// The previous file may have filled since the last sync.
	files := ix.mu.files[max(0, len(ix.mu.files)-2):]
	for _, xf := range files {
		format.EncodeIndexHeader(xf.data, xf.hdr)
	}
	ix.mu.Unlock()
	for _, xf := range files {
		if err := xf.file.Sync(); err != nil {
			ix.mu.Lock()
			ix.dirty = true
			ix.mu.Unlock()
			return err
		}
	}
	return nil
}

// trim deletes files whose every entry is below logMin (never the newest).
func (ix *index) trim(logMin int64) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for len(ix.mu.files) > 1 && ix.mu.files[0].hdr.EndPhyOffset < logMin {
		xf := ix.mu.files[0]
		xf.close()
		if err := ix.fs.Remove(filepath.Join(ix.dir, xf.name)); err != nil {
			return err
		}
		ix.mu.files = ix.mu.files[1:]
	}
	return nil
}

func (ix *index) close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var errs []error
	for _, xf := range ix.mu.files {
		format.EncodeIndexHeader(xf.data, xf.hdr)
		errs = append(errs, xf.close())
	}
	ix.mu.files = nil
	return errors.Join(errs...)
}
