package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
	"github.com/apogeemq/apogee/timer"
)

// systemTopics are topics an admin may not create or delete.
func (b *Broker) isSystemTopic(topic string) bool {
	switch topic {
	case body.AutoCreateTopicTemplate, topicSchedule, topicTransHalf, topicTransOpHalf, topicTransCheckMax,
		topicSelfTest, topicOffsetMoved, topicBenchmark, timer.Topic, b.opts.BrokerClusterName, b.opts.BrokerName,
		b.opts.BrokerClusterName + "_REPLY_TOPIC":
		return true
	}
	return false
}

func (b *Broker) handleCreateTopic(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	tc := &body.TopicConfig{
		TopicName:       r.String("topic"),
		ReadQueueNums:   r.Int32("readQueueNums"),
		WriteQueueNums:  r.Int32("writeQueueNums"),
		Perm:            r.Int32("perm"),
		TopicFilterType: r.OptString("topicFilterType"),
		TopicSysFlag:    r.OptInt32("topicSysFlag", 0),
		Order:           r.OptBool("order", false),
	}
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	if err := body.ValidateTopic(tc.TopicName); err != nil {
		return remoting.Errorf(code.SystemError, "%v", err)
	}
	if b.isSystemTopic(tc.TopicName) {
		return remoting.Errorf(code.SystemError, "the topic[%s] is a system topic and cannot be changed", tc.TopicName)
	}
	if tc.ReadQueueNums <= 0 || tc.WriteQueueNums <= 0 || tc.ReadQueueNums > 1024 || tc.WriteQueueNums > 1024 {
		return remoting.Errorf(code.SystemError, "readQueueNums %d and writeQueueNums %d must be between 1 and 1024", tc.ReadQueueNums, tc.WriteQueueNums)
	}
	if tc.Perm&^7 != 0 {
		return remoting.Errorf(code.SystemError, "perm %d: must combine 4 (read), 2 (write) and 1 (inherit)", tc.Perm)
	}
	if tc.TopicFilterType == "" {
		tc.TopicFilterType = "SINGLE_TAG"
	}
	if err := b.topics.put(tc); err != nil {
		return remoting.Errorf(code.SystemError, "%v", err)
	}
	b.log.Info("topic created or updated", "topic", tc.TopicName, "read", tc.ReadQueueNums, "write", tc.WriteQueueNums, "perm", tc.Perm)
	b.registerAll() // clients may ask for the route as soon as we answer
	return remoting.NewResponse(code.Success, "")
}

func (b *Broker) handleDeleteTopic(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	topic := r.String("topic")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	if b.isSystemTopic(topic) {
		return remoting.Errorf(code.SystemError, "the topic[%s] is a system topic and cannot be deleted", topic)
	}
	existed, err := b.topics.delete(topic)
	if err != nil {
		return remoting.Errorf(code.SystemError, "%v", err)
	}
	if existed {
		b.offsets.removeTopic(topic)
		b.log.Info("topic deleted", "topic", topic)
		b.registerAll()
	}
	return remoting.NewResponse(code.Success, "")
}

func (b *Broker) handleGetAllTopicConfig(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.Marshal(b.topics.wrapper())
	return resp
}

func (b *Broker) handleUpdateGroup(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	cfg := body.NewSubscriptionGroupConfig("")
	if err := json.Unmarshal(req.Body, cfg); err != nil {
		return remoting.Errorf(code.SystemError, "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: the body is not a group config: %v", err)
	}
	if err := body.ValidateGroup(cfg.GroupName); err != nil {
		return remoting.Errorf(code.SystemError, "%v", err)
	}
	if err := b.groups.put(cfg); err != nil {
		return remoting.Errorf(code.SystemError, "%v", err)
	}
	b.log.Info("subscription group created or updated", "group", cfg.GroupName)
	return remoting.NewResponse(code.Success, "")
}

func (b *Broker) handleGetAllGroups(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.Marshal(b.groups.wrapper())
	return resp
}

func (b *Broker) handleDeleteGroup(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	group := r.String("groupName")
	removeOffset := r.OptBool("removeOffset", false)
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	if err := b.groups.delete(group); err != nil {
		return remoting.Errorf(code.SystemError, "%v", err)
	}
	if removeOffset {
		b.offsets.removeGroup(group)
	}
	b.log.Info("subscription group deleted", "group", group, "offsets_removed", removeOffset)
	return remoting.NewResponse(code.Success, "")
}

func (b *Broker) handleGetBrokerConfig(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = []byte(b.opts.String())
	resp.SetExt("version", string(body.Marshal(b.topics.wrapper().DataVersion)))
	return resp
}

func (b *Broker) handleUpdateBrokerConfig(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	return remoting.Errorf(code.NoPermission, "changing the broker config at run time is not supported: edit broker.conf and restart the broker")
}

func (b *Broker) handleRuntimeInfo(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	st := b.store.Stats()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	table := map[string]string{
		"brokerVersionDesc":   "V4_9_8",
		"brokerVersion":       strconv.Itoa(int(remoting.Version)),
		"brokerRole":          b.opts.BrokerRole.String(),
		"bootTimestamp":       strconv.FormatInt(b.started.UnixMilli(), 10),
		"runtime":             time.Since(b.started).Round(time.Second).String(),
		"commitLogMinOffset":  strconv.FormatInt(b.store.MinCommitLogOffset(), 10),
		"commitLogMaxOffset":  strconv.FormatInt(st.CommitLogWritten, 10),
		"commitLogFlushed":    strconv.FormatInt(st.CommitLogFlushed, 10),
		"dispatchBehindBytes": strconv.FormatInt(st.CommitLogWritten-st.DispatchedOffset, 10),
		"diskFull":            strconv.FormatBool(st.DiskFull),
		"writesStopped":       strconv.FormatBool(st.Stopped),
		"heapInUse":           strconv.FormatUint(ms.HeapInuse, 10),
		"goroutines":          strconv.Itoa(runtime.NumGoroutine()),
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.Marshal(body.KVTable{Table: table})
	return resp
}

// topicQueues returns the queues of a topic on this broker, in queue order.
func (b *Broker) topicQueues(topic string) []body.MessageQueue {
	tc := b.topics.get(topic)
	if tc == nil {
		return nil
	}
	mqs := make([]body.MessageQueue, tc.ReadQueueNums)
	for i := range mqs {
		mqs[i] = body.MessageQueue{Topic: topic, BrokerName: b.opts.BrokerName, QueueID: int32(i)}
	}
	return mqs
}

func (b *Broker) handleTopicStats(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	topic := r.String("topic")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	mqs := b.topicQueues(topic)
	if mqs == nil {
		return remoting.Errorf(code.TopicNotExist, "topic[%s] does not exist", topic)
	}
	entries := make([]body.MQValue, 0, len(mqs))
	for _, mq := range mqs {
		last := int64(0)
		if maxOff := b.store.MaxOffset(topic, mq.QueueID); maxOff > 0 {
			if ts, err := b.lastStoreTime(topic, mq.QueueID, maxOff-1); err == nil {
				last = ts
			}
		}
		v := fmt.Sprintf(`{"lastUpdateTimestamp":%d,"maxOffset":%d,"minOffset":%d}`, last, b.store.MaxOffset(topic, mq.QueueID), b.store.MinOffset(topic, mq.QueueID))
		entries = append(entries, body.MQValue{Queue: mq, Value: []byte(v)})
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = append(body.AppendMQMap([]byte(`{"offsetTable":`), entries), '}')
	return resp
}

func (b *Broker) handleConsumeStats(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	group := r.String("consumerGroup")
	only := r.OptString("topic")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	topics := b.offsets.topicsOf(group)
	if info := b.clients.consumer(group, ""); info != nil {
		for t := range info.subscriptions {
			topics = append(topics, t)
		}
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	var entries []body.MQValue
	for _, topic := range topics {
		if only != "" && topic != only {
			continue
		}
		committed := b.offsets.queues(topic, group)
		for _, mq := range b.topicQueues(topic) {
			brokerOff := b.store.MaxOffset(topic, mq.QueueID)
			consumerOff, ok := committed[mq.QueueID]
			if !ok {
				consumerOff = -1
			}
			last := int64(0)
			if consumerOff > 0 {
				if ts, err := b.lastStoreTime(topic, mq.QueueID, consumerOff-1); err == nil {
					last = ts
				}
			}
			v := fmt.Sprintf(`{"brokerOffset":%d,"consumerOffset":%d,"lastTimestamp":%d}`, brokerOff, consumerOff, last)
			entries = append(entries, body.MQValue{Queue: mq, Value: []byte(v)})
		}
	}
	if len(entries) == 0 {
		return remoting.Errorf(code.ConsumerNotOnline, "the consumer group[%s] has no offsets and no subscription on this broker", group)
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = append(body.AppendMQMap([]byte(`{"consumeTps":0.0,"offsetTable":`), entries), '}')
	return resp
}

// lastStoreTime returns the store time of the message at a queue offset.
func (b *Broker) lastStoreTime(topic string, queueID int32, offset int64) (int64, error) {
	msgs, err := b.readMessages(topic, queueID, offset, 1)
	if err != nil || len(msgs) == 0 {
		return 0, fmt.Errorf("no message at %s/%d/%d", topic, queueID, offset)
	}
	return msgs[0].StoreTimestamp, nil
}

func connections(chans []*clientChannel) []*body.Connection {
	out := make([]*body.Connection, 0, len(chans))
	for _, ch := range chans {
		out = append(out, &body.Connection{ClientID: ch.clientID, ClientAddr: ch.conn.RemoteAddr().String(), Language: ch.language, Version: ch.version})
	}
	slices.SortFunc(out, func(a, c *body.Connection) int { return strings.Compare(a.ClientID, c.ClientID) })
	return out
}

func (b *Broker) handleConsumerConnections(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	group := r.String("consumerGroup")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	info := b.clients.consumer(group, "")
	if info == nil {
		return remoting.Errorf(code.ConsumerNotOnline, "the consumer group[%s] is not online", group)
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.Marshal(body.ConsumerConnection{ConnectionSet: connections(info.channels), SubscriptionTable: info.subscriptions,
		ConsumeType: info.consumeType, MessageModel: info.messageModel, ConsumeFromWhere: info.consumeFromWhere})
	return resp
}

func (b *Broker) handleProducerConnections(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	group := r.String("producerGroup")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	chans := b.clients.producers(group)
	if len(chans) == 0 {
		return remoting.Errorf(code.SystemError, "the producer group[%s] is not online", group)
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.Marshal(body.ProducerConnection{ConnectionSet: connections(chans)})
	return resp
}

func (b *Broker) handleConsumeByWho(_ context.Context, _ *transport.Conn, req *remoting.Command) *remoting.Command {
	r := remoting.ReadExt(req)
	topic := r.String("topic")
	if err := r.Err(); err != nil {
		return badRequest(req, err)
	}
	groups := b.offsets.groupsOf(topic)
	for _, g := range b.clients.consumerGroups() {
		if info := b.clients.consumer(g, topic); info != nil && info.subscription != nil {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.Marshal(body.GroupList{GroupList: append([]string{}, slices.Compact(groups)...)})
	return resp
}

func (b *Broker) handleSystemTopics(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	var topics []string
	for _, t := range b.topics.names() {
		if b.isSystemTopic(t) {
			topics = append(topics, t)
		}
	}
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = body.Marshal(body.TopicList{TopicList: topics})
	return resp
}

func (b *Broker) handleAllConsumerOffsets(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = b.offsets.encode()
	return resp
}

func (b *Broker) handleAllDelayOffsets(_ context.Context, _ *transport.Conn, _ *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(code.Success, "")
	resp.Body = b.sched.encode()
	return resp
}
