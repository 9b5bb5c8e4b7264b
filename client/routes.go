package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
)

// defaultTopicQueueNums is how many queues a producer asks for when a broker auto-creates a topic
// (RocketMQ's defaultTopicQueueNums on the client).
const defaultTopicQueueNums = 4

// topicRoute is one topic's route as a client uses it.
type topicRoute struct {
	data        *body.TopicRouteData
	writeQueues []MessageQueue // writable queues in broker-name, queue-id order
	readQueues  []MessageQueue // readable queues in the same order
	auto        bool           // built from TBW102: the topic does not exist yet
}

// routeTable caches the routes of the topics a client uses and the broker addresses they name. A
// goroutine owned by core refreshes them every routeRefresh, and at once for a topic whose send
// failed (refreshSoon).
type routeTable struct {
	c       *core
	refresh chan string // topics to refresh at once; buffered, dropped when full

	mu struct {
		sync.Mutex
		topics  map[string]*topicRoute      // Protected by mu.
		brokers map[string]map[int64]string // broker name → id → address. Protected by mu.
	}
}

func newRouteTable(c *core) *routeTable {
	t := &routeTable{c: c, refresh: make(chan string, 16)}
	t.mu.topics = map[string]*topicRoute{}
	t.mu.brokers = map[string]map[int64]string{}
	return t
}

// run refreshes routes until the client closes. It runs on a goroutine owned by core.
func (t *routeTable) start() {
	t.c.every(t.c.cfg.routeRefresh, t.refreshAll)
	t.c.spawn(func() {
		for {
			select {
			case <-t.c.done:
				return
			case topic := <-t.refresh:
				t.update(t.c.ctx, topic)
			}
		}
	})
}

func (t *routeTable) refreshAll(ctx context.Context) {
	t.mu.Lock()
	topics := slices.Collect(maps.Keys(t.mu.topics))
	t.mu.Unlock()
	for _, topic := range topics {
		t.update(ctx, topic)
	}
}

// refreshSoon asks the refresh goroutine to fetch topic's route now.
func (t *routeTable) refreshSoon(topic string) {
	select {
	case t.refresh <- topic:
	default:
	}
}

// update fetches topic's route and replaces the cached one; on failure the cached one stays.
func (t *routeTable) update(ctx context.Context, topic string) {
	t.mu.Lock()
	old := t.mu.topics[topic]
	t.mu.Unlock()
	r, err := t.fetch(ctx, topic, old != nil && old.auto)
	if err != nil {
		t.c.cfg.logger.Debug("route refresh failed", "topic", topic, "err", err)
		return
	}
	t.store(topic, r)
}

// get returns topic's route, fetching it on first use. With allowAuto a topic the NameServers do not
// know gets the route of TBW102, so that brokers with auto-creation create it on first send.
func (t *routeTable) get(ctx context.Context, topic string, allowAuto bool) (*topicRoute, error) {
	if r := t.cached(topic, allowAuto); r != nil {
		return r, nil
	}
	r, err := t.fetch(ctx, topic, allowAuto)
	if err != nil {
		return nil, err
	}
	t.store(topic, r)
	return r, nil
}

// cached returns the route get would return without asking a NameServer, or nil.
func (t *routeTable) cached(topic string, allowAuto bool) *topicRoute {
	t.mu.Lock()
	r := t.mu.topics[topic]
	t.mu.Unlock()
	if r != nil && (allowAuto || !r.auto) {
		return r
	}
	return nil
}

func (t *routeTable) store(topic string, r *topicRoute) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.topics[topic] = r
	for _, bd := range r.data.BrokerDatas {
		if bd == nil {
			continue
		}
		addrs := make(map[int64]string, len(bd.BrokerAddrs))
		maps.Copy(addrs, bd.BrokerAddrs)
		t.mu.brokers[bd.BrokerName] = addrs
	}
}

// fetch asks the NameServers for topic's route.
func (t *routeTable) fetch(ctx context.Context, topic string, allowAuto bool) (*topicRoute, error) {
	data, err := t.fetchData(ctx, topic)
	if err == nil {
		return buildRoute(topic, data, false, 0), nil
	}
	if !allowAuto || !errors.Is(err, &ResponseError{Code: code.TopicNotExist}) {
		return nil, err
	}
	tmpl, terr := t.fetchData(ctx, body.AutoCreateTopicTemplate)
	if terr != nil {
		return nil, fmt.Errorf("%w: topic %s: %w", ErrNoRoute, topic, err)
	}
	return buildRoute(topic, tmpl, true, defaultTopicQueueNums), nil
}

func (t *routeTable) fetchData(ctx context.Context, topic string) (*body.TopicRouteData, error) {
	resp, err := t.c.callNameServer(ctx, remoting.NewRequest(code.GetRouteinfoByTopic, remoting.Fields{"topic", topic}, nil))
	if err != nil {
		return nil, err
	}
	data, err := body.DecodeTopicRoute(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("client: route of %s: %w", topic, err)
	}
	return data, nil
}

// buildRoute lists the queues of a route. For an auto-created topic (from TBW102's route), each broker
// gets at most maxQueues queues.
func buildRoute(topic string, data *body.TopicRouteData, auto bool, maxQueues int32) *topicRoute {
	r := &topicRoute{data: data, auto: auto}
	masters := map[string]bool{}
	for _, bd := range data.BrokerDatas {
		if bd != nil && bd.BrokerAddrs[body.MasterID] != "" {
			masters[bd.BrokerName] = true
		}
	}
	qds := slices.Clone(data.QueueDatas)
	slices.SortFunc(qds, func(a, b *body.QueueData) int {
		switch {
		case a.BrokerName < b.BrokerName:
			return -1
		case a.BrokerName > b.BrokerName:
			return 1
		}
		return 0
	})
	for _, qd := range qds {
		if qd == nil {
			continue
		}
		w, rd := qd.WriteQueueNums, qd.ReadQueueNums
		if auto {
			w, rd = min(w, maxQueues), min(rd, maxQueues)
		}
		if qd.Perm&body.PermWrite != 0 && masters[qd.BrokerName] {
			for i := range w {
				r.writeQueues = append(r.writeQueues, MessageQueue{Topic: topic, BrokerName: qd.BrokerName, QueueID: i})
			}
		}
		if qd.Perm&body.PermRead != 0 {
			for i := range rd {
				r.readQueues = append(r.readQueues, MessageQueue{Topic: topic, BrokerName: qd.BrokerName, QueueID: i})
			}
		}
	}
	return r
}

// masterAddr returns the address of broker group name's master, or "".
func (t *routeTable) masterAddr(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.brokers[name][body.MasterID]
}

// brokerAddrs returns the masters' addresses, and the replicas' too when all.
func (t *routeTable) brokerAddrs(all bool) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, addrs := range t.mu.brokers {
		for id, a := range addrs {
			if all || id == body.MasterID {
				out = append(out, a)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
