package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/format"
)

// Store is the broker's message store: one commit log shared by all topics,
// a consume queue per topic queue, a key index, a flusher, a dispatcher, a
// checkpointer and a cleaner. All methods are safe for concurrent use.
type Store struct {
	opts *Options
	dir  string
	log  *commitLog
	idx  *index // nil when the index is disabled

	// mu is the append lock. It serializes writes to the commit log and
	// owns the write position and the queue offsets.
	mu struct {
		sync.Mutex
		closed bool
		// err is the sticky I/O error that stopped writes. Protected by mu;
		// also published in failed for lock-free checks.
		err error
		// queues holds, per queue, the offset its next message gets.
		queues map[queueKey]queueNext
	}
	failed atomic.Pointer[error]

	// diskFull is set by the cleaner while usage is at or above
	// DiskFullRatio, and by an append that hit ENOSPC.
	diskFull atomic.Bool

	// flush tracks durability of the commit log.
	flush struct {
		sync.Mutex
		flushed int64         // every byte below is fsynced. Protected by flush.
		done    chan struct{} // closed and replaced when flushed advances or fails. Protected by flush.
		waiters []flushWaiter // AppendThen callbacks waiting for an fsync. Protected by flush.
		ready   []flushWaiter // completeWaiters' list, kept for its next call. Protected by flush.
	}
	flushReq    chan struct{} // wakes the flusher (capacity 1)
	prefaultReq chan struct{} // wakes the prefaulter (capacity 1)
	syncs       atomic.Int64  // successful commit-log flushes, for Stats
	syncNanos   atomic.Int64  // time spent in them

	// cqs holds the consume queues; created by the dispatcher or Open.
	cqs struct {
		sync.RWMutex
		m map[queueKey]*consumeQueue // Protected by cqs.
	}
	// dispatched is the commit-log offset below which every record is in
	// the consume queues and index (not necessarily durable).
	dispatched atomic.Int64
	// opened is set when recovery is over: records it redispatches are not news to anyone, and
	// the listener's owner is still being built, so MessageArrived waits for it.
	opened      atomic.Bool
	dispatchReq chan struct{} // wakes the dispatcher (capacity 1)
	// pend is the dispatcher's work list. Appends add to it while holding
	// mu, which keeps it in log order, but it has its own lock, held only
	// to add or to swap the list: when the dispatcher took mu to swap, it
	// waited behind appends copying into the log, lost the lock to the
	// next append over and over, and the mutex's starvation mode then made
	// every append hand its CPU to the dispatcher.
	pend struct {
		sync.Mutex
		items    []dispatchItem // written, not yet dispatched, in log order
		arena    arena          // the items' keys
		busy     bool           // the dispatcher holds a batch
		sleeping bool           // the dispatcher waits for dispatchReq
		idle     *sync.Cond     // signalled when items is empty and busy false
	}
	deleteHours []int
	done        chan struct{} // closed by Close to stop the goroutines
	wg          sync.WaitGroup
	recovery    RecoveryInfo
}

// queueNext is what appends keep of a queue: the offset its next message gets,
// and its topic as a string of the store's own.
type queueNext struct {
	topic  string
	offset int64
}

// arena holds strings copied for the dispatcher, in one buffer reused once
// the strings handed out are dropped: appends copy into one arena while the
// dispatcher works through the other's items.
type arena []byte

// add copies v into a and returns the copy. A copy made before a grew keeps
// the old array alive, so handed-out strings stay intact until a is reset.
func (a *arena) add(v string) string {
	if v == "" {
		return ""
	}
	if cap(*a)-len(*a) < len(v) {
		*a = make([]byte, 0, max(2*cap(*a), len(v), 4<<10))
	}
	start := len(*a)
	*a = append(*a, v...)
	return unsafe.String(&(*a)[start], len(v))
}

// dispatchItem is what the dispatcher needs of one stored record.
type dispatchItem struct {
	topic          string
	queueID        int32
	queueOffset    int64
	consumable     bool // goes into the consume queue (see isConsumable)
	offset         int64
	size           int32
	tagsCode       int64
	storeTimestamp int64
	keys           string
	uniqKey        string
}

const (
	commitLogDir    = "commitlog"
	consumeQueueDir = "consumequeue"
	indexDir        = "index"
	checkpointFile  = "checkpoint"
	abortFile       = "abort"
)

// Open opens the store in dir, creating it if needed, and recovers it:
// after an unclean stop the commit log past the checkpoint is re-validated
// (size, magic, CRC, position), a torn tail is truncated, and consume queues
// and the index are rebuilt from it. opts may be nil; Open copies it and
// fills defaults. The caller must Close the store.
func Open(dir string, opts *Options) (*Store, error) {
	o := *opts.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		opts:        &o,
		dir:         dir,
		flushReq:    make(chan struct{}, 1),
		prefaultReq: make(chan struct{}, 1),
		dispatchReq: make(chan struct{}, 1),
		done:        make(chan struct{}),
	}
	s.deleteHours, _ = parseDeleteWhen(o.DeleteWhen)
	s.pend.idle = sync.NewCond(&s.pend)
	s.mu.queues = make(map[queueKey]queueNext)
	s.cqs.m = make(map[queueKey]*consumeQueue)
	s.flush.done = make(chan struct{})
	if err := o.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s.opened.Store(true)
	s.start(s.runFlusher)
	s.start(s.runDispatcher)
	s.start(s.runHousekeeping)
	s.start(s.runPrefaulter)
	if o.FlushDiskType == SyncFlush {
		s.start(s.runWaiterExpiry)
	}
	return s, nil
}

// start runs f on a goroutine that Close waits for.
func (s *Store) start(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Close stops accepting appends, dispatches and flushes everything, writes a
// clean-shutdown checkpoint and releases the files. It returns the sticky
// error if writes had stopped; the store then recovers on the next Open.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.mu.closed = true
	s.mu.Unlock()
	s.waitDispatched()
	close(s.done)
	s.wg.Wait()

	err := s.stickyErr()
	if err == nil {
		end := s.log.written.Load()
		if err = s.flushTo(end); err == nil {
			if err = s.checkpoint(); err == nil {
				err = s.opts.FS.Remove(filepath.Join(s.dir, abortFile))
			}
		}
	}
	if err != nil {
		s.completeWaiters(time.Now(), err) // nothing more will be flushed
	}
	return errors.Join(err, s.closeFiles())
}

func (s *Store) closeFiles() error {
	var errs []error
	if s.log != nil {
		errs = append(errs, s.log.close())
	}
	s.cqs.Lock()
	for _, cq := range s.cqs.m {
		errs = append(errs, cq.close())
	}
	s.cqs.Unlock()
	if s.idx != nil {
		errs = append(errs, s.idx.close())
	}
	return errors.Join(errs...)
}

func (s *Store) wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *Store) stickyErr() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records the sticky error and returns it; the first error wins. No
// lock needs to be held.
func (s *Store) fail(err error) error {
	err = fmt.Errorf("%w: %w", ErrWritesStopped, err)
	if s.failed.CompareAndSwap(nil, &err) {
		s.opts.Logger.Error("store: writes stopped", "err", err)
		if f := s.opts.Listener.WritesStopped; f != nil {
			f(err)
		}
		return err
	}
	return s.stickyErr()
}

// AppendResult describes a stored message or batch.
type AppendResult struct {
	Status AppendStatus
	// QueueOffset and CommitLogOffset are those of the first message.
	QueueOffset     int64
	CommitLogOffset int64
	// StoreTimestamp is the STORETIMESTAMP written (ms).
	StoreTimestamp int64
	// Count is the number of messages stored; WroteBytes their size.
	Count      int
	WroteBytes int
	// RecordOffsets holds the commit-log offset of every message of a
	// batch (nil for a single Append).
	RecordOffsets []int64
}

// Append stores one message. It assigns m.QueueOffset, m.CommitLogOffset and
// m.StoreTimestamp, and sets m.StoreHost to Options.StoreHost if it is zero;
// the caller must not use m concurrently. Under SyncFlush it returns after an
// fsync covers the message, or with FlushDiskTimeout after SyncFlushTimeout
// or when ctx ends (the message is stored either way). The error is nil for
// PutOK and explains every other status. Append copies what it keeps of m:
// the caller may reuse m and the memory behind its strings and body once it
// returns (AppendThen: once AppendThen returns).
func (s *Store) Append(ctx context.Context, m *message.Message) (AppendResult, error) {
	ms := [1]*message.Message{m}
	return s.append(ctx, ms[:], false)
}

// AppendBatch stores messages as consecutive records with consecutive queue
// offsets, all or none. They must share one topic and queue id (the broker
// fills both from the SEND_BATCH_MESSAGE header), have no transaction type,
// and fit in one segment.
func (s *Store) AppendBatch(ctx context.Context, msgs []*message.Message) (AppendResult, error) {
	if len(msgs) == 0 {
		return AppendResult{Status: MessageIllegal}, fmt.Errorf("%w: empty batch", ErrMessageIllegal)
	}
	for _, m := range msgs {
		if m.Topic != msgs[0].Topic || m.QueueID != msgs[0].QueueID {
			return AppendResult{Status: MessageIllegal}, fmt.Errorf("%w: batch mixes queues", ErrMessageIllegal)
		}
		if message.TransactionType(m.SysFlag) != message.TransactionNotType {
			return AppendResult{Status: MessageIllegal}, fmt.Errorf("%w: batch with a transaction type", ErrMessageIllegal)
		}
	}
	return s.append(ctx, msgs, true)
}

// AppendThen stores one message as Append does and calls done with the outcome. Under SyncFlush
// it does not wait: done runs on the flusher goroutine once an fsync covers the message (or with
// FlushDiskTimeout after SyncFlushTimeout, or the error that stopped writes), so a caller needs no
// goroutine per message waiting for the disk. Otherwise done runs before AppendThen returns. done
// must be quick and must not call back into the store's write path.
func (s *Store) AppendThen(m *message.Message, done func(AppendResult, error)) {
	ms := [1]*message.Message{m}
	res, err := s.write(ms[:], false)
	if err != nil || s.opts.FlushDiskType != SyncFlush {
		done(res, err)
		return
	}
	end := res.CommitLogOffset + int64(res.WroteBytes)
	s.flush.Lock()
	if s.flush.flushed >= end {
		s.flush.Unlock()
		done(res, nil)
		return
	}
	s.flush.waiters = append(s.flush.waiters, flushWaiter{end: end, deadline: time.Now().Add(s.opts.SyncFlushTimeout), res: res, done: done})
	s.flush.Unlock()
	s.wake(s.flushReq)
}

// flushFailed is the outcome of a stored message whose fsync did not come: writes stopped, or the
// wait timed out.
func flushFailed(res AppendResult, err error) (AppendResult, error) {
	if errors.Is(err, ErrWritesStopped) {
		res.Status = ServiceNotAvailable
	} else {
		res.Status = FlushDiskTimeout
	}
	return res, err
}

// flushWaiter is an AppendThen waiting for an fsync.
type flushWaiter struct {
	end      int64 // the fsync must cover the log up to here
	deadline time.Time
	res      AppendResult
	done     func(AppendResult, error)
}

// completeWaiters calls back the AppendThen waiters that are covered by the flushed offset, or
// past their deadline, or all of them once writes have stopped (err).
func (s *Store) completeWaiters(now time.Time, err error) {
	s.flush.Lock()
	ready := s.flush.ready[:0] // the list of the last call, unless another call has it
	s.flush.ready = nil
	keep := s.flush.waiters[:0]
	for _, w := range s.flush.waiters {
		if err != nil || w.end <= s.flush.flushed || !now.Before(w.deadline) {
			ready = append(ready, w)
		} else {
			keep = append(keep, w)
		}
	}
	clear(s.flush.waiters[len(keep):])
	s.flush.waiters = keep
	flushed := s.flush.flushed
	s.flush.Unlock()
	for _, w := range ready {
		switch {
		case w.end <= flushed:
			w.done(w.res, nil)
		case err != nil:
			w.done(flushFailed(w.res, err))
		default:
			w.done(flushFailed(w.res, ErrFlushTimeout))
		}
	}
	clear(ready)
	s.flush.Lock()
	s.flush.ready = ready[:0]
	s.flush.Unlock()
}

// runWaiterExpiry fails the AppendThen waiters past SyncFlushTimeout. Not the flusher's job: a
// stalled fsync is exactly when they expire, and it stalls the flusher.
func (s *Store) runWaiterExpiry() {
	tick := time.NewTicker(min(max(s.opts.SyncFlushTimeout/4, time.Millisecond), 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-tick.C:
			s.completeWaiters(now, s.stickyErr())
		}
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

func (s *Store) append(ctx context.Context, msgs []*message.Message, batch bool) (AppendResult, error) {
	res, err := s.write(msgs, batch)
	if err != nil {
		return res, err
	}
	if s.opts.FlushDiskType == SyncFlush {
		s.wake(s.flushReq)
		if err := s.waitFlushed(ctx, res.CommitLogOffset+int64(res.WroteBytes)); err != nil {
			return flushFailed(res, err)
		}
	}
	return res, nil
}

// write encodes msgs and writes them to the log, without waiting for an fsync.
func (s *Store) write(msgs []*message.Message, batch bool) (res AppendResult, err error) {
	bp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 4<<20 {
			bufPool.Put(bp)
		}
	}()
	buf := (*bp)[:0]
	for _, m := range msgs {
		if len(m.Body) > s.opts.MaxMessageSize {
			return AppendResult{Status: MessageIllegal}, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrMessageIllegal, len(m.Body), s.opts.MaxMessageSize)
		}
		if !m.StoreHost.IsValid() {
			m.StoreHost = s.opts.StoreHost
		}
		if buf, err = message.AppendRecord(buf, m); err != nil {
			if errors.Is(err, message.ErrPropertiesTooLong) {
				return AppendResult{Status: PropertiesSizeExceeded}, err
			}
			return AppendResult{Status: MessageIllegal}, fmt.Errorf("%w: %w", ErrMessageIllegal, err)
		}
	}
	*bp = buf
	if int64(len(buf))+format.BlankSize > s.opts.SegmentSize {
		return AppendResult{Status: MessageIllegal}, fmt.Errorf("%w: %d bytes do not fit a segment", ErrMessageIllegal, len(buf))
	}
	if batch {
		res.RecordOffsets = make([]int64, len(msgs))
	}

	s.mu.Lock()
	res, err = s.writeLocked(buf, msgs, res)
	s.mu.Unlock()
	return res, err
}

// writeLocked writes encoded records to the log, assigning offsets. s.mu must
// be held.
func (s *Store) writeLocked(buf []byte, msgs []*message.Message, res AppendResult) (AppendResult, error) {
	switch {
	case s.mu.closed:
		return AppendResult{Status: ServiceNotAvailable}, ErrClosed
	case s.failed.Load() != nil:
		return AppendResult{Status: ServiceNotAvailable}, s.stickyErr()
	case s.diskFull.Load():
		return AppendResult{Status: DiskFull}, ErrDiskFull
	}
	seg, pos, err := s.segmentForWriteLocked(int64(len(buf)))
	if err != nil {
		return AppendResult{Status: statusFor(err)}, err
	}
	now := s.opts.Now().UnixMilli()
	q, known := s.mu.queues[queueKey{msgs[0].Topic, msgs[0].QueueID}]
	if !known {
		q.topic = strings.Clone(msgs[0].Topic) // the caller's may alias memory it reuses
	}
	queueOffset := q.offset
	consumable := isConsumable(msgs[0].SysFlag) // batches are never prepared or rolled back
	if !consumable {
		queueOffset = 0
	}
	for i, rec := 0, buf; i < len(msgs); i++ {
		m := msgs[i]
		size, _, _ := message.PeekSize(rec)
		m.QueueOffset, m.CommitLogOffset, m.StoreTimestamp = queueOffset+int64(i), pos+int64(len(buf)-len(rec)), now
		message.PatchRecord(rec[:size], m.QueueOffset, m.CommitLogOffset, now)
		if res.RecordOffsets != nil {
			res.RecordOffsets[i] = m.CommitLogOffset
		}
		rec = rec[size:]
	}
	if err := seg.write(buf, pos-seg.start); err != nil {
		// Nothing is acknowledged and the end does not move: the next
		// append overwrites whatever part of buf landed, and if none comes
		// before a crash, recovery cuts it as a torn record.
		if !isNoSpace(err) {
			return AppendResult{Status: ServiceNotAvailable}, s.fail(err)
		}
		s.diskFull.Store(true)
		return AppendResult{Status: DiskFull}, fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	end := pos + int64(len(buf))
	s.log.written.Store(end)
	if seg.needsPrefault(end) {
		s.wake(s.prefaultReq)
	}
	if end-seg.start > s.opts.SegmentSize/2 && !seg.nextAsked.Load() {
		seg.nextAsked.Store(true)
		s.wake(s.prefaultReq) // create the next segment ahead of need
	}
	s.addPending(buf, msgs, q.topic, consumable)
	if consumable {
		s.mu.queues[queueKey{q.topic, msgs[0].QueueID}] = queueNext{topic: q.topic, offset: queueOffset + int64(len(msgs))}
	}
	res.Status, res.QueueOffset, res.CommitLogOffset = PutOK, queueOffset, pos
	res.StoreTimestamp, res.Count, res.WroteBytes = now, len(msgs), len(buf)
	return res, nil
}

// addPending hands the written records of msgs (encoded in buf) to the
// dispatcher, waking it if it sleeps. topic is the store's own string of the
// messages' topic. s.mu must be held (log order).
//
// The caller may reuse the memory of msgs' strings once Append returns (the
// broker's send path does), so what the dispatcher needs of them is copied:
// the keys into the pending list's arena, which the dispatcher takes with it.
func (s *Store) addPending(buf []byte, msgs []*message.Message, topic string, consumable bool) {
	s.pend.Lock()
	for _, m := range msgs {
		size, _, _ := message.PeekSize(buf)
		buf = buf[size:]
		tags, keys, uniqKey := m.IndexedProperties()
		s.pend.items = append(s.pend.items, dispatchItem{
			topic: topic, queueID: m.QueueID, queueOffset: m.QueueOffset, consumable: consumable, offset: m.CommitLogOffset,
			size: size, tagsCode: message.TagsCode(tags), storeTimestamp: m.StoreTimestamp,
			keys: s.pend.arena.add(keys), uniqKey: s.pend.arena.add(uniqKey),
		})
	}
	// The dispatcher takes the whole list each time round and sleeps only
	// when it found the list empty, so only an append that finds it asleep
	// wakes it: one wake-up per sleep, not one per append.
	wake := s.pend.sleeping
	s.pend.sleeping = false
	s.pend.Unlock()
	if wake {
		s.wake(s.dispatchReq)
	}
}

// waitDispatched blocks until every record added so far is dispatched.
func (s *Store) waitDispatched() {
	s.pend.Lock()
	for len(s.pend.items) > 0 || s.pend.busy {
		s.pend.Unlock()
		s.wake(s.dispatchReq)
		s.pend.Lock()
		if len(s.pend.items) > 0 || s.pend.busy {
			s.pend.idle.Wait()
		}
	}
	s.pend.Unlock()
}

// isConsumable reports whether a message with this sysflag gets a queue
// offset and a consume-queue entry. As in RocketMQ, PREPARED and ROLLBACK
// transaction records live only in the commit log (queue offset 0, the
// queue's next offset unchanged); they are still indexed.
func isConsumable(sysFlag int32) bool {
	t := message.TransactionType(sysFlag)
	return t == message.TransactionNotType || t == message.TransactionCommitType
}

func statusFor(err error) AppendStatus {
	if errors.Is(err, ErrDiskFull) {
		return DiskFull
	}
	return ServiceNotAvailable
}

// segmentForWriteLocked returns the segment and log offset where n bytes go,
// closing the current segment with a blank marker and creating the next one
// when they do not fit. s.mu must be held.
func (s *Store) segmentForWriteLocked(n int64) (*segment, int64, error) {
	pos := s.log.written.Load()
	// Not the newest segment: the prefaulter creates the next one early.
	seg := s.log.segmentFor(pos)
	size := s.opts.SegmentSize
	if seg != nil && pos < seg.start+size && pos+n+format.BlankSize <= seg.start+size {
		return seg, pos, nil
	}
	next := pos
	if seg != nil && pos < seg.start+size {
		next = seg.start + size
	}
	if next%size != 0 {
		next += size - next%size
	}
	fresh, err := s.log.createSegment(next)
	if err != nil {
		if isNoSpace(err) {
			s.diskFull.Store(true)
			return nil, 0, fmt.Errorf("%w: %w", ErrDiskFull, err)
		}
		return nil, 0, s.fail(err)
	}
	if seg != nil && pos < seg.start+size {
		var blank [format.BlankSize]byte
		format.EncodeBlank(blank[:], int32(seg.start+size-pos))
		if err := seg.write(blank[:], pos-seg.start); err != nil {
			return nil, 0, s.fail(err)
		}
	}
	s.log.written.Store(next)
	return fresh, next, nil
}

// waitFlushed blocks until the commit log is durable up to end.
func (s *Store) waitFlushed(ctx context.Context, end int64) error {
	timer := time.NewTimer(s.opts.SyncFlushTimeout)
	defer timer.Stop()
	for {
		s.flush.Lock()
		flushed, ch := s.flush.flushed, s.flush.done
		s.flush.Unlock()
		if flushed >= end {
			return nil
		}
		if err := s.stickyErr(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-timer.C:
			return ErrFlushTimeout
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrFlushTimeout, ctx.Err())
		}
	}
}

// flushTo fsyncs the commit log up to end and publishes it. Concurrent
// calls are harmless: fsync is idempotent and flushed only moves forward.
func (s *Store) flushTo(end int64) error {
	s.flush.Lock()
	from := s.flush.flushed
	s.flush.Unlock()
	if end <= from {
		return nil
	}
	began := time.Now()
	err := s.log.sync(from, end)
	if err != nil {
		err = s.fail(err)
	}
	if err == nil {
		s.syncs.Add(1)
		s.syncNanos.Add(int64(time.Since(began)))
	}
	s.flush.Lock()
	if err == nil && end > s.flush.flushed {
		s.flush.flushed = end
	}
	close(s.flush.done)
	s.flush.done = make(chan struct{})
	waiting := len(s.flush.waiters) > 0
	s.flush.Unlock()
	if waiting {
		s.completeWaiters(time.Now(), err)
	}
	return err
}

// runFlusher owns commit-log fsyncs. Under SyncFlush it flushes whenever an
// append wakes it, so appends that arrive during an fsync share the next
// one (group commit). Under AsyncFlush it flushes every FlushInterval once
// FlushLeastBytes are dirty, or everything every FlushThoroughInterval.
func (s *Store) runFlusher() {
	ticker := time.NewTicker(s.opts.FlushInterval)
	defer ticker.Stop()
	lastThorough := s.opts.Now()
	for {
		select {
		case <-s.done:
			return
		case <-s.flushReq:
			if s.opts.FlushDiskType != SyncFlush {
				continue
			}
		case <-ticker.C:
			if s.opts.FlushDiskType == AsyncFlush {
				s.flush.Lock()
				dirty := s.log.written.Load() - s.flush.flushed
				s.flush.Unlock()
				if dirty < s.opts.FlushLeastBytes && s.opts.Now().Sub(lastThorough) < s.opts.FlushThoroughInterval {
					continue
				}
				lastThorough = s.opts.Now()
			}
		}
		if err := s.stickyErr(); err != nil {
			s.completeWaiters(time.Now(), err)
			continue
		}
		// Loop until caught up: appends that arrived during the fsync are
		// covered by the next one without waiting for another wake-up.
		for {
			// Let appenders that are runnable (typically the ones the last
			// fsync released) write before the group is cut; otherwise the
			// first of them triggers an fsync for itself alone and groups
			// alternate between tiny and large. No sleep: Gosched only
			// waits for goroutines that are ready to run.
			runtime.Gosched()
			end := s.log.written.Load()
			s.flush.Lock()
			caughtUp := end <= s.flush.flushed
			s.flush.Unlock()
			if caughtUp || s.flushTo(end) != nil {
				break
			}
		}
	}
}

// FlushedOffset returns the commit-log offset below which everything is
// durable.
func (s *Store) FlushedOffset() int64 {
	s.flush.Lock()
	defer s.flush.Unlock()
	return s.flush.flushed
}

// Flush fsyncs everything appended so far (for ASYNC_FLUSH callers that need
// a barrier, and for tests).
func (s *Store) Flush(ctx context.Context) error {
	end := s.log.written.Load()
	s.wake(s.flushReq)
	if s.opts.FlushDiskType != SyncFlush {
		// The async flusher does not react to wake-ups; flush here. flushTo
		// is idempotent and both callers only advance flushed.
		return s.flushTo(end)
	}
	return s.waitFlushed(ctx, end)
}

// Stats are counters for metrics.
type Stats struct {
	CommitLogSyncs    int64         // fsync rounds of the commit log (one per group commit)
	CommitLogSyncTime time.Duration // total time spent in them
	CommitLogWritten  int64         // end offset of the commit log
	CommitLogFlushed  int64         // durable end offset
	DispatchedOffset  int64         // records below are in the consume queues
	DiskFull, Stopped bool          // writes refused for space / after an I/O error
}

// Stats returns current counters.
func (s *Store) Stats() Stats {
	return Stats{
		CommitLogSyncs:    s.syncs.Load(),
		CommitLogSyncTime: time.Duration(s.syncNanos.Load()),
		CommitLogWritten:  s.log.written.Load(),
		CommitLogFlushed:  s.FlushedOffset(),
		DispatchedOffset:  s.dispatched.Load(),
		DiskFull:          s.diskFull.Load(),
		Stopped:           s.stickyErr() != nil,
	}
}

// runPrefaulter keeps the pages ahead of the write position present and,
// once the active segment is half full, creates the next one.
func (s *Store) runPrefaulter() {
	for {
		select {
		case <-s.done:
			return
		case <-s.prefaultReq:
			s.log.prefault()
			pos := s.log.written.Load()
			if seg := s.log.segmentFor(pos); seg != nil && pos-seg.start > s.opts.SegmentSize/2 && s.stickyErr() == nil {
				if err := s.log.createNext(); err != nil {
					s.opts.Logger.Warn("store: create next segment ahead", "err", err)
				}
			}
		}
	}
}
