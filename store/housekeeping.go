package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/apogeemq/apogee/store/format"
)

// runHousekeeping owns the checkpoint (consume-queue and index fsyncs) and
// the cleaner (disk usage and retention).
func (s *Store) runHousekeeping() {
	cp := time.NewTicker(s.opts.CheckpointInterval)
	defer cp.Stop()
	clean := time.NewTicker(s.opts.CleanInterval)
	defer clean.Stop()
	release := time.NewTicker(time.Second)
	defer release.Stop()
	s.clean()
	for {
		select {
		case <-s.done:
			return
		case <-release.C:
			s.log.release(s.FlushedOffset())
		case <-cp.C:
			if err := s.checkpoint(); err != nil {
				s.opts.Logger.Warn("store: checkpoint", "err", err)
			}
		case <-clean.C:
			s.clean()
		}
	}
}

// checkpoint fsyncs consume queues and the index, then records what is
// durable. It is not fatal when it fails: recovery starts from the previous
// checkpoint, which only means more work.
func (s *Store) checkpoint() error {
	if err := s.stickyErr(); err != nil {
		return err // keep the last good checkpoint for recovery
	}
	// Read dispatched first: every entry for records below it is in its
	// queue (in a file or the tail), so the writes and syncs below cover
	// them.
	dispatched := s.dispatched.Load()
	s.cqs.RLock()
	queues := make([]*consumeQueue, 0, len(s.cqs.m))
	for _, cq := range s.cqs.m {
		queues = append(queues, cq)
	}
	s.cqs.RUnlock()
	for _, cq := range queues {
		if err := s.writeTail(cq, true); err != nil {
			return err
		}
		if err := cq.sync(); err != nil {
			return err
		}
	}
	if s.idx != nil {
		if err := s.idx.sync(); err != nil {
			return err
		}
	}
	flushed := s.FlushedOffset()
	c := format.Checkpoint{CommitLogFlushed: flushed, DispatchDurable: min(dispatched, flushed), Timestamp: s.opts.Now().UnixMilli()}
	return s.writeFileAtomic(checkpointFile, format.EncodeCheckpoint(c))
}

// writeFileAtomic replaces dir/name with b: write a temporary file, fsync,
// rename, fsync the directory.
func (s *Store) writeFileAtomic(name string, b []byte) error {
	fs := s.opts.FS
	tmp := filepath.Join(s.dir, name+".tmp")
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, filepath.Join(s.dir, name))
	}
	if err == nil {
		err = fs.SyncDir(s.dir)
	}
	return err
}

// clean checks disk usage (setting or clearing the disk-full state) and
// deletes expired segments, then trims consume queues and the index.
func (s *Store) clean() {
	usage, err := s.opts.FS.DiskUsage(s.dir)
	if err != nil {
		s.opts.Logger.Warn("store: disk usage", "err", err)
		return
	}
	ratio := usage.UsedRatio()
	full := ratio >= s.opts.DiskFullRatio
	if was := s.diskFull.Swap(full); was != full {
		s.opts.Logger.Warn("store: disk full state changed", "full", full, "used", ratio)
	}
	now := s.opts.Now()
	atDeleteHour := slices.Contains(s.deleteHours, now.Hour())
	force := ratio >= s.opts.DiskForceCleanRatio
	if !atDeleteHour && ratio < s.opts.DiskMaxUsedRatio {
		return
	}
	if err := s.deleteSegments(now, force); err != nil {
		s.opts.Logger.Warn("store: retention", "err", err)
	}
}

// deleteSegments deletes segments last written more than FileReservedTime
// before now (or, with force, the oldest ones regardless), never the newest
// or one that holds undispatched records, then trims queues and index.
func (s *Store) deleteSegments(now time.Time, force bool) error {
	dispatched := s.dispatched.Load()
	keep := func(seg *segment) bool {
		if seg.start+s.opts.SegmentSize > dispatched {
			return true
		}
		if force {
			return false
		}
		st, err := s.opts.FS.Stat(filepath.Join(s.log.dir, format.SegmentName(seg.start)))
		return err != nil || now.Sub(st.ModTime()) < s.opts.FileReservedTime
	}
	removed, err := s.log.removeSegments(keep, s.opts.DeleteFilesBatchMax)
	if removed > 0 {
		s.opts.Logger.Info("store: deleted segments", "count", removed, "minOffset", s.log.minOffset.Load())
		err = errors.Join(err, s.trimQueues())
	}
	return err
}

// trimQueues drops consume-queue entries and index files below the log's
// first segment.
func (s *Store) trimQueues() error {
	logMin := s.log.minOffset.Load()
	s.cqs.RLock()
	queues := make([]*consumeQueue, 0, len(s.cqs.m))
	for _, cq := range s.cqs.m {
		queues = append(queues, cq)
	}
	s.cqs.RUnlock()
	var errs []error
	for _, cq := range queues {
		cq.mu.Lock()
		errs = append(errs, cq.trimLocked(logMin))
		cq.mu.Unlock()
	}
	if s.idx != nil {
		errs = append(errs, s.idx.trim(logMin))
	}
	return errors.Join(errs...)
}
