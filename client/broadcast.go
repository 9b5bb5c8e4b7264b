package client

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/apogeemq/apogee/remoting/body"
)

// Broadcasting (RocketMQ's BROADCASTING message model): every member of the group consumes every
// message of its topics; nothing is shared, rebalanced or retried, and the offsets are kept by each
// consumer in a local file instead of on the brokers.

// WithBroadcasting makes the consumer broadcasting and keeps its offsets in offsetFile (written as
// {"offsetTable":{...}} like RocketMQ's offsets.json, replaced atomically at each commit; its
// directory is created). Each consumer process needs its own file. A message whose handler fails
// is not redelivered (as in RocketMQ). Default: clustering.
func WithBroadcasting(offsetFile string) PushConsumerOpt {
	return pushOpt(func(c *pushCfg) { c.broadcastFile = offsetFile })
}

// localOffsets is a broadcasting consumer's offset file. Protected by the PushConsumer's mu.
type localOffsets struct {
	path  string
	table map[MessageQueue]int64
}

func loadLocalOffsets(path string) (*localOffsets, error) {
	lo := &localOffsets{path: path, table: map[MessageQueue]int64{}}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return lo, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: offsets file: %w", err)
	}
	entries, err := parseMQMapField(data, "offsetTable")
	if err != nil {
		return nil, fmt.Errorf("client: offsets file %s: %w", path, err)
	}
	for _, e := range entries {
		off, err := strconv.ParseInt(string(e.Value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("client: offsets file %s: queue %v: %w", path, e.Queue, err)
		}
		lo.table[e.Queue] = off
	}
	return lo, nil
}

// save writes the table to a temporary file and renames it over the old one.
func (lo *localOffsets) save() error {
	var entries []body.MQValue
	for _, mq := range sortedQueues(lo.table) {
		entries = append(entries, body.MQValue{Queue: mq, Value: strconv.AppendInt(nil, lo.table[mq], 10)})
	}
	data := append(body.AppendMQMap([]byte(`{"offsetTable":`), entries), '}')
	if err := os.MkdirAll(filepath.Dir(lo.path), 0o755); err != nil {
		return fmt.Errorf("client: offsets file: %w", err)
	}
	tmp := lo.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("client: offsets file: %w", err)
	}
	if err := os.Rename(tmp, lo.path); err != nil {
		return fmt.Errorf("client: offsets file: %w", err)
	}
	return nil
}

// storeOffset commits a queue's consumed offset: to the local file when broadcasting, else to the
// queue's broker.
func (pc *PushConsumer) storeOffset(ctx context.Context, mq MessageQueue, off int64) error {
	if pc.cfg.broadcastFile == "" {
		return pc.c.commitOffset(ctx, pc.group, mq, off)
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.mu.local.table[mq] = off
	return pc.mu.local.save()
}

// loadOffset returns where the consumer starts on mq: its committed offset (local when
// broadcasting), else the one WithConsumeFrom says.
func (pc *PushConsumer) loadOffset(ctx context.Context, mq MessageQueue) (int64, error) {
	if pc.cfg.broadcastFile == "" {
		return pc.c.startOffset(ctx, pc.group, mq, pc.cfg.from)
	}
	pc.mu.Lock()
	off, ok := pc.mu.local.table[mq]
	pc.mu.Unlock()
	if ok {
		return off, nil
	}
	return pc.c.offsetFrom(ctx, mq, pc.cfg.from)
}
