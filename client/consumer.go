package client

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
)

// Pull sysFlag bits (PullSysFlag, PROTOCOL.md §6.1).
const (
	pullFlagSuspend      = 1 << 1
	pullFlagSubscription = 1 << 2
)

// ConsumerOpt configures both kinds of consumer. Every Opt is a ConsumerOpt.
type ConsumerOpt interface {
	PullConsumerOpt
	PushConsumerOpt
}

// consumerCfg is what both consumers share.
type consumerCfg struct {
	common          commonCfg
	from            ConsumeFrom
	batchSize       int
	longPoll        time.Duration
	rebalancePeriod time.Duration
	allocate        AllocateStrategy
}

func defaultConsumer() consumerCfg {
	return consumerCfg{
		common:          defaultCommon(),
		from:            ConsumeFromLast,
		batchSize:       32,
		longPoll:        15 * time.Second,
		rebalancePeriod: 20 * time.Second,
		allocate:        AllocateAveragely(),
	}
}

// validate checks what every consumer needs.
func (c *consumerCfg) validate(group string) error {
	if len(c.common.nameServers) == 0 {
		return ErrNoNameServer
	}
	if err := body.ValidateGroup(group); err != nil {
		return fmt.Errorf("client: consumer group: %w", err)
	}
	return nil
}

type consumerOpt func(*consumerCfg)

func (o consumerOpt) applyPullConsumer(c *pullCfg) { o(&c.consumerCfg) }
func (o consumerOpt) applyPushConsumer(c *pushCfg) { o(&c.consumerCfg) }

// WithConsumeFrom sets where the group starts on a queue without a committed offset.
// Default ConsumeFromLast.
func WithConsumeFrom(f ConsumeFrom) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { c.from = f })
}

// WithPullBatchSize sets the most messages one pull of one queue returns (RocketMQ's pullBatchSize).
// Default 32; zero or negative keeps the default.
func WithPullBatchSize(n int) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { setPositive(&c.batchSize, n) })
}

// WithLongPollTimeout sets how long a broker may hold a pull while its queue has nothing new
// (suspendTimeoutMillis; brokers cap it). Default 15 s; zero or negative keeps the default.
func WithLongPollTimeout(d time.Duration) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { setPositive(&c.longPoll, d) })
}

// WithRebalancePeriod sets how often a subscribing consumer recomputes its share of the queues; a
// broker's NOTIFY_CONSUMER_IDS_CHANGED also triggers it. Default 20 s; zero or negative keeps the
// default.
func WithRebalancePeriod(d time.Duration) ConsumerOpt {
	return consumerOpt(func(c *consumerCfg) { setPositive(&c.rebalancePeriod, d) })
}

// consumerHeartbeat is the HEART_BEAT body of a consumer of group (model body.Clustering or
// body.Broadcasting) with subscriptions subs (topic → TAG expression).
func consumerHeartbeat(clientID, group, consumeType, model string, from ConsumeFrom, subs map[string]string, subVersion int64) *body.HeartbeatData {
	cd := &body.ConsumerData{GroupName: group, ConsumeType: consumeType, MessageModel: model,
		ConsumeFromWhere: from.String()}
	for topic, expr := range subs {
		tags := body.ParseTags(expr)
		if tags == nil {
			tags = []string{} // the Java broker expects an array
		}
		cd.SubscriptionDataSet = append(cd.SubscriptionDataSet, &body.SubscriptionData{Topic: topic, SubString: expr,
			TagsSet: tags, SubVersion: subVersion, ExpressionType: body.ExpressionTag})
	}
	slices.SortFunc(cd.SubscriptionDataSet, func(a, b *body.SubscriptionData) int { return strings.Compare(a.Topic, b.Topic) })
	return &body.HeartbeatData{ClientID: clientID, ProducerDataSet: []*body.ProducerData{}, ConsumerDataSet: []*body.ConsumerData{cd}}
}

// consumerIDs asks a broker of route for the group's members (GET_CONSUMER_LIST_BY_GROUP), sorted.
func (c *core) consumerIDs(ctx context.Context, group string, r *topicRoute) ([]string, error) {
	var lastErr error = fmt.Errorf("%w: the route has no broker", ErrNoRoute)
	for _, bd := range r.data.BrokerDatas {
		addr := bd.BrokerAddrs[body.MasterID]
		if addr == "" {
			continue
		}
		resp, err := c.call(ctx, addr, remoting.NewRequest(code.GetConsumerListByGroup, remoting.Fields{"consumerGroup", group}, nil))
		if err != nil {
			lastErr = err
			continue
		}
		var cl body.ConsumerList
		if err := json.Unmarshal(resp.Body, &cl); err != nil {
			lastErr = fmt.Errorf("client: consumer list from %s: %w", addr, err)
			continue
		}
		slices.Sort(cl.ConsumerIDList)
		return cl.ConsumerIDList, nil
	}
	return nil, lastErr
}

// pullResult is the outcome of one pull of one queue.
type pullResult struct {
	mq   MessageQueue
	from int64
	next int64
	msgs []*message.Message
	err  error
}

// pullQueue sends one PULL_MESSAGE of group for mq from offset, held by the broker up to the long-poll timeout.
func (c *core) pullQueue(ctx context.Context, cfg *consumerCfg, group string, mq MessageQueue, from int64, expr string) pullResult {
	res := pullResult{mq: mq, from: from}
	addr := c.routes.masterAddr(mq.BrokerName)
	if addr == "" {
		c.routes.refreshSoon(mq.Topic)
		res.err = fmt.Errorf("%w: no master address for broker %s", ErrNoRoute, mq.BrokerName)
		return res
	}
	if expr == "" {
		expr = body.SubAll
	}
	suspend := cfg.longPoll
	ext := remoting.Fields{
		"consumerGroup", group,
		"topic", mq.Topic,
		"queueId", strconv.Itoa(int(mq.QueueID)),
		"queueOffset", strconv.FormatInt(from, 10),
		"maxMsgNums", strconv.Itoa(cfg.batchSize),
		"sysFlag", strconv.Itoa(pullFlagSuspend | pullFlagSubscription),
		"commitOffset", "0",
		"suspendTimeoutMillis", strconv.FormatInt(suspend.Milliseconds(), 10),
		"subscription", expr,
		"subVersion", "0",
		"expressionType", body.ExpressionTag,
	}
	ctx, cancel := context.WithTimeout(ctx, suspend+c.cfg.requestTimeout)
	defer cancel()
	req := remoting.NewRequest(code.PullMessage, ext, nil)
	req.SerializeType = remoting.RocketMQ // the binary header: cheaper to encode and decode than JSON
	resp, err := c.tc.Invoke(ctx, addr, req)
	if err != nil {
		res.err = err
		return res
	}
	r := remoting.ReadExt(resp)
	switch rc := resp.ResponseCode(); rc {
	case code.Success, code.PullNotFound, code.PullRetryImmediately, code.PullOffsetMoved:
		res.next = r.Int64("nextBeginOffset")
		if err := r.Err(); err != nil {
			res.err = fmt.Errorf("client: PULL_MESSAGE answer from %s: %w", addr, err)
			return res
		}
		if rc == code.Success {
			res.msgs, res.err = decodeMessages(resp.Body)
		}
		if rc == code.PullOffsetMoved {
			c.cfg.logger.Warn("pull offset moved", "queue", mq, "from", from, "to", res.next)
		}
	default:
		res.err = responseErr(code.PullMessage, addr, rc, resp.Remark)
	}
	return res
}

// tagSet returns the tags of a TAG expression as a set, or nil when it matches every message.
func tagSet(expr string) map[string]struct{} {
	tags := body.ParseTags(expr)
	if tags == nil {
		return nil
	}
	set := make(map[string]struct{}, len(tags))
	for _, t := range tags {
		set[t] = struct{}{}
	}
	return set
}

// accepts reports whether m passes tags (nil accepts all). Brokers filter by the tags' hash codes;
// this check drops the messages whose tag only shares a hash code.
func accepts(tags map[string]struct{}, m *message.Message) bool {
	if tags == nil {
		return true
	}
	_, ok := tags[m.Tags()]
	return ok
}

// sortedQueues returns the keys of a queue-keyed map in topic, broker, queue id order.
func sortedQueues[V any](m map[MessageQueue]V) []MessageQueue {
	qs := slices.Collect(maps.Keys(m))
	slices.SortFunc(qs, compareMQ)
	return qs
}

// unregister tells every known broker that this client leaves a group (UNREGISTER_CLIENT): kind is
// "consumerGroup" (the other members rebalance at once) or "producerGroup". Failures are only
// logged: brokers drop silent clients after 2 minutes.
func (c *core) unregister(ctx context.Context, kind, group string) {
	ext := remoting.Fields{"clientID", c.clientID, kind, group}
	for _, addr := range c.routes.brokerAddrs(true) {
		if _, err := c.call(ctx, addr, remoting.NewRequest(code.UnregisterClient, ext, nil)); err != nil {
			c.cfg.logger.Warn("unregistering failed", "broker", addr, "group", group, "err", err)
		}
	}
}

// checkSubscriptions compares the group's subscriptions as the broker at addr last heard them (GET_CONSUMER_CONNECTION_LIST)
// with this member's subs and logs a warning for every difference: RocketMQ requires all members of
// a group to subscribe alike, and otherwise silently loses messages (each member filters its queues
// with whatever subscription the broker heard last). Retry topics are not compared.
func (c *core) checkSubscriptions(ctx context.Context, addr, group string, subs map[string]string) {
	cc, err := c.consumerConnection(ctx, addr, group)
	if err != nil {
		return
	}
	for topic, sd := range cc.SubscriptionTable {
		if sd == nil || strings.HasPrefix(topic, retryPrefix) {
			continue
		}
		mine, ok := subs[topic]
		switch {
		case !ok:
			c.cfg.logger.Warn("members of the consumer group subscribe differently: another member subscribes to a topic this one does not; give every member the same subscriptions",
				"group", group, "topic", topic, "their_expression", sd.SubString)
		case mine != sd.SubString:
			c.cfg.logger.Warn("members of the consumer group subscribe differently; give every member the same subscriptions",
				"group", group, "topic", topic, "expression", mine, "their_expression", sd.SubString)
		}
	}
}

// consumerConnection asks the broker at addr about group's members (GET_CONSUMER_CONNECTION_LIST).
func (c *core) consumerConnection(ctx context.Context, addr, group string) (*body.ConsumerConnection, error) {
	resp, err := c.call(ctx, addr, remoting.NewRequest(code.GetConsumerConnectionList, remoting.Fields{"consumerGroup", group}, nil))
	if err != nil {
		return nil, err
	}
	var cc body.ConsumerConnection
	if err := json.Unmarshal(resp.Body, &cc); err != nil {
		return nil, fmt.Errorf("client: consumer connections from %s: %w", addr, err)
	}
	return &cc, nil
}
