package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/apogeemq/apogee/internal/atomicfile"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/timer"
)

// System topic names (RocketMQ's TopicValidator and MixAll).
const (
	topicSchedule      = "SCHEDULE_TOPIC_XXXX"
	topicTransHalf     = "RMQ_SYS_TRANS_HALF_TOPIC"
	topicTransOpHalf   = "RMQ_SYS_TRANS_OP_HALF_TOPIC"
	topicTransCheckMax = "TRANS_CHECK_MAX_TIME_TOPIC"
	topicSelfTest      = "SELF_TEST_TOPIC"
	topicOffsetMoved   = "OFFSET_MOVED_EVENT"
	topicBenchmark     = "BenchmarkTest"
	retryPrefix        = "%RETRY%"
	dlqPrefix          = "%DLQ%"
	scheduleQueueNums  = 18
)

// notSendable are system topics producers may not send to (PROTOCOL.md §5.2 step 2).
var notSendable = map[string]bool{
	topicSchedule: true, topicTransHalf: true, topicTransOpHalf: true, topicTransCheckMax: true,
	topicSelfTest: true, topicOffsetMoved: true, timer.Topic: true,
}

func loadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s is damaged: %w", path, err)
	}
	return nil
}

func saveJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data)
}

// topicTable is the broker's topic configuration, persisted in config/topics.json. Every change bumps
// the data version, which tells NameServers to rebuild this broker's routes.
type topicTable struct {
	path string
	mu   struct {
		sync.RWMutex
		topics  map[string]*body.TopicConfig
		version body.DataVersion
	}
}

func openTopicTable(path string, o *Options) (*topicTable, error) {
	t := &topicTable{path: path}
	var file body.TopicConfigWrapper
	if err := loadJSON(path, &file); err != nil {
		return nil, fmt.Errorf("broker: topic config: %w", err)
	}
	t.mu.topics = file.TopicConfigTable
	if t.mu.topics == nil {
		t.mu.topics = make(map[string]*body.TopicConfig)
	}
	for name, tc := range t.mu.topics {
		if tc == nil {
			delete(t.mu.topics, name)
		}
	}
	t.mu.version = file.DataVersion
	rw := int32(body.PermRead | body.PermWrite)
	system := []*body.TopicConfig{
		{TopicName: topicSelfTest, ReadQueueNums: 1, WriteQueueNums: 1, Perm: rw},
		{TopicName: topicBenchmark, ReadQueueNums: 8, WriteQueueNums: 8, Perm: rw},
		{TopicName: o.BrokerClusterName, ReadQueueNums: 16, WriteQueueNums: 16, Perm: rw | body.PermInherit},
		{TopicName: o.BrokerName, ReadQueueNums: 1, WriteQueueNums: 1, Perm: rw | body.PermInherit},
		{TopicName: topicOffsetMoved, ReadQueueNums: 1, WriteQueueNums: 1, Perm: rw},
		{TopicName: topicSchedule, ReadQueueNums: scheduleQueueNums, WriteQueueNums: scheduleQueueNums, Perm: rw},
		{TopicName: o.BrokerClusterName + "_REPLY_TOPIC", ReadQueueNums: 1, WriteQueueNums: 1, Perm: rw},
	}
	if isTrue(o.AutoCreateTopicEnable) {
		system = append(system, &body.TopicConfig{TopicName: body.AutoCreateTopicTemplate,
			ReadQueueNums: o.DefaultTopicQueueNums, WriteQueueNums: o.DefaultTopicQueueNums, Perm: rw | body.PermInherit})
	}
	changed := false
	for _, tc := range system {
		if _, ok := t.mu.topics[tc.TopicName]; !ok {
			tc.TopicFilterType = "SINGLE_TAG"
			t.mu.topics[tc.TopicName] = tc
			changed = true
		}
	}
	if changed || t.mu.version.Timestamp == 0 {
		t.bumpLocked()
		if err := t.saveLocked(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *topicTable) bumpLocked() {
	t.mu.version.Counter++
	t.mu.version.Timestamp = time.Now().UnixMilli()
}

func (t *topicTable) saveLocked() error {
	if err := saveJSON(t.path, body.TopicConfigWrapper{TopicConfigTable: t.mu.topics, DataVersion: t.mu.version}); err != nil {
		return fmt.Errorf("broker: save topic config: %w", err)
	}
	return nil
}

// get returns a topic's config, or nil. The config is shared and must not be modified: the table
// never changes a stored config, it replaces it (put), so readers need no copy. Sends and pulls ask
// for every request.
func (t *topicTable) get(name string) *body.TopicConfig {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.mu.topics[name]
}

// put creates or replaces a topic's config and persists the table.
func (t *topicTable) put(tc *body.TopicConfig) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := *tc
	t.mu.topics[tc.TopicName] = &c
	t.bumpLocked()
	return t.saveLocked()
}

// createIfAbsent stores tc unless the topic exists, and returns the topic's config and whether it
// was created. Concurrent first sends to a new topic create it once.
func (t *topicTable) createIfAbsent(tc *body.TopicConfig) (*body.TopicConfig, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur := t.mu.topics[tc.TopicName]; cur != nil {
		c := *cur
		return &c, false, nil
	}
	c := *tc
	t.mu.topics[tc.TopicName] = &c
	t.bumpLocked()
	if err := t.saveLocked(); err != nil {
		delete(t.mu.topics, tc.TopicName)
		return nil, false, err
	}
	return tc, true, nil
}

// delete removes a topic's config; it reports whether it existed.
func (t *topicTable) delete(name string) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.mu.topics[name]; !ok {
		return false, nil
	}
	delete(t.mu.topics, name)
	t.bumpLocked()
	return true, t.saveLocked()
}

// wrapper returns a copy of the whole table with its version, for registration and admin calls.
func (t *topicTable) wrapper() *body.TopicConfigWrapper {
	t.mu.RLock()
	defer t.mu.RUnlock()
	w := &body.TopicConfigWrapper{TopicConfigTable: make(map[string]*body.TopicConfig, len(t.mu.topics)), DataVersion: t.mu.version}
	for name, tc := range t.mu.topics {
		c := *tc
		w.TopicConfigTable[name] = &c
	}
	return w
}

// names returns every topic name, sorted.
func (t *topicTable) names() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Sorted(maps.Keys(t.mu.topics))
}
