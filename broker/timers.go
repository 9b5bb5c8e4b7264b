package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/remoting"
	"github.com/apogeemq/apogee/remoting/body"
	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/timer"
)

// Timer messages (RocketMQ 5): a message whose TIMER_DELIVER_MS / TIMER_DELAY_SEC / TIMER_DELAY_MS
// property puts its delivery in the future is stored in rmq_sys_wheel_timer, queue 0, with its real
// topic and queue in REAL_TOPIC / REAL_QID and the due time in TIMER_OUT_MS. The commit log is the
// source of truth; the timing wheel (package timer) is an index filled from that queue in order by one
// goroutine, with the queue offset as the timer's reference, so after a crash filling resumes at the
// wheel's MaxRef()+1. When a timer fires, the message is re-appended to its real topic.
//
// The wheel delivers at least once; delivery is made once the way delay levels are: the batch being
// delivered is recorded in config/timerInFlight.json first, and after a crash the copies it already
// produced are found in the commit log and skipped.
type timers struct {
	b        *Broker
	wheel    *timer.Wheel
	maxDelay time.Duration
	path     string         // in-flight record
	wake     chan struct{}  // cap 1: the timer queue grew
	skip     map[int64]bool // refs delivered before a crash; touched only by the Run goroutine
}

type timerInFlight struct {
	Refs    []int64 `json:"refs"`
	LogFrom int64   `json:"logFrom"`
}

func openTimers(b *Broker, root string) (*timers, error) {
	o := b.opts
	w, err := timer.Open(filepath.Join(root, "timerwheel"), &timer.Options{SlotDuration: o.TimerPrecision, MaxDelay: o.TimerMaxDelay})
	if err != nil {
		return nil, fmt.Errorf("broker: open timer wheel: %w", err)
	}
	return &timers{b: b, wheel: w, maxDelay: o.TimerMaxDelay, path: filepath.Join(root, "config", "timerInFlight.json"),
		wake: make(chan struct{}, 1), skip: make(map[int64]bool)}, nil
}

// recover finds the copies delivered by a batch that was in flight at a crash. The store must be open.
func (t *timers) recover() error {
	var f timerInFlight
	if err := loadJSON(t.path, &f); err != nil || len(f.Refs) == 0 {
		return err
	}
	var msgs []*message.Message
	for _, ref := range f.Refs {
		if ms, err := t.b.readMessages(timer.Topic, 0, ref, 1); err == nil && len(ms) == 1 && ms[0].QueueOffset == ref {
			msgs = append(msgs, ms[0])
		}
	}
	delivered, err := t.b.deliveredCopies(f.LogFrom, msgs)
	if err != nil {
		return err
	}
	t.skip = delivered
	t.b.log.Info("timer messages recovered after an unclean stop", "in_flight", len(f.Refs), "already_delivered", len(delivered))
	return nil
}

// divert turns a timer message into its stored form. It reports whether the message is a timer
// message; an illegal time is answered with MESSAGE_ILLEGAL.
func (b *Broker) divertTimer(msgs []*message.Message) (bool, *remoting.Command) {
	m := msgs[0]
	at, isTimer, err := timer.DeliverTime(m.Property, time.Now, b.timers.maxDelay)
	if err != nil {
		return false, b.sendError(code.MessageIllegal, "timer message: %v (the limit is %s ahead, timerMaxDelaySec)", err, b.timers.maxDelay)
	}
	if !isTimer {
		return false, nil
	}
	if len(msgs) > 1 {
		return false, b.sendError(code.MessageIllegal, "timer messages cannot be batched")
	}
	if _, err := b.ensureTopic(timer.Topic, 1, body.PermRead|body.PermWrite); err != nil {
		return false, b.sendError(code.SystemError, "%v", err)
	}
	m.SetProperty(timer.PropertyOutMs, strconv.FormatInt(at.UnixMilli(), 10))
	m.SetProperty(message.PropertyRealTopic, m.Topic)
	m.SetProperty(message.PropertyRealQueueID, strconv.Itoa(int(m.QueueID)))
	m.DeleteProperty(message.PropertyDelayLevel)
	m.Topic, m.QueueID = timer.Topic, 0
	return true, nil
}

// arrived wakes the enqueue loop.
func (t *timers) arrived() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// enqueueLoop adds the timer queue's messages to the wheel in queue order.
func (t *timers) enqueueLoop() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	ctx, cancel := t.b.stopContext()
	defer cancel()
	for {
		if err := t.enqueue(ctx); err != nil && ctx.Err() == nil {
			t.b.log.Error("adding timer messages to the wheel failed", "err", err)
		}
		select {
		case <-t.b.stop:
			return
		case <-t.wake:
		case <-tick.C:
		}
	}
}

func (t *timers) enqueue(ctx context.Context) error {
	next := t.wheel.MaxRef()
	if next == math.MinInt64 {
		next = t.b.store.MinOffset(timer.Topic, 0)
	} else {
		next++
	}
	for next < t.b.store.MaxOffset(timer.Topic, 0) {
		msgs, err := t.b.readMessages(timer.Topic, 0, next, 32)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			next++ // unreadable (removed) entry
			continue
		}
		for _, m := range msgs {
			due, err := strconv.ParseInt(m.Property(timer.PropertyOutMs), 10, 64)
			if err != nil {
				due = m.StoreTimestamp // no due time: deliver at once
			}
			err = t.wheel.Add(ctx, time.UnixMilli(due), m.QueueOffset, m.StoreSize)
			if errors.Is(err, timer.ErrTooFar) {
				err = t.wheel.Add(ctx, time.Now().Add(t.maxDelay-time.Minute), m.QueueOffset, m.StoreSize)
			}
			if err != nil {
				return err
			}
			next = m.QueueOffset + 1
		}
	}
	return nil
}

// runLoop delivers due timers until the broker stops.
func (t *timers) runLoop() {
	ctx, cancel := t.b.stopContext()
	defer cancel()
	if err := t.wheel.Run(ctx, t.deliver); err != nil && ctx.Err() == nil {
		t.b.log.Error("timer delivery stopped", "err", err)
	}
}

// deliver re-appends each due message to its real topic. A message the store no longer has
// (retention) is skipped; a failed append fails the batch, which the wheel retries.
func (t *timers) deliver(batch []timer.Entry) error {
	f := timerInFlight{LogFrom: t.b.store.MaxCommitLogOffset()}
	for _, e := range batch {
		f.Refs = append(f.Refs, e.Ref)
	}
	if err := saveJSON(t.path, f); err != nil {
		return err
	}
	for _, e := range batch {
		if t.skip[e.Ref] {
			delete(t.skip, e.Ref)
			continue
		}
		msgs, err := t.b.readMessages(timer.Topic, 0, e.Ref, 1)
		if err != nil {
			return err
		}
		if len(msgs) == 0 || msgs[0].QueueOffset != e.Ref {
			t.b.log.Warn("timer message no longer stored; skipped", "offset", e.Ref)
			continue
		}
		if err := t.b.deliverToRealTopic(msgs[0], timer.PropertyDeliverMs, timer.PropertyDelaySec, timer.PropertyDelayMs); err != nil {
			return err
		}
	}
	return saveJSON(t.path, timerInFlight{})
}

// stopContext returns a context cancelled when the broker stops.
func (b *Broker) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-b.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}
