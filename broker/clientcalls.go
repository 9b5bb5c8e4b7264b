package broker

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// This file holds the admin calls the broker answers by asking its clients, over the connections
// they opened: GET_CONSUMER_RUNNING_INFO, INVOKE_BROKER_TO_RESET_OFFSET (which pushes
// RESET_CONSUMER_CLIENT_OFFSET) and INVOKE_BROKER_TO_GET_CONSUMER_STATUS (GET_CONSUMER_STATUS_FROM_CLIENT).

// clientCallTimeout bounds one broker→client call.
const clientCallTimeout = 5 * time.Second

// handleConsumerRunningInfo forwards GET_CONSUMER_RUNNING_INFO to the named client of the group and
// returns its answer.
func (b *Broker) handleConsumerRunningInfo(ctx context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	group, clientID := r.String("consumerGroup"), r.String("clientId")
	jstack := r.OptBool("jstackEnable", false)
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	info := b.clients.consumer(group, "")
	if info == nil {
		return remoting.Errorf(code.ConsumerNotOnline, "the consumer group[%s] is not online", group)
	}
	for _, ch := range info.channels {
		if ch.clientID != clientID {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, clientCallTimeout)
		defer cancel()
		fwd := remoting.NewRequest(code.GetConsumerRunningInfo, remoting.Fields{
			"consumerGroup", group,
			"clientId", clientID,
			"jstackEnable", strconv.FormatBool(jstack),
		}, nil)
		resp, err := ch.conn.Invoke(cctx, fwd)
		if err != nil {
			return remoting.Errorf(code.SystemError, "asking client %s: %v", clientID, err)
		}
		out := remoting.NewResponse(resp.ResponseCode(), resp.Remark)
		out.Body = resp.Body
		return out
	}
	return remoting.Errorf(code.SystemError, "the consumer <%s> <%s> is not online", group, clientID)
}

// handleResetOffset answers INVOKE_BROKER_TO_RESET_OFFSET (mqadmin resetOffsetByTime): the group's
// offsets of every queue of the topic on this broker move to the first message stored at or after the
// timestamp (-1: the end), only backwards unless isForce. The broker commits the new offsets itself,
// so the reset holds even for consumers that are offline, and pushes them to the online ones.
func (b *Broker) handleResetOffset(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	topic, group := r.String("topic"), r.String("group")
	ts := r.Int64("timestamp")
	force := r.OptBool("isForce", true)
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	mqs := b.topicQueues(topic)
	if mqs == nil {
		return remoting.Errorf(code.TopicNotExist, "topic[%s] does not exist", topic)
	}
	committed := b.offsets.queues(topic, group)
	entries := make([]body.MQValue, 0, len(mqs))
	for _, mq := range mqs {
		target := b.store.MaxOffset(topic, mq.QueueID)
		if ts >= 0 {
			off, err := b.store.OffsetByTime(topic, mq.QueueID, ts)
			if err != nil {
				return remoting.Errorf(code.SystemError, "RESET_OFFSET: %v", err)
			}
			target = off
		}
		if cur, ok := committed[mq.QueueID]; ok && !force && cur < target {
			target = cur
		}
		b.offsets.commit(topic, group, mq.QueueID, target)
		entries = append(entries, body.MQValue{Queue: mq, Value: []byte(strconv.FormatInt(target, 10))})
	}
	table := append(body.AppendMQMap([]byte(`{"offsetTable":`), entries), '}')
	if info := b.clients.consumer(group, ""); info != nil {
		for _, ch := range info.channels {
			push := remoting.NewRequest(code.ResetConsumerClientOffset, remoting.Fields{
				"topic", topic,
				"group", group,
				"timestamp", strconv.FormatInt(ts, 10),
				"isForce", strconv.FormatBool(force),
			}, table)
			ctx, cancel := context.WithTimeout(context.Background(), clientCallTimeout)
			if err := ch.conn.InvokeOneway(ctx, push); err != nil {
				b.log.Warn("pushing reset offsets to a client failed", "group", group, "client", ch.clientID, "err", err)
			}
			cancel()
		}
	}
	b.log.Info("consumer offsets reset", "topic", topic, "group", group, "timestamp", ts, "force", force)
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = table
	return resp
}

// handleConsumerStatus answers INVOKE_BROKER_TO_GET_CONSUMER_STATUS by asking every online client of
// the group (or the one at clientAddr) for its offsets of the topic.
func (b *Broker) handleConsumerStatus(ctx context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	topic, group := r.String("topic"), r.String("group")
	clientAddr := r.OptString("clientAddr")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	info := b.clients.consumer(group, "")
	if info == nil {
		return remoting.Errorf(code.ConsumerNotOnline, "the consumer group[%s] is not online", group)
	}
	out := []byte(`{"consumerTable":{`)
	n := 0
	for _, ch := range info.channels {
		if clientAddr != "" && ch.conn.RemoteAddr().String() != clientAddr {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, clientCallTimeout)
		resp, err := ch.conn.Invoke(cctx, remoting.NewRequest(code.GetConsumerStatusFromClient,
			remoting.Fields{"topic", topic, "group", group, "clientAddr", ch.conn.RemoteAddr().String()}, nil))
		cancel()
		if err != nil || resp.ResponseCode() != code.Success {
			continue
		}
		// The client answers {"messageQueueTable":{...}}: keep the inner table as it is, since its keys
		// are fastjson objects that no JSON decoder reads.
		table := bytes.TrimSuffix(bytes.TrimPrefix(resp.Body, []byte(`{"messageQueueTable":`)), []byte("}"))
		if len(table) == len(resp.Body) {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = remoting.AppendJSONString(out, ch.clientID)
		out = append(out, ':')
		out = append(out, table...)
		n++
	}
	if n == 0 {
		return remoting.Errorf(code.SystemError, "no client of the consumer group[%s] answered", group)
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = append(out, `},"messageQueueTable":{}}`...)
	return resp
}
