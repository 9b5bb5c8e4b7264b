package broker

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/store"
)

// Pull sysFlag bits (PullSysFlag).
const (
	pullCommitOffset = 1 << 0
	pullSuspend      = 1 << 1
	pullSubscription = 1 << 2
)

// maxSuspend caps how long a pull is held: clients time out after 30 s.
const maxSuspend = 25 * time.Second

type pullHeader struct {
	group          string
	topic          string
	queueID        int32
	queueOffset    int64
	maxMsgNums     int32
	sysFlag        int32
	commitOffset   int64
	suspendTimeout time.Duration
	subscription   string
	subVersion     int64
	expressionType string
}

// handlePull answers PULL_MESSAGE (PROTOCOL.md §6.2), holding it while there is nothing new (§6.3).
func (b *Broker) handlePull(ctx context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	h := pullHeader{
		group:          r.String("consumerGroup"),
		topic:          r.String("topic"),
		queueID:        r.Int32("queueId"),
		queueOffset:    r.Int64("queueOffset"),
		maxMsgNums:     r.Int32("maxMsgNums"),
		sysFlag:        r.Int32("sysFlag"),
		commitOffset:   r.Int64("commitOffset"),
		suspendTimeout: time.Duration(r.Int64("suspendTimeoutMillis")) * time.Millisecond,
		subscription:   r.OptString("subscription"),
		subVersion:     r.OptInt64("subVersion", 0),
		expressionType: r.OptString("expressionType"),
	}
	if err := r.Err(); err != nil {
		return remoting.Errorf(code.SystemError, "PULL_MESSAGE: %v", err)
	}
	if b.opts.BrokerPermission&body.PermRead == 0 {
		return remoting.Errorf(code.NoPermission, "the broker[%s] pulling message is forbidden", b.addr)
	}
	cfg, err := b.groups.get(h.group)
	if err != nil {
		return remoting.Errorf(code.SystemError, "%v", err)
	}
	if cfg == nil {
		return remoting.Errorf(code.SubscriptionGroupNotExist, "subscription group [%s] does not exist", h.group)
	}
	if !cfg.ConsumeEnable {
		return remoting.Errorf(code.NoPermission, "subscription group [%s] may not consume now", h.group)
	}
	tc := b.topics.get(h.topic)
	if tc == nil {
		return remoting.Errorf(code.TopicNotExist, "topic[%s] does not exist on broker %s", h.topic, b.opts.BrokerName)
	}
	if tc.Perm&body.PermRead == 0 {
		return remoting.Errorf(code.NoPermission, "the topic[%s] pulling message is forbidden", h.topic)
	}
	if h.queueID < 0 || h.queueID >= tc.ReadQueueNums {
		return remoting.Errorf(code.SystemError, "queueId[%d] is illegal: topic %s has %d read queues", h.queueID, h.topic, tc.ReadQueueNums)
	}
	filter, resp := b.pullFilter(&h, cfg)
	if resp != nil {
		return resp
	}

	if h.sysFlag&pullCommitOffset != 0 && h.commitOffset >= 0 {
		b.offsets.commit(h.topic, h.group, h.queueID, h.commitOffset)
	}

	res := getResults.Get().(*store.GetResult)
	defer getResults.Put(res)
	resp = b.readQueue(&h, filter, res)
	if resp.ResponseCode() != code.PullNotFound || h.sysFlag&pullSuspend == 0 {
		return resp
	}
	hold := min(h.suspendTimeout, maxSuspend)
	if !isTrue(b.opts.LongPollingEnable) {
		hold = min(hold, b.opts.ShortPollingTime)
	}
	if hold <= 0 {
		return resp
	}
	// Long polling: register first, then read again, so a message dispatched in between wakes us.
	wake := b.waiters.add(h.topic, h.queueID)
	defer b.waiters.remove(h.topic, h.queueID, wake)
	timer := time.NewTimer(hold)
	defer timer.Stop()
	for {
		resp = b.readQueue(&h, filter, res)
		if resp.ResponseCode() != code.PullNotFound {
			return resp
		}
		select {
		case <-wake:
		case <-timer.C:
			return b.readQueue(&h, filter, res)
		case <-ctx.Done():
			return resp
		}
	}
}

// pullFilter builds the tag filter from the pull's own subscription or the one registered by the
// group's heartbeats.
func (b *Broker) pullFilter(h *pullHeader, cfg *body.SubscriptionGroupConfig) (store.TagsFilter, *remoting.Command) {
	var expr, exprType string
	if h.sysFlag&pullSubscription != 0 {
		expr, exprType = h.subscription, h.expressionType
	} else {
		info := b.clients.consumer(h.group, h.topic)
		if info == nil {
			return nil, remoting.Errorf(code.SubscriptionNotExist, "the consumer group[%s] is not online: its heartbeat has not reached this broker yet", h.group)
		}
		if info.messageModel == body.Broadcasting && !cfg.ConsumeBroadcastEnable {
			return nil, remoting.Errorf(code.NoPermission, "the consumer group[%s] may not consume in broadcasting mode", h.group)
		}
		if info.subscription == nil {
			return nil, remoting.Errorf(code.SubscriptionNotExist, "the consumer group[%s] has no subscription to topic %s", h.group, h.topic)
		}
		if info.subscription.SubVersion < h.subVersion {
			return nil, remoting.Errorf(code.SubscriptionNotLatest, "the consumer group[%s]'s subscription is not the latest", h.group)
		}
		expr, exprType = info.subscription.SubString, info.subscription.ExpressionType
	}
	if exprType != "" && exprType != body.ExpressionTag {
		return nil, remoting.Errorf(code.SubscriptionParseFailed, "expression type %s is not supported; use TAG", exprType)
	}
	return tagFilter(body.ParseTags(expr)), nil
}

// tagFilter matches consume-queue tag codes against a subscription's tags; nil matches everything.
func tagFilter(tags []string) store.TagsFilter {
	if len(tags) == 0 {
		return nil
	}
	codes := make(map[int64]struct{}, len(tags))
	for _, t := range tags {
		codes[message.TagsCode(t)] = struct{}{}
	}
	return func(tagsCode int64) bool {
		_, ok := codes[tagsCode]
		return ok
	}
}

// readQueue reads once and maps the store's answer to a pull response.
func (b *Broker) readQueue(h *pullHeader, filter store.TagsFilter, res *store.GetResult) *remoting.Command {
	err := b.store.GetMessages(h.topic, h.queueID, h.queueOffset, int(h.maxMsgNums), filter, res)
	var c code.Response
	switch res.Status {
	case store.Found:
		c = code.Success
	case store.NoMatchedLogicQueue, store.NoMessageInQueue:
		if h.queueOffset != 0 {
			c = code.PullOffsetMoved
		} else {
			c = code.PullNotFound
		}
	case store.OffsetTooSmall, store.OffsetOverflowBadly:
		c = code.PullOffsetMoved
	case store.OffsetOverflowOne, store.OffsetFoundNull:
		c = code.PullNotFound
	default: // NoMatchedMessage, MessageWasRemoving
		c = code.PullRetryImmediately
	}
	resp := remoting.NewResponse(c, res.Status.String())
	if err != nil {
		resp.Remark += ": " + err.Error()
	}
	resp.ExtFields = remoting.Fields{
		"nextBeginOffset", strconv.FormatInt(res.NextBeginOffset, 10),
		"minOffset", strconv.FormatInt(res.MinOffset, 10),
		"maxOffset", strconv.FormatInt(res.MaxOffset, 10),
		"suggestWhichBrokerId", "0",
	}
	if c == code.Success {
		resp.Body, res.Body = res.Body, nil // the answer owns it: it may be written from where it is
	}
	return resp
}

// getResults keeps the scratch buffers of pulls (consume-queue entries, record places) for the next.
var getResults = sync.Pool{New: func() any { return new(store.GetResult) }}
