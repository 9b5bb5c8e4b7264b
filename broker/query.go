package broker

import (
	"context"
	"strconv"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/store"
)

// readMessages decodes up to n messages of a queue from offset.
func (b *Broker) readMessages(topic string, queueID int32, offset int64, n int) ([]*message.Message, error) {
	var res store.GetResult
	if err := b.store.GetMessages(topic, queueID, offset, n, nil, &res); err != nil {
		return nil, err
	}
	if res.Status != store.Found {
		return nil, nil
	}
	return message.DecodeRecords(res.Body)
}

// handleViewMessage answers VIEW_MESSAGE_BY_ID: the stored record at a commit-log offset.
func (b *Broker) handleViewMessage(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	off := r.Int64("offset")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	rec, err := b.store.ReadRecord(off, nil)
	if err != nil {
		return remoting.Errorf(code.SystemError, "can not find message by the offset %d: %v", off, err)
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = rec
	return resp
}

// handleQueryMessage answers QUERY_MESSAGE: messages of a topic by key or unique key in a time range.
func (b *Broker) handleQueryMessage(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	topic, key := r.String("topic"), r.String("key")
	maxNum := r.Int32("maxNum")
	begin, end := r.Int64("beginTimestamp"), r.Int64("endTimestamp")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	if maxNum <= 0 || maxNum > 64 {
		maxNum = 32 // defaultQueryMaxNum
	}
	msgs, err := b.store.QueryMessages(topic, key, int(maxNum), begin, end)
	if err != nil {
		return remoting.Errorf(code.SystemError, "QUERY_MESSAGE: %v", err)
	}
	var out []byte
	for _, m := range msgs {
		rec, err := b.store.ReadRecord(m.CommitLogOffset, nil)
		if err == nil {
			out = append(out, rec...)
		}
	}
	if len(out) == 0 {
		return remoting.Errorf(code.QueryNotFound, "can not find message, maybe time range not correct")
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.SetExt("indexLastUpdateTimestamp", strconv.FormatInt(b.started.UnixMilli(), 10))
	resp.SetExt("indexLastUpdatePhyoffset", strconv.FormatInt(b.store.MaxCommitLogOffset(), 10))
	resp.Body = out
	return resp
}
