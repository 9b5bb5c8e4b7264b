package store

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/format"
	"github.com/apogeemq/apogee/store/vfs"
)

func isNoSpace(err error) bool { return vfs.IsNoSpace(err) }

// runDispatcher builds consume-queue entries and index entries for appended
// records, in log order. It takes the pending list in batches, so the cost
// of one pwrite per touched queue is shared by every record of the batch.
func (s *Store) runDispatcher() {
	var spare []dispatchItem
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
				if len(s.retryQueues) > 0 {
					s.writeQueues(nil, 0)
				}
			}
			continue
		}
		// Double buffering: appends fill one slice while the dispatcher
		// works through the other.
		s.pend.items, s.pend.busy, s.pend.sleeping = spare[:0], true, false
		s.pend.Unlock()
		s.dispatch(items)
		clear(items) // drop the strings
		spare = items
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
		if len(cq.pending) == 0 {
			queues = append(queues, cq)
		}
		if !cq.add(it.queueOffset, format.CQUnit{CommitLogOffset: it.offset, Size: it.size, TagsCode: it.tagsCode}) {
			s.fail(fmt.Errorf("record at %d has queue offset %d, queue %s/%d is at %d",
				it.offset, it.queueOffset, it.topic, it.queueID, cq.next()))
		}
	}
	last := &items[len(items)-1]
	s.writeQueues(queues, last.offset+int64(last.size))
}

// writeQueues writes the buffered entries of queues (and of queues whose
// earlier writes failed for lack of space), then publishes end as the
// dispatched offset if nothing is left unwritten. On ENOSPC the entries stay
// buffered (invisible to readers), appends are refused as DiskFull, and the
// write is retried when the dispatcher is next woken (the cleaner wakes it
// when space returns). Any other error stops writes: the entries are rebuilt
// from the log at the next Open, because the dispatched offset, and so the
// checkpoint, stays before them.
func (s *Store) writeQueues(queues []*consumeQueue, end int64) {
	retry := s.retryQueues[:0]
	for _, cq := range append(queues, s.retryQueues...) {
		if len(cq.pending) == 0 {
			continue
		}
		if err := cq.writePending(); err != nil {
			if isNoSpace(err) {
				s.diskFull.Store(true)
				if !slices.Contains(retry, cq) {
					retry = append(retry, cq)
				}
				continue
			}
			s.fail(fmt.Errorf("consume queue %s: %w", cq.dir, err))
			cq.pending = cq.pending[:0]
			continue
		}
		if f := s.opts.Listener.MessageArrived; f != nil {
			f(cq.topic, cq.queueID, cq.maxOffset.Load())
		}
	}
	s.retryQueues = retry
	if end > 0 && len(retry) == 0 && s.stickyErr() == nil {
		s.dispatched.Store(end)
	}
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
