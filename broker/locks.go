package broker

import (
	"sync"
	"time"

	"github.com/apogeemq/apogee/remoting/body"
)

// lockTTL is how long a queue lock lives without renewal (rocketmq.broker.rebalance.lockMaxLiveTime).
const lockTTL = 60 * time.Second

type lockEntry struct {
	clientID   string
	lastUpdate time.Time
}

// queueLocks are the per-group queue locks of orderly consumers (RocketMQ's RebalanceLockManager): a
// queue can be taken when free, when already held by the same client (which renews it), or when its
// holder has not renewed it for lockTTL.
type queueLocks struct {
	mu    sync.Mutex
	locks map[string]map[body.MessageQueue]*lockEntry // group → queue → holder
}

func newQueueLocks() *queueLocks {
	return &queueLocks{locks: make(map[string]map[body.MessageQueue]*lockEntry)}
}

// lock takes or renews the queues it can for clientID and returns the queues the client now holds.
func (l *queueLocks) lock(group, clientID string, mqs []*body.MessageQueue, now time.Time) []*body.MessageQueue {
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.locks[group]
	if held == nil {
		held = make(map[body.MessageQueue]*lockEntry)
		l.locks[group] = held
	}
	locked := make([]*body.MessageQueue, 0, len(mqs))
	for _, mq := range mqs {
		if mq == nil {
			continue
		}
		e := held[*mq]
		if e == nil || e.clientID == clientID || now.Sub(e.lastUpdate) > lockTTL {
			held[*mq] = &lockEntry{clientID: clientID, lastUpdate: now}
			locked = append(locked, mq)
		}
	}
	return locked
}

// unlock releases the queues held by clientID; locks of other clients are left alone.
func (l *queueLocks) unlock(group, clientID string, mqs []*body.MessageQueue) {
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.locks[group]
	for _, mq := range mqs {
		if mq == nil {
			continue
		}
		if e := held[*mq]; e != nil && e.clientID == clientID {
			delete(held, *mq)
		}
	}
	if len(held) == 0 {
		delete(l.locks, group)
	}
}

// holder returns the client holding a live lock on mq, or "".
func (l *queueLocks) holder(group string, mq body.MessageQueue, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.locks[group][mq]; e != nil && now.Sub(e.lastUpdate) <= lockTTL {
		return e.clientID
	}
	return ""
}
