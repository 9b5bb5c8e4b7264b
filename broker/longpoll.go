package broker

import (
	"sync"
)

// pullWaiters parks long-polling pulls per queue and wakes them when the store dispatches new
// messages to that queue. A waiter is a channel with room for one wake-up, so a notification between
// a pull's empty read and its wait is never lost: the pull registers before it reads again.
type pullWaiters struct {
	mu      sync.Mutex
	waiters map[queueRef]map[chan struct{}]struct{}
}

type queueRef struct {
	topic   string
	queueID int32
}

func newPullWaiters() *pullWaiters {
	return &pullWaiters{waiters: make(map[queueRef]map[chan struct{}]struct{})}
}

// add registers a waiter for a queue; the caller must remove it.
func (w *pullWaiters) add(topic string, queueID int32) chan struct{} {
	ch := make(chan struct{}, 1)
	key := queueRef{topic, queueID}
	w.mu.Lock()
	set := w.waiters[key]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		w.waiters[key] = set
	}
	set[ch] = struct{}{}
	w.mu.Unlock()
	return ch
}

func (w *pullWaiters) remove(topic string, queueID int32, ch chan struct{}) {
	key := queueRef{topic, queueID}
	w.mu.Lock()
	if set := w.waiters[key]; set != nil {
		delete(set, ch)
		if len(set) == 0 {
			delete(w.waiters, key)
		}
	}
	w.mu.Unlock()
}

// wake signals every waiter of a queue. It never blocks (the store calls it from its dispatcher).
func (w *pullWaiters) wake(topic string, queueID int32) {
	w.mu.Lock()
	for ch := range w.waiters[queueRef{topic, queueID}] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}
