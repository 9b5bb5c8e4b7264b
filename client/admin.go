package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
)

// Admin manages topics and inspects consumer groups and messages: what `apogee admin` and mqadmin do.
// It is safe for concurrent use. Every call takes a context; each request is also bounded by
// WithRequestTimeout.
type Admin struct {
	c *core
}

// NewAdmin returns an admin client. It connects lazily.
func NewAdmin(opts ...AdminOpt) (*Admin, error) {
	cfg := defaultCommon()
	for _, o := range opts {
		o.applyAdmin(&cfg)
	}
	if len(cfg.nameServers) == 0 {
		return nil, ErrNoNameServer
	}
	return &Admin{c: newCore(cfg, nil)}, nil
}

// Close closes the admin client's connections. Later calls fail with ErrClosed.
func (a *Admin) Close() error {
	a.c.close()
	return nil
}

// ClusterInfo returns the brokers and clusters the NameServers know (GET_BROKER_CLUSTER_INFO).
func (a *Admin) ClusterInfo(ctx context.Context) (*body.ClusterInfo, error) {
	resp, err := a.c.callNameServer(ctx, remoting.NewRequest(code.GetBrokerClusterInfo, nil, nil))
	if err != nil {
		return nil, err
	}
	ci, err := body.DecodeClusterInfo(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("client: cluster info: %w", err)
	}
	return ci, nil
}

// Topics lists every topic the NameServers know, sorted (GET_ALL_TOPIC_LIST_FROM_NAMESERVER).
func (a *Admin) Topics(ctx context.Context) ([]string, error) {
	resp, err := a.c.callNameServer(ctx, remoting.NewRequest(code.GetAllTopicListFromNameserver, nil, nil))
	if err != nil {
		return nil, err
	}
	var tl body.TopicList
	if err := json.Unmarshal(resp.Body, &tl); err != nil {
		return nil, fmt.Errorf("client: topic list: %w", err)
	}
	slices.Sort(tl.TopicList)
	return tl.TopicList, nil
}

// Route returns a topic's route (GET_ROUTEINFO_BY_TOPIC). A topic that does not exist gives a
// *ResponseError with code.TopicNotExist.
func (a *Admin) Route(ctx context.Context, topic string) (*body.TopicRouteData, error) {
	return a.c.routes.fetchData(ctx, topic)
}

// TopicSpec describes a topic to create or update.
type TopicSpec struct {
	// Topic is the name. Required.
	Topic string
	// Queues is the number of read and write queues on each broker. Default (0) 8, the broker's
	// defaultTopicQueueNums.
	Queues int32
	// Perm is the permission: body.PermRead|body.PermWrite (6) by default (0).
	Perm int32
	// Order marks the topic as ordered (informational for clients).
	Order bool
	// Cluster limits creation to the masters of one cluster. Default: every cluster.
	Cluster string
	// Brokers limits creation to these broker names. Default: every master (of Cluster).
	Brokers []string
}

// CreateTopic creates or updates a topic on the chosen masters (UPDATE_AND_CREATE_TOPIC), which
// register it with the NameServers.
func (a *Admin) CreateTopic(ctx context.Context, spec TopicSpec) error {
	if err := body.ValidateTopic(spec.Topic); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if spec.Queues == 0 {
		spec.Queues = 8
	}
	if spec.Perm == 0 {
		spec.Perm = body.PermRead | body.PermWrite
	}
	addrs, err := a.masters(ctx, spec.Cluster, spec.Brokers)
	if err != nil {
		return err
	}
	q := strconv.Itoa(int(spec.Queues))
	ext := remoting.Fields{
		"topic", spec.Topic,
		"readQueueNums", q,
		"writeQueueNums", q,
		"perm", strconv.Itoa(int(spec.Perm)),
		"topicFilterType", "SINGLE_TAG",
		"topicSysFlag", "0",
		"order", strconv.FormatBool(spec.Order),
	}
	for _, addr := range addrs {
		if _, err := a.c.call(ctx, addr, remoting.NewRequest(code.UpdateAndCreateTopic, ext, nil)); err != nil {
			return err
		}
	}
	return nil
}

// masters returns the master addresses of the named brokers, or of every broker (of cluster).
func (a *Admin) masters(ctx context.Context, cluster string, names []string) ([]string, error) {
	ci, err := a.ClusterInfo(ctx)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if cluster != "" {
			names = ci.ClusterAddrTable[cluster]
		} else {
			for name := range ci.BrokerAddrTable {
				names = append(names, name)
			}
		}
	}
	var addrs []string
	for _, name := range names {
		bd := ci.BrokerAddrTable[name]
		if bd == nil || bd.BrokerAddrs[body.MasterID] == "" {
			return nil, fmt.Errorf("%w: broker %s has no master", ErrNoRoute, name)
		}
		addrs = append(addrs, bd.BrokerAddrs[body.MasterID])
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: no broker (cluster %q)", ErrNoRoute, cluster)
	}
	slices.Sort(addrs)
	return addrs, nil
}

// topicMasters returns the master addresses of the brokers serving topic.
func (a *Admin) topicMasters(ctx context.Context, topic string) ([]string, error) {
	r, err := a.Route(ctx, topic)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, bd := range r.BrokerDatas {
		if bd != nil && bd.BrokerAddrs[body.MasterID] != "" {
			addrs = append(addrs, bd.BrokerAddrs[body.MasterID])
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: topic %s has no master broker", ErrNoRoute, topic)
	}
	slices.Sort(addrs)
	return addrs, nil
}

// DeleteTopic deletes a topic from every broker serving it (DELETE_TOPIC_IN_BROKER) and from every
// NameServer (DELETE_TOPIC_IN_NAMESRV).
func (a *Admin) DeleteTopic(ctx context.Context, topic string) error {
	addrs, err := a.topicMasters(ctx, topic)
	if err != nil {
		return err
	}
	ext := remoting.Fields{"topic", topic}
	for _, addr := range addrs {
		if _, err := a.c.call(ctx, addr, remoting.NewRequest(code.DeleteTopicInBroker, ext, nil)); err != nil {
			return err
		}
	}
	for _, ns := range a.c.cfg.nameServers {
		if _, err := a.c.call(ctx, ns, remoting.NewRequest(code.DeleteTopicInNamesrv, ext, nil)); err != nil {
			return err
		}
	}
	return nil
}

// QueueStats is one queue's consumption progress.
type QueueStats struct {
	Queue MessageQueue
	// BrokerOffset is the queue's max offset: the offset the next message will get.
	BrokerOffset int64
	// ConsumerOffset is the group's committed offset (the next message to consume); -1 when the group
	// has committed nothing for the queue.
	ConsumerOffset int64
	// LastTimestamp is the store time of the last consumed message; zero when unknown.
	LastTimestamp time.Time
}

// Lag returns how many messages of the queue the group has not consumed.
func (q QueueStats) Lag() int64 {
	return max(q.BrokerOffset-max(q.ConsumerOffset, 0), 0)
}

// ConsumeStats is a group's progress on the queues of its topics.
type ConsumeStats struct {
	Queues     []QueueStats // sorted by topic, broker, queue id
	ConsumeTPS float64      // summed over the brokers
}

// Lag returns the total number of messages the group has not consumed.
func (s *ConsumeStats) Lag() int64 {
	var n int64
	for _, q := range s.Queues {
		n += q.Lag()
	}
	return n
}

// ConsumeStats returns a group's progress (GET_CONSUME_STATS) on topic, or on every topic it
// consumes when topic is "". Brokers where the group has no offsets and no subscription are skipped;
// when no broker knows the group the error is a *ResponseError with code.ConsumerNotOnline.
func (a *Admin) ConsumeStats(ctx context.Context, group, topic string) (*ConsumeStats, error) {
	var addrs []string
	var err error
	if topic != "" {
		addrs, err = a.topicMasters(ctx, topic)
	} else {
		addrs, err = a.masters(ctx, "", nil)
	}
	if err != nil {
		return nil, err
	}
	ext := remoting.Fields{"consumerGroup", group}
	if topic != "" {
		ext.Set("topic", topic)
	}
	stats := &ConsumeStats{}
	var lastErr error
	found := false
	for _, addr := range addrs {
		resp, err := a.c.call(ctx, addr, remoting.NewRequest(code.GetConsumeStats, ext, nil))
		if err != nil {
			if !errors.Is(err, &ResponseError{Code: code.ConsumerNotOnline}) {
				return nil, err
			}
			lastErr = err
			continue
		}
		found = true
		if err := parseConsumeStats(resp.Body, stats); err != nil {
			return nil, fmt.Errorf("client: GET_CONSUME_STATS from %s: %w", addr, err)
		}
	}
	if !found {
		return nil, lastErr
	}
	slices.SortFunc(stats.Queues, func(x, y QueueStats) int { return compareMQ(x.Queue, y.Queue) })
	return stats, nil
}

func compareMQ(x, y MessageQueue) int {
	switch {
	case x.Topic != y.Topic:
		return strings.Compare(x.Topic, y.Topic)
	case x.BrokerName != y.BrokerName:
		return strings.Compare(x.BrokerName, y.BrokerName)
	}
	return int(x.QueueID - y.QueueID)
}

// parseConsumeStats adds one broker's ConsumeStats body to stats. fastjson writes it with
// MessageQueue objects as keys, so it is read with parseMQMapField; values are
// {"brokerOffset":..,"consumerOffset":..,"lastTimestamp":..}.
func parseConsumeStats(data []byte, stats *ConsumeStats) error {
	entries, err := parseMQMapField(data, "offsetTable")
	if err != nil {
		return err
	}
	for _, e := range entries {
		var w struct {
			BrokerOffset   int64 `json:"brokerOffset"`
			ConsumerOffset int64 `json:"consumerOffset"`
			LastTimestamp  int64 `json:"lastTimestamp"`
		}
		if err := json.Unmarshal(e.Value, &w); err != nil {
			return fmt.Errorf("%w: queue %v: %v", errBadMQMap, e.Queue, err)
		}
		qs := QueueStats{Queue: e.Queue, BrokerOffset: w.BrokerOffset, ConsumerOffset: w.ConsumerOffset}
		if w.LastTimestamp > 0 {
			qs.LastTimestamp = time.UnixMilli(w.LastTimestamp)
		}
		stats.Queues = append(stats.Queues, qs)
	}
	if m := consumeTPS.FindSubmatch(data); m != nil {
		if v, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
			stats.ConsumeTPS += v
		}
	}
	return nil
}

// ViewMessage returns the message with an offset message id (SendResult.OffsetMsgID), asking the
// broker whose address the id holds (VIEW_MESSAGE_BY_ID).
func (a *Admin) ViewMessage(ctx context.Context, offsetMsgID string) (*message.Message, error) {
	host, off, err := message.ParseOffsetMsgID(offsetMsgID)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	addr := host.String()
	resp, err := a.c.call(ctx, addr, remoting.NewRequest(code.ViewMessageByID, remoting.Fields{"offset", strconv.FormatInt(off, 10)}, nil))
	if err != nil {
		return nil, err
	}
	msgs, err := decodeMessages(resp.Body)
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("client: VIEW_MESSAGE_BY_ID from %s: %d records in the answer", addr, len(msgs))
	}
	return msgs[0], nil
}

// QueryMessages returns up to maxNum messages of topic per broker whose KEYS contain key, stored
// between begin and end (QUERY_MESSAGE). With uniqKey the key is a message's UNIQ_KEY
// (SendResult.MsgID) instead. maxNum 0 means 32, the brokers' default. No match is an empty result.
func (a *Admin) QueryMessages(ctx context.Context, topic, key string, uniqKey bool, begin, end time.Time, maxNum int) ([]*message.Message, error) {
	addrs, err := a.topicMasters(ctx, topic)
	if err != nil {
		return nil, err
	}
	if maxNum <= 0 {
		maxNum = 32
	}
	ext := remoting.Fields{
		"topic", topic,
		"key", key,
		"maxNum", strconv.Itoa(maxNum),
		"beginTimestamp", strconv.FormatInt(begin.UnixMilli(), 10),
		"endTimestamp", strconv.FormatInt(end.UnixMilli(), 10),
	}
	if uniqKey {
		ext.Set("_UNIQUE_KEY_QUERY", "true")
	}
	var out []*message.Message
	for _, addr := range addrs {
		resp, err := a.c.call(ctx, addr, remoting.NewRequest(code.QueryMessage, ext, nil))
		if errors.Is(err, &ResponseError{Code: code.QueryNotFound}) {
			continue
		}
		if err != nil {
			return nil, err
		}
		msgs, err := decodeMessages(resp.Body)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// ResetOffsetByTime moves group's committed offsets on every queue of topic to the first message
// stored at or after t (INVOKE_BROKER_TO_RESET_OFFSET); a zero t means the end of each queue. Without
// force, offsets only move backwards. Online consumers of the group are told by the brokers. It
// returns the new offsets.
func (a *Admin) ResetOffsetByTime(ctx context.Context, topic, group string, t time.Time, force bool) (map[MessageQueue]int64, error) {
	addrs, err := a.topicMasters(ctx, topic)
	if err != nil {
		return nil, err
	}
	ts := int64(-1)
	if !t.IsZero() {
		ts = t.UnixMilli()
	}
	ext := remoting.Fields{"topic", topic, "group", group, "timestamp", strconv.FormatInt(ts, 10), "isForce", strconv.FormatBool(force)}
	entries, err := a.offsetTables(ctx, addrs, remoting.NewRequest(code.InvokeBrokerToResetOffset, ext, nil))
	if err != nil {
		return nil, err
	}
	out := map[MessageQueue]int64{}
	for _, e := range entries {
		off, err := strconv.ParseInt(string(e.Value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("client: reset offsets: queue %v: %w", e.Queue, err)
		}
		out[e.Queue] = off
	}
	return out, nil
}

// offsetTables sends req to every broker of addrs and returns the entries of the offsetTable of
// their answers (a MessageQueue-keyed map).
func (a *Admin) offsetTables(ctx context.Context, addrs []string, req *remoting.Command) ([]body.MQValue, error) {
	var out []body.MQValue
	for _, addr := range addrs {
		resp, err := a.c.call(ctx, addr, req)
		if err != nil {
			return nil, err
		}
		entries, err := parseMQMapField(resp.Body, "offsetTable")
		if err != nil {
			return nil, fmt.Errorf("client: %s answer from %s: %w", req.RequestCode(), addr, err)
		}
		out = append(out, entries...)
	}
	return out, nil
}

// ConsumerConnection returns a consumer group's online members and its subscriptions as the brokers
// heard them (GET_CONSUMER_CONNECTION_LIST, from the first broker that knows the group). A group
// with no online member gives a *ResponseError with code.ConsumerNotOnline.
func (a *Admin) ConsumerConnection(ctx context.Context, group string) (*body.ConsumerConnection, error) {
	addrs, err := a.masters(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, addr := range addrs {
		cc, err := a.c.consumerConnection(ctx, addr, group)
		if err == nil {
			return cc, nil
		}
		lastErr = err
	}
	return nil, lastErr
}
