package broker

import (
	"context"
	"strconv"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/store"
)

func offsetResponse(key string, v int64) *remoting.Command {
	resp := remoting.NewResponse(code.Success, "")
	resp.SetExt(key, strconv.FormatInt(v, 10))
	return resp
}

func badRequest(req *remoting.Command, err error) *remoting.Command {
	return remoting.Errorf(code.SystemError, "%s: %v", req.RequestCode(), err)
}

// handleQueryConsumerOffset answers QUERY_CONSUMER_OFFSET. Without a stored offset it answers 0 when
// the queue still starts at offset 0 and its first message is recent enough to be in memory (RocketMQ's
// rule, which is why a new group starts at the beginning of a young queue), and QUERY_NOT_FOUND
// otherwise, so the client applies its consumeFromWhere.
func (b *Broker) handleQueryConsumerOffset(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	group, topic, queueID := r.String("consumerGroup"), r.String("topic"), r.Int32("queueId")
	setZero := r.OptBool("setZeroIfNotFound", true)
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	if off, ok := b.offsets.query(topic, group, queueID); ok {
		return offsetResponse("offset", off)
	}
	if setZero && b.store.MinOffset(topic, queueID) == 0 && b.firstMessageHot(topic, queueID) {
		return offsetResponse("offset", 0)
	}
	return remoting.Errorf(code.QueryNotFound, "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first")
}

// firstMessageHot reports whether a queue's first message lies within the part of the commit log that
// fits in memory (accessMessageInMemoryMaxRatio, 40 % of RAM), or the queue is empty.
func (b *Broker) firstMessageHot(topic string, queueID int32) bool {
	var res store.GetResult
	if err := b.store.GetMessages(topic, queueID, 0, 1, nil, &res); err != nil || res.Status != store.Found {
		return res.Status == store.NoMatchedLogicQueue || res.Status == store.NoMessageInQueue
	}
	return b.store.MaxCommitLogOffset()-res.Records[0].CommitLogOffset <= memoryBudget()
}

func (b *Broker) handleUpdateConsumerOffset(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	group, topic, queueID, off := r.String("consumerGroup"), r.String("topic"), r.Int32("queueId"), r.Int64("commitOffset")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	if b.topics.get(topic) == nil {
		return remoting.Errorf(code.TopicNotExist, "topic[%s] does not exist", topic)
	}
	b.offsets.commit(topic, group, queueID, off)
	return remoting.NewResponse(code.Success, "")
}

// queueArgs reads the topic and queueId of the offset lookups.
func queueArgs(req *remoting.Command) (string, int32, *remoting.Command) {
	r := remoting.ReadExt(req)
	topic, queueID := r.String("topic"), r.Int32("queueId")
	if err := r.Err(); err != nil {
		return "", 0, badRequest(req, err)
	}
	return topic, queueID, nil
}

func (b *Broker) handleGetMaxOffset(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	topic, queueID, bad := queueArgs(req)
	if bad != nil {
		return bad
	}
	return offsetResponse("offset", b.store.MaxOffset(topic, queueID))
}

func (b *Broker) handleGetMinOffset(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	topic, queueID, bad := queueArgs(req)
	if bad != nil {
		return bad
	}
	return offsetResponse("offset", b.store.MinOffset(topic, queueID))
}

func (b *Broker) handleSearchOffset(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	topic, queueID, bad := queueArgs(req)
	if bad != nil {
		return bad
	}
	r := remoting.ReadExt(req)
	ts := r.Int64("timestamp")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	off, err := b.store.OffsetByTime(topic, queueID, ts)
	if err != nil {
		return remoting.Errorf(code.SystemError, "SEARCH_OFFSET_BY_TIMESTAMP: %v", err)
	}
	return offsetResponse("offset", off)
}

func (b *Broker) handleEarliestTime(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	topic, queueID, bad := queueArgs(req)
	if bad != nil {
		return bad
	}
	ts, err := b.store.EarliestMessageTime(topic, queueID)
	if err != nil {
		return remoting.Errorf(code.SystemError, "GET_EARLIEST_MSG_STORETIME: %v", err)
	}
	return offsetResponse("timestamp", ts)
}
