package broker

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/remoting/transport"
)

// clientChannel is one client connection known from its heartbeats.
type clientChannel struct {
	conn       *transport.Conn
	clientID   string
	language   string
	version    int32
	lastUpdate time.Time
}

// consumerGroup is what the broker knows of one consumer group from its members' heartbeats.
type consumerGroup struct {
	channels         map[*transport.Conn]*clientChannel
	subscriptions    map[string]*body.SubscriptionData // topic → subscription
	consumeType      string
	messageModel     string
	consumeFromWhere string
}

// clientRegistry tracks producer and consumer clients by group and connection, as RocketMQ's
// ConsumerManager and ProducerManager do. A client leaves when its connection closes, when it
// unregisters, or after ChannelExpiredTimeout without a heartbeat.
type clientRegistry struct {
	mu struct {
		sync.Mutex
		consumers map[string]*consumerGroup
		producers map[string]map[*transport.Conn]*clientChannel
	}
}

func newClientRegistry() *clientRegistry {
	r := &clientRegistry{}
	r.mu.consumers = make(map[string]*consumerGroup)
	r.mu.producers = make(map[string]map[*transport.Conn]*clientChannel)
	return r
}

func newChannel(conn *transport.Conn, clientID string, req *remoting.Command, now time.Time) *clientChannel {
	return &clientChannel{conn: conn, clientID: clientID, language: req.Language.String(), version: int32(req.Version), lastUpdate: now}
}

// registerConsumer records a consumer group member's heartbeat and reports whether the group's
// membership changed (a new member).
func (r *clientRegistry) registerConsumer(cd *body.ConsumerData, ch *clientChannel) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.mu.consumers[cd.GroupName]
	if g == nil {
		g = &consumerGroup{channels: make(map[*transport.Conn]*clientChannel), subscriptions: make(map[string]*body.SubscriptionData)}
		r.mu.consumers[cd.GroupName] = g
	}
	g.consumeType, g.messageModel, g.consumeFromWhere = cd.ConsumeType, cd.MessageModel, cd.ConsumeFromWhere
	subs := make(map[string]*body.SubscriptionData, len(cd.SubscriptionDataSet))
	for _, sd := range cd.SubscriptionDataSet {
		if sd != nil {
			subs[sd.Topic] = sd
		}
	}
	g.subscriptions = subs
	old, known := g.channels[ch.conn]
	g.channels[ch.conn] = ch
	return !known || old.clientID != ch.clientID
}

// registerProducer records a producer group member's heartbeat.
func (r *clientRegistry) registerProducer(group string, ch *clientChannel) {
	r.mu.Lock()
	defer r.mu.Unlock()
	chans := r.mu.producers[group]
	if chans == nil {
		chans = make(map[*transport.Conn]*clientChannel)
		r.mu.producers[group] = chans
	}
	chans[ch.conn] = ch
}

// unregister removes a client from the named groups (UNREGISTER_CLIENT) and returns the consumer
// groups whose membership changed.
func (r *clientRegistry) unregister(clientID, producerGroup, consumerGroup string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if chans := r.mu.producers[producerGroup]; chans != nil {
		for conn, ch := range chans {
			if ch.clientID == clientID {
				delete(chans, conn)
			}
		}
		if len(chans) == 0 {
			delete(r.mu.producers, producerGroup)
		}
	}
	var changed []string
	if g := r.mu.consumers[consumerGroup]; g != nil {
		for conn, ch := range g.channels {
			if ch.clientID == clientID {
				delete(g.channels, conn)
				changed = append(changed, consumerGroup)
			}
		}
		r.dropEmptyLocked(consumerGroup)
	}
	return slices.Compact(changed)
}

func (r *clientRegistry) dropEmptyLocked(group string) {
	if g := r.mu.consumers[group]; g != nil && len(g.channels) == 0 {
		delete(r.mu.consumers, group)
	}
}

// remove drops every channel for which gone is true and returns the consumer groups whose
// membership changed.
func (r *clientRegistry) remove(gone func(*clientChannel) bool) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var changed []string
	for name, g := range r.mu.consumers {
		n := len(g.channels)
		maps.DeleteFunc(g.channels, func(_ *transport.Conn, ch *clientChannel) bool { return gone(ch) })
		if len(g.channels) != n {
			changed = append(changed, name)
			r.dropEmptyLocked(name)
		}
	}
	for name, chans := range r.mu.producers {
		maps.DeleteFunc(chans, func(_ *transport.Conn, ch *clientChannel) bool { return gone(ch) })
		if len(chans) == 0 {
			delete(r.mu.producers, name)
		}
	}
	slices.Sort(changed)
	return changed
}

// connClosed drops a closed connection's channels.
func (r *clientRegistry) connClosed(conn *transport.Conn) []string {
	return r.remove(func(ch *clientChannel) bool { return ch.conn == conn })
}

// expire drops channels silent since before deadline.
func (r *clientRegistry) expire(deadline time.Time) []string {
	return r.remove(func(ch *clientChannel) bool { return ch.lastUpdate.Before(deadline) })
}

// consumerIDs returns the client ids of a group's live members, sorted and unique.
func (r *clientRegistry) consumerIDs(group string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.mu.consumers[group]
	if g == nil {
		return nil
	}
	ids := make([]string, 0, len(g.channels))
	for _, ch := range g.channels {
		ids = append(ids, ch.clientID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// consumerInfo is a snapshot of a group for pulls and admin calls.
type consumerInfo struct {
	subscription     *body.SubscriptionData // for the topic asked about; nil if none
	messageModel     string
	consumeType      string
	consumeFromWhere string
	channels         []*clientChannel
	subscriptions    map[string]*body.SubscriptionData
}

// consumer returns a snapshot of a group, or nil if it has no live member.
func (r *clientRegistry) consumer(group, topic string) *consumerInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.mu.consumers[group]
	if g == nil {
		return nil
	}
	info := &consumerInfo{subscription: g.subscriptions[topic], messageModel: g.messageModel, consumeType: g.consumeType,
		consumeFromWhere: g.consumeFromWhere, subscriptions: maps.Clone(g.subscriptions)}
	for _, ch := range g.channels {
		c := *ch
		info.channels = append(info.channels, &c)
	}
	return info
}

// consumerGroups returns the names of groups with live members, sorted.
func (r *clientRegistry) consumerGroups() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.mu.consumers))
}

// producers returns a producer group's live channels.
func (r *clientRegistry) producers(group string) []*clientChannel {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*clientChannel
	for _, ch := range r.mu.producers[group] {
		c := *ch
		out = append(out, &c)
	}
	return out
}

// producerByClientID returns a live producer channel of the client with this id, or nil.
func (r *clientRegistry) producerByClientID(clientID string) *clientChannel {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, chans := range r.mu.producers {
		for _, ch := range chans {
			if ch.clientID == clientID {
				c := *ch
				return &c
			}
		}
	}
	return nil
}

// notifyIDsChanged tells every member of a group that membership changed, so it rebalances now
// instead of at its next periodic rebalance (NOTIFY_CONSUMER_IDS_CHANGED, oneway).
func (b *Broker) notifyIDsChanged(group string) {
	cfg, _ := b.groups.get(group)
	if cfg != nil && !cfg.NotifyConsumerIDsChangedEnable {
		return
	}
	info := b.clients.consumer(group, "")
	if info == nil {
		return
	}
	for _, ch := range info.channels {
		req := remoting.NewRequest(code.NotifyConsumerIDsChanged, remoting.Fields{"consumerGroup", group}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := ch.conn.InvokeOneway(ctx, req); err != nil {
			b.log.Debug("notify consumer ids changed failed", "group", group, "client", ch.clientID, "err", err)
		}
		cancel()
	}
}
