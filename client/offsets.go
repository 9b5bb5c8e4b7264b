package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
)

// ConsumeFrom says where a group starts on a queue it has no committed offset for.
type ConsumeFrom struct {
	kind int // 0 last, 1 first, 2 timestamp
	at   time.Time
}

var (
	// ConsumeFromLast starts at the end of the queue: only new messages (RocketMQ's
	// CONSUME_FROM_LAST_OFFSET). As in RocketMQ, a queue whose first message is still in the broker's
	// memory is read from its start.
	ConsumeFromLast = ConsumeFrom{kind: 0}
	// ConsumeFromFirst starts at the first message the broker still has.
	ConsumeFromFirst = ConsumeFrom{kind: 1}
)

// ConsumeFromTimestamp starts at the first message stored at or after t.
func ConsumeFromTimestamp(t time.Time) ConsumeFrom { return ConsumeFrom{kind: 2, at: t} }

func (f ConsumeFrom) String() string {
	switch f.kind {
	case 1:
		return "CONSUME_FROM_FIRST_OFFSET"
	case 2:
		return "CONSUME_FROM_TIMESTAMP"
	}
	return "CONSUME_FROM_LAST_OFFSET"
}

// queueOffsetCall asks mq's master for one offset-valued answer (GET_MAX_OFFSET, GET_MIN_OFFSET,
// SEARCH_OFFSET_BY_TIMESTAMP, QUERY_CONSUMER_OFFSET).
func (c *core) queueOffsetCall(ctx context.Context, req code.Request, mq MessageQueue, ext remoting.Fields) (int64, error) {
	addr := c.routes.masterAddr(mq.BrokerName)
	if addr == "" {
		c.routes.refreshSoon(mq.Topic)
		return 0, fmt.Errorf("%w: no master address for broker %s", ErrNoRoute, mq.BrokerName)
	}
	ext.Set("topic", mq.Topic)
	ext.Set("queueId", strconv.Itoa(int(mq.QueueID)))
	resp, err := c.call(ctx, addr, remoting.NewRequest(req, ext, nil))
	if err != nil {
		return 0, err
	}
	r := remoting.ReadExt(resp)
	off := r.Int64("offset")
	if err := r.Err(); err != nil {
		return 0, fmt.Errorf("client: %s answer from %s: %w", req, addr, err)
	}
	return off, nil
}

// startOffset returns where group starts on mq: its committed offset, or the one from says.
func (c *core) startOffset(ctx context.Context, group string, mq MessageQueue, from ConsumeFrom) (int64, error) {
	ext := remoting.Fields{"consumerGroup", group}
	if from.kind == 2 {
		// A broker answers 0 for a group without an offset on a young queue (RocketMQ 4.9's rule,
		// which CONSUME_FROM_LAST_OFFSET relies on); a timestamp asks for something precise.
		ext.Set("setZeroIfNotFound", "false")
	}
	off, err := c.queueOffsetCall(ctx, code.QueryConsumerOffset, mq, ext)
	if err == nil {
		return off, nil
	}
	if !errors.Is(err, &ResponseError{Code: code.QueryNotFound}) {
		return 0, err
	}
	return c.offsetFrom(ctx, mq, from)
}

// offsetFrom returns the offset of mq that from designates.
func (c *core) offsetFrom(ctx context.Context, mq MessageQueue, from ConsumeFrom) (int64, error) {
	switch from.kind {
	case 1:
		return c.queueOffsetCall(ctx, code.GetMinOffset, mq, nil)
	case 2:
		return c.queueOffsetCall(ctx, code.SearchOffsetByTimestamp, mq, remoting.Fields{"timestamp", strconv.FormatInt(from.at.UnixMilli(), 10)})
	}
	return c.queueOffsetCall(ctx, code.GetMaxOffset, mq, nil)
}

// commitOffset stores group's offset of mq (the next message to consume) on mq's master.
func (c *core) commitOffset(ctx context.Context, group string, mq MessageQueue, off int64) error {
	addr := c.routes.masterAddr(mq.BrokerName)
	if addr == "" {
		return fmt.Errorf("%w: no master address for broker %s", ErrNoRoute, mq.BrokerName)
	}
	ext := remoting.Fields{
		"consumerGroup", group,
		"topic", mq.Topic,
		"queueId", strconv.Itoa(int(mq.QueueID)),
		"commitOffset", strconv.FormatInt(off, 10),
	}
	_, err := c.call(ctx, addr, remoting.NewRequest(code.UpdateConsumerOffset, ext, nil))
	return err
}

// allocateAverage is RocketMQ's AllocateMessageQueueAveragely: queues (sorted) are split into
// contiguous ranges, one per consumer id (sorted), the first len(queues) % len(ids) consumers taking
// one more. It returns the range of me, or nil when me is not among ids.
func allocateAverage(queues []MessageQueue, ids []string, me string) []MessageQueue {
	idx := -1
	for i, id := range ids {
		if id == me {
			idx = i
		}
	}
	if idx < 0 || len(queues) == 0 {
		return nil
	}
	n, k := len(queues), len(ids)
	mod := n % k
	var size int
	switch {
	case n <= k:
		size = 1
	case mod > 0 && idx < mod:
		size = n/k + 1
	default:
		size = n / k
	}
	start := idx*size + mod
	if mod > 0 && idx < mod {
		start = idx * size
	}
	rng := min(size, n-start)
	if rng <= 0 {
		return nil
	}
	return queues[start : start+rng]
}
