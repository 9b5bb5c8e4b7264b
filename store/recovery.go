package store

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/format"
)

// RecoveryInfo describes what the last Open did.
type RecoveryInfo struct {
	Clean    bool          // the previous run closed cleanly
	From, To int64         // commit-log range re-validated and redispatched
	Records  int           // records re-validated
	TornTail error         // why the log was cut at To (nil: it ended cleanly)
	Duration time.Duration // time spent
}

// Recovery returns what Open found and did.
func (s *Store) Recovery() RecoveryInfo { return s.recovery }

// recover loads the store: checkpoint, commit log, consume queues and
// index; re-validates the log past the checkpoint and redispatches it.
// Runs in Open before any goroutine starts.
func (s *Store) recover() error {
	began := time.Now()
	fsys := s.opts.FS
	var cp format.Checkpoint
	if b, err := readWhole(s, checkpointFile); err == nil {
		if cp, err = format.DecodeCheckpoint(b); err != nil {
			s.opts.Logger.Warn("store: ignoring checkpoint", "err", err)
			cp = format.Checkpoint{}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	_, err := fsys.Stat(filepath.Join(s.dir, abortFile))
	clean := errors.Is(err, fs.ErrNotExist)
	if err := s.writeFileAtomic(abortFile, nil); err != nil {
		return err
	}

	mapFailed := func(err error) {
		s.opts.Logger.Warn("store: segment not mapped, using pwrite", "err", err)
	}
	noMap := s.opts.FlushDiskType == SyncFlush
	if s.log, err = openCommitLog(fsys, filepath.Join(s.dir, commitLogDir), s.opts.SegmentSize, noMap, mapFailed); err != nil {
		return err
	}
	if !s.opts.DisableIndex {
		if s.idx, err = openIndex(fsys, filepath.Join(s.dir, indexDir), s.opts.IndexSlots, s.opts.IndexEntries); err != nil {
			return err
		}
	}
	if err := fsys.SyncDir(s.dir); err != nil { // the subdirectories just made
		return err
	}
	start := max(cp.DispatchDurable, s.log.minOffset.Load())
	if last := s.log.last(); last != nil {
		size, err := last.file.Size()
		if err != nil {
			return err
		}
		if start > last.start+size { // the checkpoint is ahead of the files
			start = last.start
		}
	} else {
		start = cp.DispatchDurable
		s.log.minOffset.Store(start)
	}
	// Load queues without cutting their tails yet: the log end is not known
	// until the scan below finishes. Entries the scan redispatches are
	// skipped when present.
	s.log.written.Store(math.MaxInt64)
	if err := s.loadQueues(clean); err != nil {
		return err
	}

	end, records, torn, err := s.redispatch(start)
	if err != nil {
		return err
	}
	if err := s.log.truncate(end); err != nil {
		return err
	}
	if err := s.log.sync(min(start, cp.CommitLogFlushed), end); err != nil {
		return err
	}
	s.flush.flushed = end
	s.dispatched.Store(end)
	for key, cq := range s.cqs.m {
		if err := cq.recover(s.log.minOffset.Load(), end); err != nil {
			return err
		}
		s.mu.queues[key] = queueNext{topic: key.topic, offset: cq.maxOffset.Load()}
	}
	if err := s.checkpoint(); err != nil {
		return err
	}
	s.recovery = RecoveryInfo{Clean: clean, From: start, To: end, Records: records,
		TornTail: torn, Duration: time.Since(began)}
	s.opts.Logger.Info("store: recovered", "clean", clean, "from", start, "to", end, "records", records,
		"tornTail", torn, "took", s.recovery.Duration)
	return nil
}

// redispatch validates records from start and dispatches them; it returns
// the end of the valid log. A corrupt record ends the log (torn tail, which
// it returns); an I/O error fails recovery.
func (s *Store) redispatch(start int64) (end int64, records int, torn, err error) {
	sc := s.log.newScanner(start)
	items := make([]dispatchItem, 0, 4096)
	// next is the queue offset each queue expects. A record past it would
	// leave a hole: BODYCRC does not cover the header, so that is how a
	// damaged QUEUEOFFSET, QUEUEID or topic shows; it ends the log.
	next := make(map[queueKey]int64)
	topics := make(map[string]string) // one string per topic, not per record
	end = start
	for {
		view, ok, err := sc.next()
		topic := ""
		if ok {
			var known bool
			if topic, known = topics[string(view.Topic)]; !known {
				topic = string(view.Topic)
				topics[topic] = topic
			}
		}
		if ok && isConsumable(view.SysFlag) {
			key := queueKey{topic, view.QueueID}
			want, seen := next[key]
			if !seen {
				if cq := s.queue(key.topic, key.queueID); cq != nil {
					want = cq.next()
				}
			}
			if view.QueueOffset > want {
				ok, err = false, fmt.Errorf("%w: record at %d has queue offset %d, queue %s/%d is at %d",
					message.ErrCorrupt, view.CommitLogOffset, view.QueueOffset, key.topic, key.queueID, want)
			} else {
				next[key] = max(want, view.QueueOffset+1)
			}
		}
		if !ok {
			if err != nil && !message.IsCorrupt(err) {
				return 0, 0, nil, err
			}
			if err != nil {
				torn = err
				s.opts.Logger.Warn("store: truncating the commit log", "at", end, "reason", err)
			}
			break
		}
		items = append(items, dispatchItemOf(&view, topic))
		records++
		end = sc.off
		if len(items) == cap(items) {
			s.dispatch(items)
			items = items[:0]
		}
	}
	if len(items) > 0 {
		s.dispatch(items)
	}
	return end, records, torn, nil
}

// loadQueues opens every consume queue on disk. After a clean close their
// files are durable (Close fsynced them); otherwise what they hold may be
// only in the page cache, and the next checkpoint fsyncs all of it before
// it claims it.
func (s *Store) loadQueues(clean bool) error {
	root := filepath.Join(s.dir, consumeQueueDir)
	topics, err := s.opts.FS.List(root)
	if err != nil {
		return err
	}
	for _, topic := range topics {
		ids, err := s.opts.FS.List(filepath.Join(root, topic))
		if err != nil {
			return err
		}
		for _, id := range ids {
			qid, err := strconv.ParseInt(id, 10, 32)
			if err != nil {
				continue
			}
			cq, err := s.queueForDispatch(topic, int32(qid))
			if err != nil {
				return err
			}
			if clean {
				cq.syncedPos = cq.mu.tailPos
			}
		}
	}
	return nil
}

func readWhole(s *Store, name string) ([]byte, error) {
	f, err := s.opts.FS.OpenFile(filepath.Join(s.dir, name), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size > 1<<20 {
		return nil, errors.New("store: " + name + " is too large")
	}
	b := make([]byte, size)
	_, err = f.ReadAt(b, 0)
	return b, err
}
