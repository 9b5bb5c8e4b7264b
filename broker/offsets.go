package broker

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
)

// offsetTable holds consumer offsets ("next offset to consume") per topic@group and queue,
// persisted in config/consumerOffset.json on an interval and at shutdown.
type offsetTable struct {
	path      string
	persistMu sync.Mutex // serializes persist, so an older snapshot never overwrites a newer one
	mu        struct {
		sync.Mutex
		offsets map[string]map[int32]int64 // "topic@group" → queue id → offset
		dirty   bool
	}
}

type offsetFile struct {
	OffsetTable map[string]map[string]int64 `json:"offsetTable"`
}

func offsetKey(topic, group string) string { return topic + "@" + group }

func openOffsetTable(path string) (*offsetTable, error) {
	t := &offsetTable{path: path}
	t.mu.offsets = make(map[string]map[int32]int64)
	var file offsetFile
	if err := loadJSON(path, &file); err != nil {
		return nil, fmt.Errorf("broker: consumer offsets: %w", err)
	}
	for key, queues := range file.OffsetTable {
		m := make(map[int32]int64, len(queues))
		for q, off := range queues {
			id, err := strconv.ParseInt(q, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("broker: consumer offsets: %s: queue id %q is not a number", path, q)
			}
			m[int32(id)] = off
		}
		t.mu.offsets[key] = m
	}
	return t, nil
}

// commit records a group's offset for a queue.
func (t *offsetTable) commit(topic, group string, queueID int32, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := offsetKey(topic, group)
	m := t.mu.offsets[key]
	if m == nil {
		m = make(map[int32]int64)
		t.mu.offsets[key] = m
	}
	if old, ok := m[queueID]; !ok || old != offset {
		m[queueID] = offset
		t.mu.dirty = true
	}
}

// query returns a group's offset for a queue, and whether there is one.
func (t *offsetTable) query(topic, group string, queueID int32) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	off, ok := t.mu.offsets[offsetKey(topic, group)][queueID]
	return off, ok
}

// queues returns a copy of a group's offsets of a topic.
func (t *offsetTable) queues(topic, group string) map[int32]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.mu.offsets[offsetKey(topic, group)])
}

// groupsOf returns the groups with offsets on a topic.
func (t *offsetTable) groupsOf(topic string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var groups []string
	for key := range t.mu.offsets {
		if tp, g, ok := strings.Cut(key, "@"); ok && tp == topic {
			groups = append(groups, g)
		}
	}
	return groups
}

// topicsOf returns the topics a group has offsets on.
func (t *offsetTable) topicsOf(group string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var topics []string
	for key := range t.mu.offsets {
		if i := strings.LastIndexByte(key, '@'); i >= 0 && key[i+1:] == group {
			topics = append(topics, key[:i])
		}
	}
	return topics
}

// removeTopic drops every group's offsets of a topic.
func (t *offsetTable) removeTopic(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key := range t.mu.offsets {
		if tp, _, ok := strings.Cut(key, "@"); ok && tp == topic {
			delete(t.mu.offsets, key)
			t.mu.dirty = true
		}
	}
}

// removeGroup drops a group's offsets on every topic.
func (t *offsetTable) removeGroup(group string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key := range t.mu.offsets {
		if i := strings.LastIndexByte(key, '@'); i >= 0 && key[i+1:] == group {
			delete(t.mu.offsets, key)
			t.mu.dirty = true
		}
	}
}

// snapshotLocked returns the table in its file form.
func (t *offsetTable) snapshotLocked() offsetFile {
	file := offsetFile{OffsetTable: make(map[string]map[string]int64, len(t.mu.offsets))}
	for key, queues := range t.mu.offsets {
		m := make(map[string]int64, len(queues))
		for q, off := range queues {
			m[strconv.Itoa(int(q))] = off
		}
		file.OffsetTable[key] = m
	}
	return file
}

// encode returns the table as GET_ALL_CONSUMER_OFFSET's body.
func (t *offsetTable) encode() []byte {
	t.mu.Lock()
	file := t.snapshotLocked()
	t.mu.Unlock()
	data, _ := json.Marshal(file)
	return data
}

// persist writes the table if it changed since the last write.
func (t *offsetTable) persist() error {
	t.persistMu.Lock()
	defer t.persistMu.Unlock()
	t.mu.Lock()
	if !t.mu.dirty {
		t.mu.Unlock()
		return nil
	}
	file := t.snapshotLocked()
	t.mu.dirty = false
	t.mu.Unlock()
	if err := saveJSON(t.path, file); err != nil {
		t.mu.Lock()
		t.mu.dirty = true
		t.mu.Unlock()
		return fmt.Errorf("broker: save consumer offsets: %w", err)
	}
	return nil
}
