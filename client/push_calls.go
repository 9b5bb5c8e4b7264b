package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// Requests brokers send to a PushConsumer (PROTOCOL.md §2.5).

// handleResetOffset applies RESET_CONSUMER_CLIENT_OFFSET (an admin's reset of the group's offsets,
// pushed by the broker): the listed queues this consumer owns restart from the new offsets. Without
// it the consumer would overwrite the reset with its own offsets at the next commit.
func (pc *PushConsumer) handleResetOffset(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	topic, group := r.String("topic"), r.String("group")
	if err := r.Err(); err != nil || group != pc.group {
		pc.cfg.common.logger.Warn("ignoring RESET_CONSUMER_CLIENT_OFFSET", "group", group, "err", err)
		return nil
	}
	entries, err := parseMQMapField(req.Body, "offsetTable")
	if err != nil {
		pc.cfg.common.logger.Warn("bad RESET_CONSUMER_CLIENT_OFFSET body", "topic", topic, "err", err)
		return nil
	}
	table := map[MessageQueue]int64{}
	for _, e := range entries {
		off, err := strconv.ParseInt(string(e.Value), 10, 64)
		if err == nil && off >= 0 {
			table[e.Queue] = off
		}
	}
	// The request is oneway and the reset waits for handlers in progress: do it in the background.
	pc.c.spawn(func() { pc.resetOffsets(pc.c.ctx, table) })
	return nil
}

// resetOffsets restarts the owned queues of table from the given offsets. Messages being handled
// finish, but their offsets no longer count.
func (pc *PushConsumer) resetOffsets(ctx context.Context, table map[MessageQueue]int64) {
	pc.rebalanceMu.Lock()
	defer pc.rebalanceMu.Unlock()
	pc.mu.Lock()
	if pc.mu.state != 1 {
		pc.mu.Unlock()
		return
	}
	var stopped []*processQueue
	for mq := range table {
		if pq := pc.mu.queues[mq]; pq != nil {
			delete(pc.mu.queues, mq)
			delete(pc.mu.offsets, mq)
			delete(pc.mu.committed, mq)
			stopped = append(stopped, pq)
		}
	}
	pc.mu.Unlock()
	for _, pq := range stopped {
		pq.cancel()
		<-pq.done
		<-pq.consumed
		pq.drop()
		if err := pc.storeOffset(ctx, pq.mq, table[pq.mq]); err != nil {
			pc.cfg.common.logger.Warn("committing a reset offset failed", "queue", pq.mq, "err", err)
		}
	}
	now := time.Now()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, pq := range stopped {
		if pc.mu.state == 1 && pc.mu.queues[pq.mq] == nil {
			pc.startQueueLocked(pq.mq, now, table[pq.mq]) // orderly: the broker lock is still held
		}
	}
	pc.cfg.common.logger.Info("consumer offsets reset", "group", pc.group, "queues", len(stopped))
}

// handleConsumerStatus answers GET_CONSUMER_STATUS_FROM_CLIENT with the consumed offsets of topic's
// owned queues: {"messageQueueTable":{{mq}:offset,...}} in fastjson's form.
func (pc *PushConsumer) handleConsumerStatus(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	topic := req.Ext("topic")
	pc.mu.Lock()
	var entries []body.MQValue
	for _, mq := range sortedQueues(pc.mu.queues) {
		if mq.Topic != topic {
			continue
		}
		off, ok := pc.mu.offsets[mq]
		if !ok {
			off = -1
		}
		entries = append(entries, body.MQValue{Queue: mq, Value: strconv.AppendInt(nil, off, 10)})
	}
	pc.mu.Unlock()
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = append(body.AppendMQMap([]byte(`{"messageQueueTable":`), entries), '}')
	return resp
}

// handleRunningInfo answers GET_CONSUMER_RUNNING_INFO (mqadmin consumerStatus, forwarded by a broker)
// with a ConsumerRunningInfo in the official Go client's shape (PROTOCOL.md §3.4.5): properties, the
// subscriptions and, per owned queue, its committed offset and cache.
func (pc *PushConsumer) handleRunningInfo(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	if g := req.Ext("consumerGroup"); g != pc.group {
		return remoting.Errorf(code.SystemError, "the consumer group %s is not in this client (it runs %s)", g, pc.group)
	}
	props := map[string]string{
		"PROP_CLIENT_VERSION":       "apogee",
		"PROP_CONSUMEORDERLY":       strconv.FormatBool(pc.cfg.orderly),
		"PROP_CONSUME_TYPE":         body.ConsumePassively,
		"PROP_THREADPOOL_CORE_SIZE": strconv.Itoa(pc.cfg.goroutines),
		"PROP_NAMESERVER_ADDR":      strings.Join(pc.cfg.common.nameServers, ";"),
	}
	pc.mu.Lock()
	props["PROP_CONSUMER_START_TIMESTAMP"] = strconv.FormatInt(pc.mu.started.UnixMilli(), 10)
	hb := consumerHeartbeat(pc.c.clientID, pc.group, body.ConsumePassively, body.Clustering, pc.cfg.from, pc.mu.subs, pc.mu.subVersion)
	var entries []body.MQValue
	for _, mq := range sortedQueues(pc.mu.queues) {
		pq := pc.mu.queues[mq]
		off, ok := pc.mu.offsets[mq]
		if !ok {
			off = -1
		}
		pq.mu.Lock()
		v := fmt.Sprintf(`{"commitOffset":%d,"cachedMsgCount":%d,"cachedMsgSizeInMiB":%d,"locked":%t,"droped":%t}`,
			off, len(pq.mu.inflight), pq.mu.bytes>>20, !pq.mu.orderly.lockedAt.IsZero(), pq.mu.dropped)
		pq.mu.Unlock()
		entries = append(entries, body.MQValue{Queue: mq, Value: []byte(v)})
	}
	pc.mu.Unlock()
	out := []byte(`{"properties":`)
	out = append(out, body.Marshal(props)...)
	out = append(out, `,"statusTable":{},"subscriptionSet":`...)
	out = append(out, body.Marshal(hb.ConsumerDataSet[0].SubscriptionDataSet)...)
	out = append(out, `,"mqTable":`...)
	out = body.AppendMQMap(out, entries)
	out = append(out, `,"jstack":""}`...)
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = out
	return resp
}
