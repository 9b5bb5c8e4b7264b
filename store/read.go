package store

import (
	"fmt"
	"slices"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/format"
)

// TagsFilter decides from a consume-queue tags code whether a message
// matches a subscription. A nil TagsFilter matches everything.
type TagsFilter func(tagsCode int64) bool

// GetResult is the answer to GetMessages. Reuse one per goroutine: its
// buffers are kept between calls, so a warm pull allocates nothing.
type GetResult struct {
	Status GetStatus
	// NextBeginOffset is where the consumer should pull next.
	NextBeginOffset int64
	// MinOffset and MaxOffset of the queue (MaxOffset = next offset to be
	// written).
	MinOffset, MaxOffset int64
	// Body holds the stored records back to back: a PULL_MESSAGE response
	// body as it is. Valid until the next call with this GetResult.
	Body []byte
	// Records gives each record's place in Body and its queue offset.
	Records []RecordRef

	cq []byte // consume-queue entries scratch
}

// RecordRef locates one record of a GetResult.
type RecordRef struct {
	QueueOffset     int64
	CommitLogOffset int64
	Pos, Size       int32 // Body[Pos:Pos+Size]
}

// GetMessages reads up to maxMsgs messages of a queue starting at queue
// offset offset, following RocketMQ's pull rules (PROTOCOL.md §6.2): the
// first matching message is always taken (so maxMsgs 0 yields one), then
// reading stops at maxMsgs, MaxTransferCount or MaxTransferBytes; at most
// max(16000, 20*maxMsgs) bytes of consume queue are examined. Entries the
// filter rejects are skipped and counted in NextBeginOffset. The result is
// written into res; the error is non-nil only for I/O failures (with
// OffsetFoundNull).
func (s *Store) GetMessages(topic string, queueID int32, offset int64, maxMsgs int, filter TagsFilter, res *GetResult) error {
	res.Body, res.Records = res.Body[:0], res.Records[:0]
	s.cqs.RLock()
	cq := s.cqs.m[queueKey{topic, queueID}]
	s.cqs.RUnlock()
	if cq == nil {
		res.Status, res.NextBeginOffset, res.MinOffset, res.MaxOffset = NoMatchedLogicQueue, 0, 0, 0
		return nil
	}
	minOff, maxOff := cq.minOffset.Load(), cq.maxOffset.Load()
	res.MinOffset, res.MaxOffset = minOff, maxOff
	switch {
	case maxOff == 0:
		res.Status, res.NextBeginOffset = NoMessageInQueue, 0
		return nil
	case offset < minOff:
		res.Status, res.NextBeginOffset = OffsetTooSmall, minOff
		return nil
	case offset == maxOff:
		res.Status, res.NextBeginOffset = OffsetOverflowOne, offset
		return nil
	case offset > maxOff:
		res.Status, res.NextBeginOffset = OffsetOverflowBadly, maxOff
		return nil
	}
	scan := min(maxOff-offset, int64(max(16000, 20*maxMsgs)/format.CQUnitSize))
	if need := int(scan) * format.CQUnitSize; cap(res.cq) < need {
		res.cq = make([]byte, need)
	}
	n, err := cq.read(res.cq[:scan*format.CQUnitSize], offset)
	if n == 0 {
		res.Status, res.NextBeginOffset = OffsetFoundNull, offset
		return err
	}
	examined, removed := int64(0), false
	logMin := s.log.minOffset.Load()
	for i := 0; i < n; i += format.CQUnitSize {
		u := format.DecodeCQUnit(res.cq[i:])
		if !u.Valid() || u.CommitLogOffset < logMin {
			removed = removed || u.Valid()
			examined++
			continue
		}
		if filter != nil && !filter(u.TagsCode) {
			examined++
			continue
		}
		if len(res.Records) > 0 && (len(res.Records) >= maxMsgs || len(res.Records) >= s.opts.MaxTransferCount ||
			len(res.Body)+int(u.Size) > s.opts.MaxTransferBytes) {
			break
		}
		pos := len(res.Body)
		if pos == 0 && cap(res.Body) < int(u.Size) {
			// Size the body once, as if the messages to come were as large as the first: growing it
			// by append copied it several times per pull.
			count := min((n-i)/format.CQUnitSize, max(maxMsgs, 1), s.opts.MaxTransferCount)
			res.Body = make([]byte, 0, min(count*int(u.Size), s.opts.MaxTransferBytes+int(u.Size)))
		}
		res.Body = slices.Grow(res.Body, int(u.Size))[:pos+int(u.Size)]
		if err := s.log.readAt(res.Body[pos:], u.CommitLogOffset); err != nil {
			res.Body = res.Body[:pos]
			if u.CommitLogOffset < s.log.minOffset.Load() {
				removed = true
				examined++
				continue
			}
			break
		}
		res.Records = append(res.Records, RecordRef{QueueOffset: offset + int64(i/format.CQUnitSize),
			CommitLogOffset: u.CommitLogOffset, Pos: int32(pos), Size: u.Size})
		examined++
	}
	res.NextBeginOffset = offset + examined
	switch {
	case len(res.Records) > 0:
		res.Status = Found
	case removed:
		res.Status = MessageWasRemoving
	case examined == 0:
		res.Status = OffsetFoundNull
	default:
		res.Status = NoMatchedMessage
	}
	return nil
}

// ReadRecord reads the whole stored record at commit-log offset off into
// dst (reusing its capacity) and returns it. It checks the record's size,
// magic and lengths but not its CRC. ErrNotFound means the offset is below
// the first segment or past the end.
func (s *Store) ReadRecord(off int64, dst []byte) ([]byte, error) {
	var head [message.BlankSize]byte
	if err := s.log.readAt(head[:], off); err != nil {
		return nil, err
	}
	size, magic, _ := message.PeekSize(head[:])
	if magic != message.MagicV1 || size < message.MinRecordSize || int64(size) > s.opts.SegmentSize {
		return nil, fmt.Errorf("%w: no record at offset %d", ErrNotFound, off)
	}
	dst = slices.Grow(dst[:0], int(size))[:size]
	if err := s.log.readAt(dst, off); err != nil {
		return nil, err
	}
	if _, err := message.ParseRecord(dst, false); err != nil {
		return nil, err
	}
	return dst, nil
}

// LookupMessage decodes the message at commit-log offset off, verifying its
// body CRC (VIEW_MESSAGE_BY_ID, send-back, transactions).
func (s *Store) LookupMessage(off int64) (*message.Message, error) {
	rec, err := s.ReadRecord(off, nil)
	if err != nil {
		return nil, err
	}
	m, _, err := message.DecodeRecord(rec)
	return m, err
}

// MinOffset returns the first readable queue offset of a queue (0 if none).
func (s *Store) MinOffset(topic string, queueID int32) int64 {
	if cq := s.queue(topic, queueID); cq != nil {
		return cq.minOffset.Load()
	}
	return 0
}

// MaxOffset returns the next queue offset to be written (0 if no queue).
// Appended messages become visible here once dispatched.
func (s *Store) MaxOffset(topic string, queueID int32) int64 {
	if cq := s.queue(topic, queueID); cq != nil {
		return cq.maxOffset.Load()
	}
	return 0
}

func (s *Store) queue(topic string, queueID int32) *consumeQueue {
	s.cqs.RLock()
	defer s.cqs.RUnlock()
	return s.cqs.m[queueKey{topic, queueID}]
}

// MinCommitLogOffset returns the first offset still in the commit log.
func (s *Store) MinCommitLogOffset() int64 { return s.log.minOffset.Load() }

// MaxCommitLogOffset returns the end of the commit log.
func (s *Store) MaxCommitLogOffset() int64 { return s.log.written.Load() }

// storeTimeAt returns the STORETIMESTAMP of the message at queue offset.
func (s *Store) storeTimeAt(cq *consumeQueue, offset int64) (int64, error) {
	var unit [format.CQUnitSize]byte
	if _, err := cq.read(unit[:], offset); err != nil {
		return 0, err
	}
	u := format.DecodeCQUnit(unit[:])
	var head [message.MinRecordSize + 24]byte
	n := min(int(u.Size), len(head))
	if !u.Valid() {
		return 0, fmt.Errorf("%w: empty consume-queue entry at %d", ErrNotFound, offset)
	}
	if err := s.log.readAt(head[:n], u.CommitLogOffset); err != nil {
		return 0, err
	}
	return message.StoreTimestampOf(head[:n])
}

// OffsetByTime returns the smallest queue offset whose message was stored
// at or after timestamp (ms), or MaxOffset when there is none
// (SEARCH_OFFSET_BY_TIMESTAMP). It binary-searches the queue.
func (s *Store) OffsetByTime(topic string, queueID int32, timestamp int64) (int64, error) {
	cq := s.queue(topic, queueID)
	if cq == nil {
		return 0, nil
	}
	lo, hi := cq.minOffset.Load(), cq.maxOffset.Load()
	for lo < hi {
		mid := lo + (hi-lo)/2
		ts, err := s.storeTimeAt(cq, mid)
		if err != nil {
			return 0, err
		}
		if ts < timestamp {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// EarliestMessageTime returns the store time of a queue's first readable
// message (GET_EARLIEST_MSG_STORETIME).
func (s *Store) EarliestMessageTime(topic string, queueID int32) (int64, error) {
	cq := s.queue(topic, queueID)
	if cq == nil || cq.minOffset.Load() >= cq.maxOffset.Load() {
		return 0, ErrNotFound
	}
	return s.storeTimeAt(cq, cq.minOffset.Load())
}

// QueryMessages returns up to max messages of topic whose KEYS contain key
// or whose UNIQ_KEY is key, stored within [begin, end] (ms), newest first
// (QUERY_MESSAGE). Without an index it returns nothing.
func (s *Store) QueryMessages(topic, key string, max int, begin, end int64) ([]*message.Message, error) {
	if s.idx == nil {
		return nil, nil
	}
	var out []*message.Message
	seen := map[int64]bool{}
	for _, off := range s.idx.query(topic, key, max*2, begin, end) {
		if seen[off] || len(out) >= max {
			continue
		}
		seen[off] = true
		m, err := s.LookupMessage(off)
		if err != nil {
			continue // deleted or beyond a truncation
		}
		if m.Topic != topic || m.StoreTimestamp < begin || m.StoreTimestamp > end {
			continue
		}
		if m.UniqKey() == key || slices.Contains(m.Keys(), key) {
			out = append(out, m)
		}
	}
	return out, nil
}

// ReadCommitLog copies commit-log bytes starting at off into b, stopping at
// the end of off's segment or of the written log, and returns the count (for
// replication, which ships the log as it is). ErrNotFound means off is below
// the first segment or at or past the end.
func (s *Store) ReadCommitLog(off int64, b []byte) (int, error) {
	end := s.log.written.Load()
	if off >= end {
		return 0, ErrNotFound
	}
	segEnd := off - off%s.opts.SegmentSize + s.opts.SegmentSize
	n := int(min(int64(len(b)), end-off, segEnd-off))
	if err := s.log.readAt(b[:n], off); err != nil {
		return 0, err
	}
	return n, nil
}
