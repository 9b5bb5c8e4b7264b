package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
)

// Orderly consumption (RocketMQ's ConsumeMessageOrderlyService): a queue is consumed only while this
// client holds its lock on the broker, one message at a time in offset order, so messages of one
// queue are handled in the order they were sent even across rebalances. Locks are taken before a
// queue is pulled, renewed every 20 s, and valid for 30 s on the client (60 s on the broker).
const (
	lockRenewInterval = 20 * time.Second
	lockValidFor      = 30 * time.Second
)

// WithOrderly makes the consumer orderly: each queue's messages are handled one at a time in offset
// order, under a broker lock, instead of concurrently. A failing message is retried in place every
// WithOrderlyRetryDelay up to WithMaxReconsumeTimes times, then moved to the dead-letter queue so
// that one poison message cannot block its queue forever (RocketMQ's orderly consumer retries
// forever). Default: concurrent.
func WithOrderly() PushConsumerOpt {
	return pushOpt(func(c *pushCfg) { c.orderly = true })
}

// WithOrderlyRetryDelay sets how long an orderly consumer waits before handling a failed message
// again (RocketMQ's suspendCurrentQueueTimeMillis). Default 1 s; zero or negative keeps the default.
func WithOrderlyRetryDelay(d time.Duration) PushConsumerOpt {
	return pushOpt(func(c *pushCfg) { setPositive(&c.orderlyRetryDelay, d) })
}

// orderlyState is the part of a processQueue only orderly consumers use. Protected by the
// processQueue's mu.
type orderlyState struct {
	buf      []*message.Message // pulled, not yet handled, in offset order
	lockedAt time.Time          // when the broker last granted the lock; zero when not held
}

// push appends pulled messages for the queue's orderly loop and wakes it.
func (q *processQueue) push(msgs []*message.Message) {
	q.mu.Lock()
	q.mu.orderly.buf = append(q.mu.orderly.buf, msgs...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// head returns the next message to handle, or nil.
func (q *processQueue) head() *message.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.mu.orderly.buf) == 0 {
		return nil
	}
	return q.mu.orderly.buf[0]
}

// pop removes the head after it was handled and returns the offset to commit.
func (q *processQueue) pop() (int64, bool) {
	q.mu.Lock()
	m := q.mu.orderly.buf[0]
	q.mu.orderly.buf = q.mu.orderly.buf[1:]
	q.mu.Unlock()
	return q.remove(m.QueueOffset)
}

func (q *processQueue) setLocked(at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mu.orderly.lockedAt = at
}

func (q *processQueue) lockValid(now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.mu.orderly.lockedAt.IsZero() && now.Sub(q.mu.orderly.lockedAt) < lockValidFor
}

// orderlyLoop handles a queue's messages one at a time until ctx ends (after the message in hand).
func (pc *PushConsumer) orderlyLoop(ctx context.Context, pq *processQueue) {
	defer close(pq.consumed)
	retries := 0
	for {
		m := pq.head()
		if m == nil {
			select {
			case <-pq.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if pc.cfg.broadcastFile == "" && !pq.lockValid(time.Now()) {
			if !wait(ctx, pc.cfg.orderlyRetryDelay) {
				return
			}
			continue
		}
		select {
		case pc.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		start := time.Now()
		err := pc.handler(pc.handlerCtx, m)
		<-pc.sem
		pc.cfg.common.onConsume(pq.mq, time.Since(start), err)
		if err != nil {
			if retries < pc.cfg.maxReconsumeTimes {
				retries++
				m.ReconsumeTimes++
				if !wait(ctx, pc.cfg.orderlyRetryDelay) {
					return
				}
				continue
			}
			// Bounded: the poison message goes straight to the dead-letter queue.
			if serr := pc.sendBack(pc.handlerCtx, pq.mq, m, -1); serr != nil {
				pc.cfg.common.logger.Warn("moving a message to the DLQ failed; retrying", "queue", pq.mq, "offset", m.QueueOffset, "err", serr)
				if !wait(ctx, pc.cfg.orderlyRetryDelay) {
					return
				}
				continue
			}
			pc.cfg.common.logger.Warn("orderly consumer gave up on a message: moved to the DLQ", "queue", pq.mq,
				"offset", m.QueueOffset, "msg_id", m.MsgID(), "err", err)
		}
		retries = 0
		if off, ok := pq.pop(); ok {
			pc.updateOffset(pq, off)
		}
	}
}

// lockQueues asks each broker to lock mqs for this client (LOCK_BATCH_MQ) and returns the ones held.
func (pc *PushConsumer) lockQueues(ctx context.Context, mqs []MessageQueue) map[MessageQueue]bool {
	held := map[MessageQueue]bool{}
	for broker, qs := range byBroker(mqs) {
		resp, err := pc.lockCall(ctx, code.LockBatchMQ, broker, qs)
		if err != nil {
			pc.cfg.common.logger.Warn("locking queues failed", "broker", broker, "err", err)
			continue
		}
		var lr body.LockBatchResponse
		if err := json.Unmarshal(resp.Body, &lr); err != nil {
			pc.cfg.common.logger.Warn("bad LOCK_BATCH_MQ answer", "broker", broker, "err", err)
			continue
		}
		for _, q := range lr.LockOKMQSet {
			if q != nil {
				held[*q] = true
			}
		}
	}
	return held
}

// unlockQueues releases this client's locks of mqs (UNLOCK_BATCH_MQ).
func (pc *PushConsumer) unlockQueues(ctx context.Context, mqs []MessageQueue) {
	for broker, qs := range byBroker(mqs) {
		if _, err := pc.lockCall(ctx, code.UnlockBatchMQ, broker, qs); err != nil {
			pc.cfg.common.logger.Warn("unlocking queues failed", "broker", broker, "err", err)
		}
	}
}

func (pc *PushConsumer) lockCall(ctx context.Context, req code.Request, broker string, qs []MessageQueue) (*remoting.Command, error) {
	addr := pc.c.routes.masterAddr(broker)
	if addr == "" {
		return nil, fmt.Errorf("%w: no master address for broker %s", ErrNoRoute, broker)
	}
	set := make([]*body.MessageQueue, len(qs))
	for i := range qs {
		set[i] = &qs[i]
	}
	data := body.Marshal(&body.LockBatchRequest{ConsumerGroup: pc.group, ClientID: pc.c.clientID, MQSet: set})
	return pc.c.call(ctx, addr, remoting.NewRequest(req, nil, data))
}

func byBroker(mqs []MessageQueue) map[string][]MessageQueue {
	out := map[string][]MessageQueue{}
	for _, q := range mqs {
		out[q.BrokerName] = append(out[q.BrokerName], q)
	}
	return out
}

// renewLocks renews the locks of every owned queue; a queue whose lock is lost pauses until a later
// renewal gets it back.
func (pc *PushConsumer) renewLocks(ctx context.Context) {
	pc.mu.Lock()
	queues := make(map[MessageQueue]*processQueue, len(pc.mu.queues))
	for mq, pq := range pc.mu.queues {
		queues[mq] = pq
	}
	pc.mu.Unlock()
	if len(queues) == 0 {
		return
	}
	now := time.Now()
	held := pc.lockQueues(ctx, sortedQueues(queues))
	for mq, pq := range queues {
		if held[mq] {
			pq.setLocked(now)
		} else {
			pq.setLocked(time.Time{})
			pc.cfg.common.logger.Warn("queue lock lost; its consumption pauses", "queue", mq)
		}
	}
}
