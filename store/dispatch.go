package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/format"
	"github.com/apogeemq/apogee/store/vfs"
)

func isNoSpace(err error) bool { return vfs.IsNoSpace(err) }

// dispatchPause is how long the dispatcher waits after a batch before it
// takes the next one. It bounds the delay it adds before a message is
// readable (the runtime's timers may round it up to a millisecond).
const dispatchPause = 500 * time.Microsecond

// dispatchNoPause is how long the dispatcher does not pause after a pause
// that gathered at most one record.
const dispatchNoPause = 50 * time.Millisecond

// runDispatcher builds consume-queue entries and index entries for appended
// records, in log order. It takes the pending list in batches, so the
// per-queue work (a lock, a MessageArrived call) is shared by every record
// of a batch.
func (s *Store) runDispatcher() {
	var spare []dispatchItem
	var spareArena arena
	pause := time.NewTimer(dispatchPause)
	defer pause.Stop()
	paused := false // the batch was gathered during a pause
	var noPauseUntil time.Time
	for {
		s.pend.Lock()
		s.pend.busy = false
		items := s.pend.items
		if len(items) == 0 {
			s.pend.sleeping = true
			s.pend.idle.Broadcast()
			s.pend.Unlock()
			select {
			case <-s.done:
				return
			case <-s.dispatchReq:
			}
			paused = false
			continue
		}
		// Double buffering: appends fill one slice while the dispatcher
		// works through the other.
		keys := s.pend.arena
		s.pend.items, s.pend.arena, s.pend.busy, s.pend.sleeping = spare[:0], spareArena[:0], true, false
		s.pend.Unlock()
		s.dispatch(items)
		n := len(items)
		clear(items) // drop the strings, the keys' among them: their arena is reused
		if cap(keys) > 1<<20 {
			keys = nil // a burst's: do not keep the room
		}
		spare, spareArena = items, keys
		// Let records gather before looking again: appends that come
		// meanwhile do not wake the dispatcher (it is not sleeping), so
		// under a steady stream of single appends it runs once per pause,
		// not once per append. A pause that gathered one record only
		// delayed it (a low rate, or a producer that waits until its
		// message is consumed before it sends the next): then the
		// dispatcher goes back to being woken per append for a while.
		now := time.Now()
		if paused && n <= 1 {
			noPauseUntil = now.Add(dispatchNoPause)
		}
		paused = false
		if now.Before(noPauseUntil) {
			continue
		}
		s.pend.Lock()
		s.pend.busy = false
		if len(s.pend.items) == 0 {
			s.pend.idle.Broadcast()
		}
		s.pend.Unlock()
		pause.Reset(dispatchPause)
		select {
		case <-s.done:
			return
		case <-s.dispatchReq: // waitDispatched
		case <-pause.C:
			paused = true
		}
	}
}

// dispatch applies items (in log order) to consume queues and the index.
// Dispatcher, or recovery before the dispatcher starts.
func (s *Store) dispatch(items []dispatchItem) {
	var touched [8]*consumeQueue
	queues := touched[:0]
	for i := range items {
		it := &items[i]
		if s.idx != nil {
			s.indexKeys(it)
		}
		if !it.consumable {
			continue
		}
		cq, err := s.queueForDispatch(it.topic, it.queueID)
		if err != nil {
			s.opts.Logger.Error("store: create consume queue", "topic", it.topic, "queue", it.queueID, "err", err)
			continue
		}
		first := len(cq.pending) == 0
		if !cq.add(it.queueOffset, format.CQUnit{CommitLogOffset: it.offset, Size: it.size, TagsCode: it.tagsCode}) {
			s.fail(fmt.Errorf("record at %d has queue offset %d, queue %s/%d is at %d",
				it.offset, it.queueOffset, it.topic, it.queueID, cq.next()))
		}
		if first && len(cq.pending) > 0 { // not for entries a redispatch skips
			queues = append(queues, cq)
		}
	}
	for _, cq := range queues {
		cq.publish()
		if f := s.opts.Listener.MessageArrived; f != nil && s.opened.Load() {
			f(cq.topic, cq.queueID, cq.maxOffset.Load())
		}
	}
	if last := &items[len(items)-1]; s.stickyErr() == nil {
		s.dispatched.Store(last.offset + int64(last.size))
	}
	// Readers see the entries now; the files get them a chunk at a time.
	for _, cq := range queues {
		if cq.tailSize() >= cqWriteChunk && s.stickyErr() == nil {
			s.writeTail(cq, false)
		}
	}
}

// writeTail writes a queue's unwritten entries to its files. On ENOSPC they
// stay in memory (still readable), appends are refused as DiskFull, and the
// next chunk or checkpoint tries again. Any other error stops writes; the
// entries are then rebuilt from the log at the next Open, since the
// checkpoint never gets past them. The error is returned as it was.
func (s *Store) writeTail(cq *consumeQueue, release bool) error {
	err := cq.writeTail(release)
	switch {
	case err == nil:
	case isNoSpace(err):
		s.diskFull.Store(true)
	default:
		s.fail(fmt.Errorf("consume queue %s: %w", cq.dir, err))
	}
	return err
}

func (s *Store) indexKeys(it *dispatchItem) {
	if it.uniqKey != "" {
		s.indexAdd(it.topic, it.uniqKey, it)
	}
	for key := range strings.FieldsSeq(it.keys) {
		s.indexAdd(it.topic, key, it)
	}
}

func (s *Store) indexAdd(topic, key string, it *dispatchItem) {
	if err := s.idx.add(topic, key, it.offset, it.storeTimestamp); err != nil {
		s.opts.Logger.Warn("store: index add", "key", key, "err", err)
	}
}

// queueForDispatch returns the consume queue, creating it.
func (s *Store) queueForDispatch(topic string, queueID int32) (*consumeQueue, error) {
	key := queueKey{topic, queueID}
	s.cqs.RLock()
	cq := s.cqs.m[key]
	s.cqs.RUnlock()
	if cq != nil {
		return cq, nil
	}
	cq, err := openConsumeQueue(s.opts.FS, cqDir(filepath.Join(s.dir, consumeQueueDir), topic, queueID),
		s.opts.CQEntriesPerFile, s.log.minOffset.Load(), s.log.written.Load())
	if err != nil {
		return nil, err
	}
	cq.topic, cq.queueID = topic, queueID
	s.cqs.Lock()
	s.cqs.m[key] = cq
	s.cqs.Unlock()
	return cq, nil
}

// dispatchItemOf describes a parsed record for the dispatcher.
func dispatchItemOf(v *message.RecordView, topic string) dispatchItem {
	it := dispatchItem{
		topic: topic, queueID: v.QueueID, queueOffset: v.QueueOffset, consumable: isConsumable(v.SysFlag),
		offset: v.CommitLogOffset, size: v.TotalSize, storeTimestamp: v.StoreTimestamp,
	}
	for name, value := range message.Properties(v.Properties) { // one pass for the three
		switch string(name) {
		case message.PropertyTags:
			it.tagsCode = int64(message.HashMore(0, string(value)))
		case message.PropertyKeys:
			it.keys = string(value)
		case message.PropertyUniqKey:
			it.uniqKey = string(value)
		}
	}
	return it
}
