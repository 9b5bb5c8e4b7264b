package broker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/store"
)

// divertDelayed turns a message with a positive DELAY level into a scheduled one: it is stored in
// SCHEDULE_TOPIC_XXXX, queue level-1, with its real topic and queue in REAL_TOPIC and REAL_QID, and the
// schedule service delivers it when due (PROTOCOL.md §7.3). Levels above the highest are clamped.
func (b *Broker) divertDelayed(msgs []*message.Message) *remoting.Command {
	for _, m := range msgs {
		v := m.Property(message.PropertyDelayLevel)
		if v == "" {
			continue
		}
		level, err := strconv.Atoi(v)
		if err != nil {
			return b.sendError(code.MessageIllegal, "DELAY=%q is not a delay level (1..%d)", v, len(b.delayLevels))
		}
		if level <= 0 {
			m.DeleteProperty(message.PropertyDelayLevel)
			continue
		}
		if len(msgs) > 1 {
			return b.sendError(code.MessageIllegal, "delay levels are not supported for batched messages")
		}
		level = min(level, len(b.delayLevels))
		m.SetProperty(message.PropertyDelayLevel, strconv.Itoa(level))
		m.SetProperty(message.PropertyRealTopic, m.Topic)
		m.SetProperty(message.PropertyRealQueueID, strconv.Itoa(int(m.QueueID)))
		m.Topic, m.QueueID = topicSchedule, int32(level-1)
	}
	return nil
}

// scheduler delivers delayed messages: one goroutine per delay level reads its queue of
// SCHEDULE_TOPIC_XXXX in order (all messages of a level share one delay, so they fall due in store
// order) and re-appends each message to its real topic when due.
//
// Each message is delivered once, also across crashes. Before a batch is delivered, the batch's range
// and the commit-log end are saved in config/delayOffset.json ("inFlight"); after it, the new offset
// replaces them. A crash in between leaves the in-flight entry, and at the next start the commit log
// written since it was saved is searched for the copies already delivered (deliveries are sequential,
// so they are a prefix of the batch); delivery resumes after the last one found.
type scheduler struct {
	b      *Broker
	path   string
	wakes  []chan struct{} // per level, cap 1
	saveMu sync.Mutex      // orders writes of the file; s.mu is not held while writing
	mu     struct {
		sync.Mutex
		offsets  map[int]int64     // level → next offset in its schedule queue
		inFlight map[int]*inFlight // level → batch being delivered
	}
}

// inFlight is a batch of one level being delivered: schedule-queue offsets [From, To), and the
// commit-log end when it started.
type inFlight struct {
	From    int64 `json:"from"`
	To      int64 `json:"to"`
	LogFrom int64 `json:"logFrom"`
}

type delayOffsetFile struct {
	OffsetTable map[string]int64     `json:"offsetTable"`
	InFlight    map[string]*inFlight `json:"inFlight,omitempty"`
}

func openScheduler(b *Broker, path string) (*scheduler, error) {
	s := &scheduler{b: b, path: path, wakes: make([]chan struct{}, len(b.delayLevels)+1)}
	for i := range s.wakes {
		s.wakes[i] = make(chan struct{}, 1)
	}
	s.mu.offsets = make(map[int]int64)
	s.mu.inFlight = make(map[int]*inFlight)
	var file delayOffsetFile
	if err := loadJSON(path, &file); err != nil {
		return nil, fmt.Errorf("broker: delay offsets: %w", err)
	}
	for k, off := range file.OffsetTable {
		level, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("broker: delay offsets: level %q is not a number", k)
		}
		s.mu.offsets[level] = off
	}
	for k, f := range file.InFlight {
		level, err := strconv.Atoi(k)
		if err != nil || f == nil {
			return nil, fmt.Errorf("broker: delay offsets: bad in-flight entry %q", k)
		}
		s.mu.inFlight[level] = f
	}
	return s, nil
}

// recover settles batches that were being delivered when the broker stopped: each level resumes after
// the last message whose delivered copy is in the commit log. The store must be open.
func (s *scheduler) recover() error {
	for level, f := range s.mu.inFlight {
		msgs, err := s.b.readMessages(topicSchedule, int32(level-1), f.From, int(f.To-f.From))
		if err != nil {
			return err
		}
		var batch []*message.Message
		for _, m := range msgs {
			if m.QueueOffset < f.To {
				batch = append(batch, m)
			}
		}
		delivered, err := s.b.deliveredCopies(f.LogFrom, batch)
		if err != nil {
			return err
		}
		next := f.From
		for off := range delivered {
			next = max(next, off+1) // deliveries are sequential: everything before the last copy went out
		}
		s.b.log.Info("delay level recovered after an unclean stop", "level", level, "batch", fmt.Sprintf("[%d,%d)", f.From, f.To), "resume_at", next)
		if err := s.save(level, next, nil); err != nil {
			return err
		}
	}
	return nil
}

// start runs one delivery loop per level.
func (s *scheduler) start() {
	for level := 1; level <= len(s.b.delayLevels); level++ {
		s.b.startLoop(func() { s.run(level) })
	}
}

// arrived wakes the loop of a level when its schedule queue grows.
func (s *scheduler) arrived(queueID int32) {
	if level := int(queueID) + 1; level >= 1 && level < len(s.wakes) {
		select {
		case s.wakes[level] <- struct{}{}:
		default:
		}
	}
}

func (s *scheduler) offset(level int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.offsets[level]
}

// save records a level's next offset and its in-flight batch (nil: none) durably.
func (s *scheduler) save(level int, next int64, f *inFlight) error {
	s.mu.Lock()
	s.mu.offsets[level] = next
	if f != nil {
		s.mu.inFlight[level] = f
	} else {
		delete(s.mu.inFlight, level)
	}
	file := s.fileLocked()
	s.mu.Unlock()
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	return saveJSON(s.path, file)
}

func (s *scheduler) fileLocked() delayOffsetFile {
	file := delayOffsetFile{OffsetTable: make(map[string]int64, len(s.mu.offsets)), InFlight: make(map[string]*inFlight)}
	for l, off := range s.mu.offsets {
		file.OffsetTable[strconv.Itoa(l)] = off
	}
	for l, f := range s.mu.inFlight {
		file.InFlight[strconv.Itoa(l)] = f
	}
	return file
}

// encode returns the delivery progress per level, the body of GET_ALL_DELAY_OFFSET.
func (s *scheduler) encode() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return body.Marshal(delayOffsetFile{OffsetTable: s.fileLocked().OffsetTable})
}

func (s *scheduler) run(level int) {
	delay := s.b.delayLevels[level-1]
	queueID := int32(level - 1)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// wait blocks until d passes, the level's queue grows, or the broker stops; false means stop.
	wait := func(d time.Duration) bool {
		timer.Reset(d)
		select {
		case <-s.b.stop:
			return false
		case <-s.wakes[level]:
			return true
		case <-timer.C:
			return true
		}
	}
	for {
		off := s.offset(level)
		msgs, err := s.b.readMessages(topicSchedule, queueID, off, 32)
		if err != nil {
			s.b.log.Error("reading scheduled messages failed", "level", level, "err", err)
		}
		if len(msgs) == 0 {
			if min := s.b.store.MinOffset(topicSchedule, queueID); off < min {
				s.save(level, min, nil) // retention removed them
				continue
			}
			if !wait(time.Second) {
				return
			}
			continue
		}
		dueCount := 0
		for _, m := range msgs {
			if time.Until(time.UnixMilli(m.StoreTimestamp).Add(delay)) > 0 {
				break
			}
			dueCount++
		}
		if dueCount > 0 {
			batch := msgs[:dueCount]
			f := &inFlight{From: off, To: batch[len(batch)-1].QueueOffset + 1, LogFrom: s.b.store.MaxCommitLogOffset()}
			if err := s.save(level, off, f); err != nil {
				s.b.log.Error("persisting delay progress failed; delivery paused", "level", level, "err", err)
				if !wait(time.Second) {
					return
				}
				continue
			}
			delivered := off
			for _, m := range batch {
				if err := s.deliver(m); err != nil {
					s.b.log.Warn("delivering a scheduled message failed; will retry", "level", level, "offset", m.QueueOffset, "err", err)
					break
				}
				delivered = m.QueueOffset + 1
			}
			if err := s.save(level, delivered, nil); err != nil {
				s.b.log.Error("persisting delay progress failed", "level", level, "err", err)
			}
			if delivered < f.To && !wait(100*time.Millisecond) {
				return
			}
			continue
		}
		// The head is not due yet (or its delivery failed): sleep until it is.
		next := time.Until(time.UnixMilli(msgs[0].StoreTimestamp).Add(delay))
		if !wait(max(next, time.Millisecond)) {
			return
		}
	}
}

// deliver re-appends a due message to its real topic and queue.
func (s *scheduler) deliver(m *message.Message) error {
	return s.b.deliverToRealTopic(m, message.PropertyDelayLevel)
}

// deliverToRealTopic re-appends a message held in a system topic (scheduled or timer) to the topic
// and queue in its REAL_TOPIC and REAL_QID, without the named properties. A message the store refuses
// or without a real topic is dropped with a log line (retrying cannot help); other failures are
// returned so the caller retries.
func (b *Broker) deliverToRealTopic(m *message.Message, drop ...string) error {
	realTopic := m.Property(message.PropertyRealTopic)
	realQID, err := strconv.Atoi(m.Property(message.PropertyRealQueueID))
	if realTopic == "" || err != nil {
		b.log.Warn("dropping a message without REAL_TOPIC/REAL_QID", "topic", m.Topic, "offset", m.QueueOffset)
		return nil
	}
	out := &message.Message{
		Topic: realTopic, QueueID: int32(realQID), Flag: m.Flag, Body: m.Body, Properties: m.Properties,
		SysFlag: m.SysFlag, BornTimestamp: m.BornTimestamp, BornHost: m.BornHost,
		ReconsumeTimes: m.ReconsumeTimes, PreparedTransactionOffset: m.PreparedTransactionOffset,
	}
	for _, p := range drop {
		delete(out.Properties, p)
	}
	if b.topics.get(realTopic) == nil && strings.HasPrefix(realTopic, retryPrefix) {
		if _, err := b.ensureTopic(realTopic, 1, body.PermRead|body.PermWrite); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := b.store.Append(ctx, out)
	switch res.Status {
	case store.PutOK, store.FlushDiskTimeout:
		return nil
	case store.MessageIllegal, store.PropertiesSizeExceeded:
		b.log.Warn("dropping a due message the store refuses", "topic", realTopic, "err", err)
		return nil
	}
	return err
}
