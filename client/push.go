package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// retryPrefix names a group's retry topic, which clustering consumers also subscribe to.
const retryPrefix = "%RETRY%"

// Handler processes one message of a PushConsumer. It returns nil when the message is consumed; an
// error sends it back to the broker, which delivers it again later (10 s, 30 s, 1 min, ... by
// default) and moves it to the group's dead-letter queue (%DLQ%group) after WithMaxReconsumeTimes
// tries. It is called on up to WithConsumeGoroutines goroutines at once, so it must be safe for
// concurrent use; ctx ends when a Shutdown's context does.
type Handler func(ctx context.Context, m *message.Message) error

// pushCfg is a PushConsumer's configuration.
type pushCfg struct {
	consumerCfg
	goroutines        int
	maxCachedMessages int
	maxCachedBytes    int
	maxReconsumeTimes int
	retryDelayLevel   int
	persistInterval   time.Duration
	orderly           bool
	orderlyRetryDelay time.Duration
	broadcastFile     string // "" when clustering
}

func defaultPush() pushCfg {
	return pushCfg{
		consumerCfg:       defaultConsumer(),
		goroutines:        20,
		maxCachedMessages: 1000,
		maxCachedBytes:    100 << 20,
		maxReconsumeTimes: 16,
		persistInterval:   5 * time.Second,
		orderlyRetryDelay: time.Second,
	}
}

type pushOpt func(*pushCfg)

func (o pushOpt) applyPushConsumer(c *pushCfg) { o(c) }

// WithConsumeGoroutines sets how many messages are handled at once (RocketMQ's consumeThreadMax).
// Default 20; zero or negative keeps the default.
func WithConsumeGoroutines(n int) PushConsumerOpt {
	return pushOpt(func(c *pushCfg) { setPositive(&c.goroutines, n) })
}

// WithQueueFlowControl sets how many messages and body bytes of one queue may wait for the handler
// before its pulls pause (RocketMQ's pullThresholdForQueue and pullThresholdSizeForQueue).
// Default 1000 messages and 100 MiB; zero or negative keeps a default.
func WithQueueFlowControl(messages, bytes int) PushConsumerOpt {
	return pushOpt(func(c *pushCfg) {
		setPositive(&c.maxCachedMessages, messages)
		setPositive(&c.maxCachedBytes, bytes)
	})
}

// WithMaxReconsumeTimes sets how many times a failed message is redelivered before the broker moves
// it to the dead-letter queue. Default 16; zero or negative keeps the default.
func WithMaxReconsumeTimes(n int) PushConsumerOpt {
	return pushOpt(func(c *pushCfg) { setPositive(&c.maxReconsumeTimes, n) })
}

// WithRetryDelayLevel sets the delay level of redeliveries (1 = 1 s, 2 = 5 s, 3 = 10 s, ... with the
// broker's default messageDelayLevel). Default 0: the broker's choice, 3 + the times the message was
// already redelivered (10 s, 30 s, 1 min, 2 min, ...).
func WithRetryDelayLevel(level int) PushConsumerOpt {
	return pushOpt(func(c *pushCfg) { c.retryDelayLevel = max(level, 0) })
}

// WithOffsetPersistInterval sets how often consumed offsets are committed to the brokers (RocketMQ's
// persistConsumerOffsetInterval); Shutdown and rebalancing commit at once. Default 5 s; zero or
// negative keeps the default.
func WithOffsetPersistInterval(d time.Duration) PushConsumerOpt {
	return pushOpt(func(c *pushCfg) { setPositive(&c.persistInterval, d) })
}

// processQueue is a queue a PushConsumer owns: its pull loop and the messages pulled but not yet
// consumed.
type processQueue struct {
	mq       MessageQueue
	cancel   context.CancelFunc // stops the pull loop (and the orderly loop)
	done     chan struct{}      // closed when the pull loop has returned
	consumed chan struct{}      // closed when the orderly loop has returned (at once when concurrent)
	wake     chan struct{}      // orderly: messages were pushed; buffered 1

	mu struct {
		sync.Mutex
		inflight map[int64]int // queue offset → body size, pulled and not consumed. Protected by mu.
		lowest   int64         // the smallest offset in inflight, when it is not empty. Protected by mu.
		bytes    int           // sum of inflight. Protected by mu.
		next     int64         // offset after the last pulled one; -1 until the first pull. Protected by mu.
		dropped  bool          // the queue is no longer owned. Protected by mu.
		orderly  orderlyState  // Protected by mu.
	}
}

func newProcessQueue(mq MessageQueue) *processQueue {
	q := &processQueue{mq: mq, done: make(chan struct{}), consumed: make(chan struct{}), wake: make(chan struct{}, 1)}
	q.mu.inflight = map[int64]int{}
	q.mu.next = -1
	return q
}

// add records pulled messages and the offset after them.
func (q *processQueue) add(msgs []*message.Message, next int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range msgs {
		if len(q.mu.inflight) == 0 || m.QueueOffset < q.mu.lowest {
			q.mu.lowest = m.QueueOffset
		}
		q.mu.inflight[m.QueueOffset] = len(m.Body)
		q.mu.bytes += len(m.Body)
	}
	q.mu.next = max(q.mu.next, next)
}

// remove marks a message consumed and returns the offset the group can commit: the smallest offset
// still in flight, or the offset after the last pulled message. ok is false once the queue is dropped.
func (q *processQueue) remove(off int64) (commit int64, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if size, found := q.mu.inflight[off]; found {
		delete(q.mu.inflight, off)
		q.mu.bytes -= size
		if off == q.mu.lowest && len(q.mu.inflight) > 0 {
			// Walk up to the next offset still in flight. Pulled offsets are mostly contiguous, so
			// over all removals this walks each offset once, where a scan of the map per removal
			// was a tenth of a consumer's CPU.
			for q.mu.lowest++; q.mu.lowest < q.mu.next; q.mu.lowest++ {
				if _, in := q.mu.inflight[q.mu.lowest]; in {
					break
				}
			}
		}
	}
	return q.commitPointLocked()
}

func (q *processQueue) commitPoint() (int64, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.commitPointLocked()
}

func (q *processQueue) commitPointLocked() (int64, bool) {
	if q.mu.dropped || q.mu.next < 0 {
		return 0, false
	}
	if len(q.mu.inflight) == 0 {
		return q.mu.next, true
	}
	return q.mu.lowest, true
}

// full reports whether the queue holds as many messages or bytes as flow control allows, or, with
// maxSpan > 0, whether its oldest unconsumed message lies maxSpan or more offsets behind the newest
// pulled one (RocketMQ's consumeConcurrentlyMaxSpan: one stuck message must not let the uncommitted
// window, re-delivered after a crash, grow without bound).
func (q *processQueue) full(maxMessages, maxBytes int, maxSpan int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.mu.inflight) >= maxMessages || q.mu.bytes >= maxBytes {
		return true
	}
	if maxSpan > 0 && len(q.mu.inflight) > 0 {
		return q.mu.next-q.mu.lowest >= maxSpan
	}
	return false
}

func (q *processQueue) drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mu.dropped = true
}

func (q *processQueue) isDropped() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.mu.dropped
}

// workItem is one message waiting for the handler.
type workItem struct {
	pq  *processQueue
	msg *message.Message
}

// PushConsumer delivers messages to a Handler: a long-polling pull loop per owned queue with flow
// control, a pool of consuming goroutines, the group's queues shared among its members (clustering,
// average strategy), failed messages sent back to the broker for redelivery, and offsets committed
// to the brokers. Create it with NewPushConsumer, Subscribe, then Start; stop it with Shutdown (not
// concurrently with Start). Its methods are safe for concurrent use otherwise.
//
// Goroutines: one pull loop per owned queue, WithConsumeGoroutines workers, one rebalance loop, one
// heartbeat loop, one offset-persisting loop, and a short-lived one per message waiting to be retried
// locally after a failed send-back. Shutdown stops them all.
type PushConsumer struct {
	c       *core
	cfg     pushCfg
	group   string
	handler Handler

	work          chan *workItem
	stop          chan struct{} // closed by Shutdown: loops end
	workersStop   chan struct{} // closed by Shutdown after the pull loops ended: workers end
	workers       sync.WaitGroup
	handlerCtx    context.Context // canceled when Shutdown's context ends
	handlerCancel context.CancelFunc
	rebalanceNow  chan struct{} // buffered 1
	sem           chan struct{} // orderly: one token per handler running
	rebalanceMu   sync.Mutex    // serializes rebalance and resetOffsets, which both replace queues; taken before mu

	mu struct {
		sync.Mutex
		subs       map[string]string              // topic → TAG expression, the retry topic included. Protected by mu.
		tags       map[string]map[string]struct{} // topic → accepted tags, nil for all. Protected by mu.
		subVersion int64                          // Protected by mu.
		state      int                            // 0 new, 1 started, 2 shut down. Protected by mu.
		queues     map[MessageQueue]*processQueue // owned queues. Protected by mu.
		offsets    map[MessageQueue]int64         // consumed offsets to commit. Protected by mu.
		committed  map[MessageQueue]int64         // last committed offsets. Protected by mu.
		local      *localOffsets                  // broadcasting only. Protected by mu.
		started    time.Time                      // when Start ran. Protected by mu.
	}
}

// NewPushConsumer returns a consumer of group that hands messages to handler.
func NewPushConsumer(group string, handler Handler, opts ...PushConsumerOpt) (*PushConsumer, error) {
	cfg := defaultPush()
	for _, o := range opts {
		o.applyPushConsumer(&cfg)
	}
	if err := cfg.validate(group); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, errors.New("client: NewPushConsumer: nil handler")
	}
	pc := &PushConsumer{cfg: cfg, group: group, handler: handler, work: make(chan *workItem, cfg.goroutines),
		stop: make(chan struct{}), workersStop: make(chan struct{}), rebalanceNow: make(chan struct{}, 1),
		sem: make(chan struct{}, cfg.goroutines)}
	pc.handlerCtx, pc.handlerCancel = context.WithCancel(context.Background())
	pc.mu.subs = map[string]string{}
	pc.mu.tags = map[string]map[string]struct{}{}
	pc.mu.queues = map[MessageQueue]*processQueue{}
	pc.mu.offsets = map[MessageQueue]int64{}
	pc.mu.committed = map[MessageQueue]int64{}
	mux := transport.NewMux()
	mux.HandleFunc(code.NotifyConsumerIDsChanged, func(context.Context, *transport.Conn, *remoting.Command) *remoting.Command {
		pc.triggerRebalance()
		return nil
	})
	mux.HandleFunc(code.ResetConsumerClientOffset, pc.handleResetOffset)
	mux.HandleFunc(code.GetConsumerStatusFromClient, pc.handleConsumerStatus)
	mux.HandleFunc(code.GetConsumerRunningInfo, pc.handleRunningInfo)
	pc.c = newCore(cfg.common, mux)
	return pc, nil
}

// ClientID returns the id the consumer announces to brokers (ip@instance).
func (pc *PushConsumer) ClientID() string { return pc.c.clientID }

// Subscribe adds topic with a TAG expression ("*", "" or "a || b"). Call it before Start; a
// subscription added later takes effect at the next rebalance.
func (pc *PushConsumer) Subscribe(topic, expr string) error {
	if err := body.ValidateTopic(topic); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if expr == "" {
		expr = body.SubAll
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.subscribeLocked(topic, expr)
	return nil
}

func (pc *PushConsumer) subscribeLocked(topic, expr string) {
	pc.mu.subs[topic] = expr
	pc.mu.subVersion = time.Now().UnixMilli()
	pc.mu.tags[topic] = tagSet(expr)
}

func (pc *PushConsumer) triggerRebalance() {
	select {
	case pc.rebalanceNow <- struct{}{}:
	default:
	}
}

// Start announces the consumer to the brokers of its topics, takes its share of the queues and starts
// consuming. A topic that does not exist yet is looked up again every second. It fails when no
// NameServer answers.
func (pc *PushConsumer) Start(ctx context.Context) error {
	pc.mu.Lock()
	if pc.mu.state != 0 {
		pc.mu.Unlock()
		return errors.New("client: PushConsumer.Start called twice or after Shutdown")
	}
	if len(pc.mu.subs) == 0 {
		pc.mu.Unlock()
		return errors.New("client: PushConsumer.Start without a subscription")
	}
	topics := slices.Collect(maps.Keys(pc.mu.subs))
	if pc.cfg.broadcastFile == "" {
		pc.subscribeLocked(retryPrefix+pc.group, body.SubAll)
	} else {
		lo, err := loadLocalOffsets(pc.cfg.broadcastFile)
		if err != nil {
			pc.mu.Unlock()
			return err
		}
		pc.mu.local = lo
	}
	pc.mu.state = 1
	pc.mu.started = time.Now()
	pc.mu.Unlock()
	for _, topic := range topics {
		_, err := pc.c.routes.get(ctx, topic, false)
		if errors.Is(err, &ResponseError{Code: code.TopicNotExist}) {
			// Often a producer has not created it yet: rebalancing tries again every second.
			pc.cfg.common.logger.Warn("subscribed topic does not exist yet", "group", pc.group, "topic", topic)
			continue
		}
		if err != nil {
			pc.mu.Lock()
			pc.mu.state = 0 // nothing started: Start may be called again
			pc.mu.Unlock()
			return err
		}
	}
	pc.heartbeat(ctx)
	pc.c.routes.start()
	if !pc.cfg.orderly {
		for range pc.cfg.goroutines {
			pc.workers.Add(1)
			pc.c.spawn(pc.worker)
		}
	} else if pc.cfg.broadcastFile == "" {
		pc.loop(lockRenewInterval, nil, pc.renewLocks)
	}
	pc.loop(pc.cfg.common.heartbeatInterval, nil, pc.heartbeat)
	pc.loop(pc.cfg.persistInterval, nil, func(ctx context.Context) { pc.persist(ctx) })
	pc.loop(pc.cfg.rebalancePeriod, pc.rebalanceNow, pc.rebalance)
	pc.triggerRebalance()
	return nil
}

// loop runs fn every d and whenever wake fires, until Shutdown.
func (pc *PushConsumer) loop(d time.Duration, wake <-chan struct{}, fn func(ctx context.Context)) {
	pc.c.spawn(func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-pc.stop:
				return
			case <-pc.c.done:
				return
			case <-t.C:
			case <-wake:
			}
			fn(pc.c.ctx)
		}
	})
}

func (pc *PushConsumer) heartbeat(ctx context.Context) {
	pc.mu.Lock()
	model := body.Clustering
	if pc.cfg.broadcastFile != "" {
		model = body.Broadcasting
	}
	hb := consumerHeartbeat(pc.c.clientID, pc.group, body.ConsumePassively, model, pc.cfg.from, pc.mu.subs, pc.mu.subVersion)
	pc.mu.Unlock()
	pc.c.heartbeat(ctx, hb, true)
}

// rebalance recomputes the owned queues: new ones get a pull loop, released ones are stopped and
// their offsets committed at once. A topic whose route or member list cannot be read keeps its queues
// and is tried again in a second.
func (pc *PushConsumer) rebalance(ctx context.Context) {
	pc.rebalanceMu.Lock()
	defer pc.rebalanceMu.Unlock()
	pc.mu.Lock()
	topics := slices.Collect(maps.Keys(pc.mu.subs))
	pc.mu.Unlock()
	want := map[MessageQueue]bool{}
	failed := map[string]bool{}
	for _, topic := range topics {
		r, err := pc.c.routes.get(ctx, topic, false)
		if err == nil && pc.cfg.broadcastFile != "" {
			for _, q := range r.readQueues {
				want[q] = true
			}
			continue
		}
		if err == nil {
			var ids []string
			if ids, err = pc.c.consumerIDs(ctx, pc.group, r); err == nil && slices.Contains(ids, pc.c.clientID) {
				if len(ids) > 1 && !strings.HasPrefix(topic, retryPrefix) {
					pc.checkSubscriptions(ctx, r)
				}
				for _, q := range pc.cfg.allocate.Allocate(r.readQueues, ids, pc.c.clientID) {
					want[q] = true
				}
				continue
			}
			if err == nil {
				err = errors.New("this client is not among the group's members yet")
			}
		}
		failed[topic] = true
		pc.cfg.common.logger.Debug("rebalance: topic skipped", "group", pc.group, "topic", topic, "err", err)
	}
	pc.mu.Lock()
	if pc.mu.state != 1 {
		pc.mu.Unlock()
		return
	}
	var released []*processQueue
	for mq, pq := range pc.mu.queues {
		if !want[mq] && !failed[mq.Topic] {
			released = append(released, pq)
			delete(pc.mu.queues, mq)
		}
	}
	var added []MessageQueue
	for mq := range want {
		if pc.mu.queues[mq] == nil {
			added = append(added, mq)
		}
	}
	pc.mu.Unlock()
	for _, pq := range released {
		pc.release(ctx, pq)
	}
	var lockedAt time.Time
	var held map[MessageQueue]bool
	locking := pc.cfg.orderly && pc.cfg.broadcastFile == "" // broadcasting members share nothing: no locks
	if locking && len(added) > 0 {
		lockedAt, held = time.Now(), pc.lockQueues(ctx, added)
	}
	pc.mu.Lock()
	for _, mq := range added {
		if pc.mu.state != 1 || pc.mu.queues[mq] != nil {
			continue
		}
		if locking && !held[mq] {
			failed[mq.Topic] = true // locked by another member still: try again soon
			continue
		}
		pc.startQueueLocked(mq, lockedAt, -1)
	}
	pc.mu.Unlock()
	if len(failed) > 0 {
		pc.heartbeat(ctx) // a broker that did not know this client yet does now
		pc.c.spawn(func() {
			select {
			case <-pc.stop:
			case <-time.After(time.Second):
				pc.triggerRebalance()
			}
		})
	}
}

// startQueueLocked starts pulling (and, when orderly, handling) mq from startAt, or from the
// group's committed offset when startAt is negative. lockedAt is when its broker lock was granted.
func (pc *PushConsumer) startQueueLocked(mq MessageQueue, lockedAt time.Time, startAt int64) {
	pq := newProcessQueue(mq)
	var pctx context.Context
	pctx, pq.cancel = context.WithCancel(pc.c.ctx)
	pc.mu.queues[mq] = pq
	pc.c.spawn(func() { pc.pullLoop(pctx, pq, startAt) })
	if pc.cfg.orderly {
		pq.setLocked(lockedAt)
		pc.c.spawn(func() { pc.orderlyLoop(pctx, pq) })
	} else {
		close(pq.consumed)
	}
}

// release stops a queue's pull loop, drops it and commits its offset.
func (pc *PushConsumer) release(ctx context.Context, pq *processQueue) {
	pq.cancel()
	<-pq.done
	<-pq.consumed
	off, ok := pq.commitPoint()
	pq.drop()
	pc.mu.Lock()
	delete(pc.mu.offsets, pq.mq)
	delete(pc.mu.committed, pq.mq)
	pc.mu.Unlock()
	if ok {
		if err := pc.storeOffset(ctx, pq.mq, off); err != nil {
			pc.cfg.common.logger.Warn("committing a released queue failed", "queue", pq.mq, "err", err)
		}
	}
	if pc.cfg.orderly && pc.cfg.broadcastFile == "" {
		pc.unlockQueues(ctx, []MessageQueue{pq.mq})
	}
}

// wait waits d unless ctx ends first, which it reports as false.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Back-offs of the pull loop (RocketMQ's push consumer).
const (
	maxConsumeSpan      = 2000 // consumeConcurrentlyMaxSpan
	pullDelayOnError    = 3 * time.Second
	pullDelayOnFlowCtrl = 50 * time.Millisecond
	sendBackRetryDelay  = 5 * time.Second
)

// pullLoop pulls one queue until ctx ends and hands its messages to the workers.
func (pc *PushConsumer) pullLoop(ctx context.Context, pq *processQueue, startAt int64) {
	defer close(pq.done)
	next := startAt
	for next < 0 {
		off, err := pc.loadOffset(ctx, pq.mq)
		if err == nil {
			next = off
			break
		}
		pc.cfg.common.logger.Warn("start offset unknown", "queue", pq.mq, "err", err)
		if !wait(ctx, pullDelayOnError) {
			return
		}
	}
	pc.mu.Lock()
	expr := pc.mu.subs[pq.mq.Topic]
	tags := pc.mu.tags[pq.mq.Topic]
	pc.mu.Unlock()
	for {
		span := int64(maxConsumeSpan)
		if pc.cfg.orderly {
			span = 0 // one message at a time anyway
		}
		if pq.full(pc.cfg.maxCachedMessages, pc.cfg.maxCachedBytes, span) {
			if !wait(ctx, pullDelayOnFlowCtrl) {
				return
			}
			continue
		}
		res := pc.c.pullQueue(ctx, &pc.cfg.consumerCfg, pc.group, pq.mq, next, expr)
		if res.err != nil {
			if ctx.Err() != nil {
				return
			}
			pc.cfg.common.logger.Warn("pull failed", "queue", pq.mq, "err", res.err)
			if !wait(ctx, pullDelayOnError) {
				return
			}
			continue
		}
		next = res.next
		var visible []*message.Message
		for _, m := range res.msgs {
			if !accepts(tags, m) {
				continue
			}
			if rt := m.Property(message.PropertyRetryTopic); rt != "" && m.Topic == retryPrefix+pc.group {
				m.Topic = rt // deliver retries under their own topic, as the Java client does
			}
			visible = append(visible, m)
		}
		pq.add(visible, res.next)
		if len(visible) == 0 {
			if off, ok := pq.commitPoint(); ok {
				pc.updateOffset(pq, off)
			}
			continue
		}
		if pc.cfg.orderly {
			pq.push(visible)
			continue
		}
		for _, m := range visible {
			select {
			case pc.work <- &workItem{pq: pq, msg: m}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// updateOffset records a queue's new consumed offset. Offsets only grow: workers compute them
// under the queue's lock but store them here in any order.
func (pc *PushConsumer) updateOffset(pq *processQueue, off int64) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if cur, ok := pc.mu.offsets[pq.mq]; pc.mu.queues[pq.mq] == pq && (!ok || off > cur) {
		pc.mu.offsets[pq.mq] = off
	}
}

// worker hands messages to the handler until Shutdown.
func (pc *PushConsumer) worker() {
	defer pc.workers.Done()
	for {
		select {
		case it := <-pc.work:
			pc.consume(it)
		case <-pc.workersStop:
			return
		case <-pc.c.done:
			return
		}
	}
}

func (pc *PushConsumer) consume(it *workItem) {
	if it.pq.isDropped() {
		return
	}
	start := time.Now()
	err := pc.handler(pc.handlerCtx, it.msg)
	pc.cfg.common.onConsume(it.pq.mq, time.Since(start), err)
	if err != nil && pc.cfg.broadcastFile != "" {
		pc.cfg.common.logger.Warn("broadcast message failed; it is not redelivered", "queue", it.pq.mq,
			"offset", it.msg.QueueOffset, "msg_id", it.msg.MsgID(), "err", err)
	} else if err != nil {
		if serr := pc.sendBack(pc.handlerCtx, it.pq.mq, it.msg, pc.cfg.retryDelayLevel); serr != nil {
			pc.cfg.common.logger.Warn("send-back failed; the message is retried here", "queue", it.pq.mq,
				"offset", it.msg.QueueOffset, "err", serr)
			pc.retryLater(it)
			return
		}
	}
	if off, ok := it.pq.remove(it.msg.QueueOffset); ok {
		pc.updateOffset(it.pq, off)
	}
}

// retryLater hands a message whose send-back failed to the workers again after a delay.
func (pc *PushConsumer) retryLater(it *workItem) {
	pc.c.spawn(func() {
		select {
		case <-pc.workersStop:
			return
		case <-pc.c.done:
			return
		case <-time.After(sendBackRetryDelay):
		}
		select {
		case pc.work <- it:
		case <-pc.workersStop:
		case <-pc.c.done:
		}
	})
}

// sendBack asks the broker to redeliver m later (CONSUMER_SEND_MSG_BACK) with delayLevel: 0 lets the
// broker choose, -1 sends it to the dead-letter queue at once.
func (pc *PushConsumer) sendBack(ctx context.Context, mq MessageQueue, m *message.Message, delayLevel int) error {
	addr := pc.c.routes.masterAddr(mq.BrokerName)
	if addr == "" {
		return fmt.Errorf("%w: no master address for broker %s", ErrNoRoute, mq.BrokerName)
	}
	ext := remoting.Fields{
		"offset", strconv.FormatInt(m.CommitLogOffset, 10),
		"group", pc.group,
		"delayLevel", strconv.Itoa(delayLevel),
		"originMsgId", m.MsgID(),
		"originTopic", m.Topic,
		"unitMode", "false",
		"maxReconsumeTimes", strconv.Itoa(pc.cfg.maxReconsumeTimes),
	}
	_, err := pc.c.call(ctx, addr, remoting.NewRequest(code.ConsumerSendMsgBack, ext, nil))
	return err
}

// persist commits the offsets that moved since the last commit.
func (pc *PushConsumer) persist(ctx context.Context) error {
	pc.mu.Lock()
	todo := map[MessageQueue]int64{}
	for mq, off := range pc.mu.offsets {
		if c, ok := pc.mu.committed[mq]; !ok || c != off {
			todo[mq] = off
		}
	}
	pc.mu.Unlock()
	var errs []error
	for mq, off := range todo {
		if err := pc.storeOffset(ctx, mq, off); err != nil {
			errs = append(errs, err)
			continue
		}
		pc.mu.Lock()
		if _, owned := pc.mu.queues[mq]; owned {
			pc.mu.committed[mq] = off
		}
		pc.mu.Unlock()
	}
	if err := errors.Join(errs...); err != nil {
		pc.cfg.common.logger.Warn("committing offsets failed", "group", pc.group, "err", err)
		return err
	}
	return nil
}

// Assignment returns the queues the consumer owns now, sorted.
func (pc *PushConsumer) Assignment() []MessageQueue {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return sortedQueues(pc.mu.queues)
}

// Shutdown stops pulling, lets the handlers in progress finish (their context is canceled if ctx ends
// first), commits the consumed offsets, leaves the group (UNREGISTER_CLIENT, so the other members
// rebalance at once), stops every goroutine and closes the connections. Messages pulled but not
// handled are delivered again to whoever owns their queue next. It returns ctx's error if ctx ended
// before the handlers, or the commit's error.
func (pc *PushConsumer) Shutdown(ctx context.Context) error {
	pc.mu.Lock()
	if pc.mu.state == 2 {
		pc.mu.Unlock()
		return nil
	}
	started := pc.mu.state == 1
	pc.mu.state = 2
	queues := slices.Collect(maps.Values(pc.mu.queues))
	pc.mu.Unlock()
	defer pc.c.close()
	defer pc.handlerCancel()
	if !started {
		return nil
	}
	close(pc.stop)
	for _, pq := range queues {
		pq.cancel()
	}
	for _, pq := range queues {
		<-pq.done
	}
	close(pc.workersStop)
	orderlyDone := make(chan struct{})
	go func() {
		for _, pq := range queues {
			<-pq.consumed
		}
		close(orderlyDone)
	}()
	finished := make(chan struct{})
	go func() {
		pc.workers.Wait()
		close(finished)
	}()
	var err error
	for _, ch := range []chan struct{}{finished, orderlyDone} {
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
			pc.handlerCancel()
			<-ch
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 2*pc.cfg.common.requestTimeout)
	defer cancel()
	if perr := pc.persist(cctx); err == nil {
		err = perr
	}
	if pc.cfg.orderly && pc.cfg.broadcastFile == "" {
		pc.unlockQueues(cctx, sortedQueues(pc.ownedQueues(queues)))
	}
	pc.c.unregister(cctx, "consumerGroup", pc.group)
	return err
}

// Close is Shutdown without a deadline.
func (pc *PushConsumer) Close() error { return pc.Shutdown(context.Background()) }

func (pc *PushConsumer) ownedQueues(queues []*processQueue) map[MessageQueue]bool {
	out := make(map[MessageQueue]bool, len(queues))
	for _, pq := range queues {
		out[pq.mq] = true
	}
	return out
}

// checkSubscriptions warns when other members of the group subscribe differently (see
// core.checkSubscriptions), asking the first master of route r.
func (pc *PushConsumer) checkSubscriptions(ctx context.Context, r *topicRoute) {
	pc.mu.Lock()
	subs := maps.Clone(pc.mu.subs)
	pc.mu.Unlock()
	for _, bd := range r.data.BrokerDatas {
		if addr := bd.BrokerAddrs[body.MasterID]; addr != "" {
			pc.c.checkSubscriptions(ctx, addr, pc.group, subs)
			return
		}
	}
}
