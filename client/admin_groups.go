package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
)

// CreateGroup creates or updates a consumer group's configuration (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
// on every master of cluster ("" for every cluster). Start from body.NewSubscriptionGroupConfig for
// RocketMQ's defaults.
func (a *Admin) CreateGroup(ctx context.Context, cluster string, cfg *body.SubscriptionGroupConfig) error {
	if err := body.ValidateGroup(cfg.GroupName); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	addrs, err := a.masters(ctx, cluster, nil)
	if err != nil {
		return err
	}
	data := body.Marshal(cfg)
	for _, addr := range addrs {
		if _, err := a.c.call(ctx, addr, remoting.NewRequest(code.UpdateAndCreateSubscriptionGroup, nil, data)); err != nil {
			return err
		}
	}
	return nil
}

// DeleteGroup deletes a consumer group's configuration (DELETE_SUBSCRIPTIONGROUP) from every master
// of cluster ("" for every cluster), and its committed offsets too with removeOffsets.
func (a *Admin) DeleteGroup(ctx context.Context, cluster, group string, removeOffsets bool) error {
	addrs, err := a.masters(ctx, cluster, nil)
	if err != nil {
		return err
	}
	ext := remoting.Fields{"groupName", group, "removeOffset", strconv.FormatBool(removeOffsets)}
	for _, addr := range addrs {
		if _, err := a.c.call(ctx, addr, remoting.NewRequest(code.DeleteSubscriptionGroup, ext, nil)); err != nil {
			return err
		}
	}
	return nil
}

// Groups returns the consumer group configurations of the broker at addr
// (GET_ALL_SUBSCRIPTIONGROUP_CONFIG), by name.
func (a *Admin) Groups(ctx context.Context, addr string) (map[string]*body.SubscriptionGroupConfig, error) {
	resp, err := a.c.call(ctx, addr, remoting.NewRequest(code.GetAllSubscriptionGroupConfig, nil, nil))
	if err != nil {
		return nil, err
	}
	var w body.SubscriptionGroupWrapper
	if err := json.Unmarshal(body.QuoteBareKeys(resp.Body), &w); err != nil {
		return nil, fmt.Errorf("client: group configs from %s: %w", addr, err)
	}
	return w.SubscriptionGroupTable, nil
}

// QueueOffsets is one queue's range of offsets.
type QueueOffsets struct {
	Queue      MessageQueue
	MinOffset  int64     // the first offset still stored
	MaxOffset  int64     // the offset the next message will get
	LastUpdate time.Time // store time of the last message; zero when the queue is empty
}

// TopicStats returns the offsets of every queue of topic on every broker serving it
// (GET_TOPIC_STATS_INFO), sorted by broker and queue.
func (a *Admin) TopicStats(ctx context.Context, topic string) ([]QueueOffsets, error) {
	addrs, err := a.topicMasters(ctx, topic)
	if err != nil {
		return nil, err
	}
	entries, err := a.offsetTables(ctx, addrs, remoting.NewRequest(code.GetTopicStatsInfo, remoting.Fields{"topic", topic}, nil))
	if err != nil {
		return nil, err
	}
	out := make([]QueueOffsets, 0, len(entries))
	for _, e := range entries {
		var v struct {
			MinOffset           int64 `json:"minOffset"`
			MaxOffset           int64 `json:"maxOffset"`
			LastUpdateTimestamp int64 `json:"lastUpdateTimestamp"`
		}
		if err := json.Unmarshal(e.Value, &v); err != nil {
			return nil, fmt.Errorf("client: topic stats: queue %v: %w", e.Queue, err)
		}
		qo := QueueOffsets{Queue: e.Queue, MinOffset: v.MinOffset, MaxOffset: v.MaxOffset}
		if v.LastUpdateTimestamp > 0 {
			qo.LastUpdate = time.UnixMilli(v.LastUpdateTimestamp)
		}
		out = append(out, qo)
	}
	slices.SortFunc(out, func(x, y QueueOffsets) int { return compareMQ(x.Queue, y.Queue) })
	return out, nil
}

// BrokerRuntimeInfo returns the runtime figures of the broker at addr (GET_BROKER_RUNTIME_INFO):
// versions, commit-log offsets, disk state and the like, as name → value.
func (a *Admin) BrokerRuntimeInfo(ctx context.Context, addr string) (map[string]string, error) {
	resp, err := a.c.call(ctx, addr, remoting.NewRequest(code.GetBrokerRuntimeInfo, nil, nil))
	if err != nil {
		return nil, err
	}
	var kv body.KVTable
	if err := json.Unmarshal(resp.Body, &kv); err != nil {
		return nil, fmt.Errorf("client: runtime info from %s: %w", addr, err)
	}
	return kv.Table, nil
}

// BrokerConfig returns the configuration of the broker at addr (GET_BROKER_CONFIG), as the
// broker.conf lines it answers with, name → value.
func (a *Admin) BrokerConfig(ctx context.Context, addr string) (map[string]string, error) {
	resp, err := a.c.call(ctx, addr, remoting.NewRequest(code.GetBrokerConfig, nil, nil))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(resp.Body), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out, nil
}
