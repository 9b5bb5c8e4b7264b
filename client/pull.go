package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// pullCfg is a PullConsumer's configuration.
type pullCfg struct {
	consumerCfg
	autoCommit time.Duration
}

func defaultPull() pullCfg {
	return pullCfg{consumerCfg: defaultConsumer(), autoCommit: 5 * time.Second}
}

type pullOpt func(*pullCfg)

func (o pullOpt) applyPullConsumer(c *pullCfg) { o(c) }

// WithAutoCommit sets how often the offsets of processed messages are committed in the background.
// A message counts as processed once the Poll after the one that returned it is called (or Commit,
// or Close), so crashing re-delivers at most what was being processed and the last interval. Default
// 5 s (RocketMQ's lite pull consumer); zero or negative turns auto-commit off: call Commit.
func WithAutoCommit(d time.Duration) PullConsumerOpt {
	return pullOpt(func(c *pullCfg) { c.autoCommit = d })
}

// queueState is what a PullConsumer tracks for one queue it owns.
type queueState struct {
	fetch     int64 // next offset to pull; -1 until known
	polled    int64 // offset after the last message Poll returned; -1 until something is returned
	processed int64 // offset after the last processed message (see WithAutoCommit); -1 if none
	committed int64 // last offset committed; -1 if none
}

// PullConsumer reads messages when asked. Subscribe shares the topic's queues among the group's
// members (clustering, the average strategy, offsets on the brokers); Assign takes fixed queues. Poll
// must not be called concurrently; the other methods are safe for concurrent use.
type PullConsumer struct {
	c     *core
	cfg   pullCfg
	group string

	rebalanceNow atomic.Bool // set by NOTIFY_CONSUMER_IDS_CHANGED
	pollMu       sync.Mutex  // serializes Poll

	mu struct {
		sync.Mutex
		subs          map[string]string              // topic → TAG expression. Protected by mu.
		assigned      bool                           // Assign was called: no rebalancing. Protected by mu.
		queues        map[MessageQueue]*queueState   // owned queues. Protected by mu.
		lastRebalance time.Time                      // Protected by mu.
		subVersion    int64                          // Protected by mu.
		unprocessed   map[MessageQueue]int64         // what the last Poll returned, processed at the next. Protected by mu.
		tags          map[string]map[string]struct{} // topic → accepted tags, nil for all. Protected by mu.
	}
}

// NewPullConsumer returns a consumer of group. It does nothing until Subscribe or Assign.
func NewPullConsumer(group string, opts ...PullConsumerOpt) (*PullConsumer, error) {
	cfg := defaultPull()
	for _, o := range opts {
		o.applyPullConsumer(&cfg)
	}
	if err := cfg.validate(group); err != nil {
		return nil, err
	}
	pc := &PullConsumer{cfg: cfg, group: group}
	pc.mu.subs = map[string]string{}
	pc.mu.queues = map[MessageQueue]*queueState{}
	pc.mu.tags = map[string]map[string]struct{}{}
	mux := transport.NewMux()
	mux.HandleFunc(code.NotifyConsumerIDsChanged, func(context.Context, *transport.Conn, *remoting.Command) *remoting.Command {
		pc.rebalanceNow.Store(true)
		return nil
	})
	pc.c = newCore(cfg.common, mux)
	pc.c.routes.start()
	pc.c.every(cfg.common.heartbeatInterval, func(ctx context.Context) { pc.heartbeat(ctx) })
	if cfg.autoCommit > 0 {
		pc.c.every(cfg.autoCommit, func(ctx context.Context) {
			if err := pc.commit(ctx, false); err != nil {
				cfg.common.logger.Warn("auto-commit failed", "group", group, "err", err)
			}
		})
	}
	return pc, nil
}

// ClientID returns the id the consumer announces to brokers (ip@instance).
func (pc *PullConsumer) ClientID() string { return pc.c.clientID }

// Subscribe adds topic to the group's subscriptions with a TAG expression ("*", "" or "a || b"). The
// consumer announces itself to the topic's brokers at once and takes its share of the queues at the
// next Poll. It cannot be mixed with Assign.
func (pc *PullConsumer) Subscribe(ctx context.Context, topic, expr string) error {
	if err := body.ValidateTopic(topic); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if expr == "" {
		expr = body.SubAll
	}
	if _, err := pc.c.routes.get(ctx, topic, false); errors.Is(err, &ResponseError{Code: code.TopicNotExist}) {
		// Often a producer has not created it yet: Poll looks again every second.
		pc.cfg.common.logger.Warn("subscribed topic does not exist yet", "group", pc.group, "topic", topic)
	} else if err != nil {
		return err
	}
	pc.mu.Lock()
	if pc.mu.assigned {
		pc.mu.Unlock()
		return errors.New("client: Subscribe after Assign: a consumer either subscribes or assigns")
	}
	pc.mu.subs[topic] = expr
	pc.mu.subVersion = time.Now().UnixMilli()
	pc.mu.lastRebalance = time.Time{}
	pc.mu.tags[topic] = tagSet(expr)
	pc.mu.Unlock()
	pc.heartbeat(ctx)
	return nil
}

// Assign makes the consumer read exactly these queues, without rebalancing; offsets still start from
// the group's committed ones and are committed to the brokers. It replaces any earlier assignment.
func (pc *PullConsumer) Assign(ctx context.Context, queues ...MessageQueue) error {
	for _, q := range queues {
		if _, err := pc.c.routes.get(ctx, q.Topic, false); err != nil {
			return err
		}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if len(pc.mu.subs) > 0 {
		return errors.New("client: Assign after Subscribe: a consumer either subscribes or assigns")
	}
	pc.mu.assigned = true
	next := map[MessageQueue]*queueState{}
	for _, q := range queues {
		if st := pc.mu.queues[q]; st != nil {
			next[q] = st
		} else {
			next[q] = newQueueState()
		}
		pc.mu.tags[q.Topic] = nil
	}
	pc.mu.queues = next
	return nil
}

func newQueueState() *queueState {
	return &queueState{fetch: -1, polled: -1, processed: -1, committed: -1}
}

// Seek makes the next Poll read mq from offset. mq must be owned (assigned or allocated).
func (pc *PullConsumer) Seek(mq MessageQueue, offset int64) error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	st := pc.mu.queues[mq]
	if st == nil {
		return fmt.Errorf("client: Seek: queue %v is not owned by this consumer", mq)
	}
	st.fetch = offset
	return nil
}

// Assignment returns the queues the consumer owns now, sorted.
func (pc *PullConsumer) Assignment() []MessageQueue {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return sortedQueues(pc.mu.queues)
}

func (pc *PullConsumer) heartbeat(ctx context.Context) {
	pc.mu.Lock()
	if len(pc.mu.subs) == 0 {
		pc.mu.Unlock()
		return
	}
	hb := consumerHeartbeat(pc.c.clientID, pc.group, body.ConsumeActively, body.Clustering, pc.cfg.from, pc.mu.subs, pc.mu.subVersion)
	pc.mu.Unlock()
	pc.c.heartbeat(ctx, hb, true)
}

// rebalance recomputes the owned queues of a subscribing consumer when due.
func (pc *PullConsumer) rebalance(ctx context.Context) error {
	pc.mu.Lock()
	due := !pc.mu.assigned && len(pc.mu.subs) > 0 &&
		(pc.rebalanceNow.Load() || time.Since(pc.mu.lastRebalance) >= pc.cfg.rebalancePeriod)
	topics := slices.Collect(maps.Keys(pc.mu.subs))
	pc.mu.Unlock()
	if !due {
		return nil
	}
	pc.rebalanceNow.Store(false)
	want := map[MessageQueue]bool{}
	failed := map[string]bool{} // topics to look at again soon; their queues stay as they are
	for _, topic := range topics {
		r, err := pc.c.routes.get(ctx, topic, false)
		if errors.Is(err, &ResponseError{Code: code.TopicNotExist}) {
			failed[topic] = true
			continue
		}
		if err != nil {
			return err
		}
		ids, err := pc.c.consumerIDs(ctx, pc.group, r)
		if err != nil || !slices.Contains(ids, pc.c.clientID) { // its broker has not heard this client yet
			pc.cfg.common.logger.Debug("rebalance: topic skipped", "group", pc.group, "topic", topic, "err", err)
			failed[topic] = true
			continue
		}
		for _, q := range pc.cfg.allocate.Allocate(r.readQueues, ids, pc.c.clientID) {
			want[q] = true
		}
	}
	if len(failed) > 0 {
		pc.heartbeat(ctx)
		pc.rebalanceNow.Store(true)
	}
	pc.mu.Lock()
	var dropped []MessageQueue
	var droppedOffs []int64
	for q, st := range pc.mu.queues {
		if !want[q] && !failed[q.Topic] {
			if off := max(st.polled, st.processed); off >= 0 && off != st.committed {
				dropped, droppedOffs = append(dropped, q), append(droppedOffs, off)
			}
			delete(pc.mu.queues, q)
		}
	}
	for q := range want {
		if pc.mu.queues[q] == nil {
			pc.mu.queues[q] = newQueueState()
		}
	}
	pc.mu.lastRebalance = time.Now()
	pc.mu.Unlock()
	// A queue given up is committed at once, so its next owner starts where this one stopped.
	for i, q := range dropped {
		if err := pc.c.commitOffset(ctx, pc.group, q, droppedOffs[i]); err != nil {
			pc.cfg.common.logger.Warn("committing a released queue failed", "queue", q, "err", err)
		}
	}
	return nil
}

// Poll returns the next messages of the owned queues, waiting (long polling) until there are some or
// ctx ends; then it returns ctx's error and no messages. Messages of one queue come in offset order.
// Calling Poll marks the messages the previous Poll returned as processed (see WithAutoCommit).
// Errors of single queues are returned joined, with the messages of the others.
func (pc *PullConsumer) Poll(ctx context.Context) ([]*message.Message, error) {
	pc.pollMu.Lock()
	defer pc.pollMu.Unlock()
	if pc.c.closed() {
		return nil, ErrClosed
	}
	pc.markProcessed()
	for {
		if err := pc.rebalance(ctx); err != nil {
			return nil, err
		}
		msgs, err := pc.pollOnce(ctx)
		if pc.c.closed() {
			return nil, ErrClosed
		}
		if len(msgs) > 0 || err != nil {
			return msgs, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// markProcessed moves what the last Poll returned to processed.
func (pc *PullConsumer) markProcessed() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for q, off := range pc.mu.unprocessed {
		if st := pc.mu.queues[q]; st != nil {
			st.processed = max(st.processed, off)
		}
	}
	pc.mu.unprocessed = nil
}

// pollOnce pulls every owned queue at once with long polling, returns when the first answer brings
// messages (or all answered), and cancels the others: an abandoned pull changes nothing, since only
// an answer the consumer processes moves its offsets.
func (pc *PullConsumer) pollOnce(ctx context.Context) ([]*message.Message, error) {
	if err := pc.resolveOffsets(ctx); err != nil {
		return nil, err
	}
	pc.mu.Lock()
	type job struct {
		mq   MessageQueue
		from int64
		expr string
	}
	var jobs []job
	for q, st := range pc.mu.queues {
		if st.fetch >= 0 {
			jobs = append(jobs, job{q, st.fetch, pc.mu.subs[q.Topic]})
		}
	}
	pc.mu.Unlock()
	if len(jobs) == 0 {
		select { // nothing owned yet: wait for a rebalance
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-pc.c.done:
			return nil, ErrClosed
		case <-time.After(time.Second):
			return nil, pc.rebalance(ctx)
		}
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan pullResult, len(jobs))
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- pc.c.pullQueue(pctx, &pc.cfg.consumerCfg, pc.group, j.mq, j.from, j.expr)
		}()
	}
	var got []pullResult
	for range jobs {
		r := <-results
		got = append(got, r)
		if len(r.msgs) > 0 {
			break
		}
	}
	cancel()
	wg.Wait()
	close(results)
	for r := range results {
		got = append(got, r)
	}
	return pc.apply(got)
}

// apply moves offsets by the pulls' answers and returns their messages.
func (pc *PullConsumer) apply(results []pullResult) ([]*message.Message, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var msgs []*message.Message
	var errs []error
	for _, r := range results {
		st := pc.mu.queues[r.mq]
		if st == nil || st.fetch != r.from { // released or sought meanwhile
			continue
		}
		if r.err != nil {
			if !errors.Is(r.err, context.Canceled) {
				errs = append(errs, fmt.Errorf("queue %v: %w", r.mq, r.err))
			}
			continue
		}
		st.fetch = r.next
		tags := pc.mu.tags[r.mq.Topic]
		visible := 0
		for _, m := range r.msgs {
			if !accepts(tags, m) {
				continue
			}
			msgs = append(msgs, m)
			visible++
		}
		st.polled = max(st.polled, r.next)
		if visible == 0 {
			// Nothing for the caller (filtered out, or the offset moved): the progress is processed
			// as it is, so that Commit and auto-commit carry it.
			st.processed = max(st.processed, r.next)
			continue
		}
		if pc.mu.unprocessed == nil {
			pc.mu.unprocessed = map[MessageQueue]int64{}
		}
		pc.mu.unprocessed[r.mq] = r.next
	}
	return msgs, errors.Join(errs...)
}

// resolveOffsets finds the start offset of owned queues that have none yet.
func (pc *PullConsumer) resolveOffsets(ctx context.Context) error {
	pc.mu.Lock()
	var todo []MessageQueue
	for q, st := range pc.mu.queues {
		if st.fetch < 0 {
			todo = append(todo, q)
		}
	}
	pc.mu.Unlock()
	for _, q := range todo {
		off, err := pc.c.startOffset(ctx, pc.group, q, pc.cfg.from)
		if err != nil {
			return fmt.Errorf("client: start offset of %v: %w", q, err)
		}
		pc.mu.Lock()
		if st := pc.mu.queues[q]; st != nil && st.fetch < 0 {
			st.fetch = off
		}
		pc.mu.Unlock()
	}
	return nil
}

// Commit commits the offsets of every message Poll has returned so far to the brokers.
func (pc *PullConsumer) Commit(ctx context.Context) error {
	return pc.commit(ctx, true)
}

// commit commits each owned queue's processed offset (or polled, with all) when it moved.
func (pc *PullConsumer) commit(ctx context.Context, all bool) error {
	pc.mu.Lock()
	type item struct {
		q   MessageQueue
		off int64
	}
	var items []item
	for q, st := range pc.mu.queues {
		off := st.processed
		if all {
			off = max(off, st.polled)
		}
		if off >= 0 && off != st.committed {
			items = append(items, item{q, off})
		}
	}
	pc.mu.Unlock()
	var errs []error
	for _, it := range items {
		if err := pc.c.commitOffset(ctx, pc.group, it.q, it.off); err != nil {
			errs = append(errs, err)
			continue
		}
		pc.mu.Lock()
		if st := pc.mu.queues[it.q]; st != nil {
			st.committed = it.off
		}
		pc.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Close commits the processed offsets when auto-commit is on (everything returned by Poll counts as
// processed then), leaves the group (UNREGISTER_CLIENT, so the others rebalance at once), stops the
// consumer's goroutines and closes its connections. Later calls fail with ErrClosed.
func (pc *PullConsumer) Close() error {
	if pc.c.closed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*pc.cfg.common.requestTimeout)
	defer cancel()
	var err error
	if pc.cfg.autoCommit > 0 {
		pc.markProcessed()
		err = pc.commit(ctx, false)
	}
	pc.mu.Lock()
	subscribed := len(pc.mu.subs) > 0
	pc.mu.Unlock()
	if subscribed {
		pc.c.unregister(ctx, "consumerGroup", pc.group)
	}
	pc.c.close()
	return err
}
