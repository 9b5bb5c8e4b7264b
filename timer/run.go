package timer

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Run delivers due timers until ctx ends or the Wheel is closed, and
// returns ctx's error, ErrClosed, or the sticky error. Only one Run may be
// active (ErrRunning).
//
// deliver is called from Run's goroutine with batches of due timers in
// due order (DeliverAt, then order of Add), each no earlier than its
// DeliverAt. The slice is valid only during the call. A nil return
// acknowledges the batch; an error keeps it, and it is offered again
// after Options.RetryInterval. Delivery is at least once: timers
// acknowledged less than a checkpoint (Options.FlushInterval) before a
// crash, and timers of a slot being delivered, are delivered again after
// Open.
func (w *Wheel) Run(ctx context.Context, deliver func(batch []Entry) error) error {
	w.mu.Lock()
	if err := w.usableLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	if w.mu.running {
		w.mu.Unlock()
		return ErrRunning
	}
	w.mu.running = true
	w.runWG.Add(1)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.mu.running = false
		w.mu.Unlock()
		w.runWG.Done()
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch []loaded
	var out []Entry
	retryAt := int64(math.MinInt64)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.done:
			return ErrClosed
		default:
		}
		now := time.Now().UnixMilli()
		w.mu.Lock()
		if w.mu.err != nil {
			defer w.mu.Unlock()
			return w.mu.err
		}
		if err := w.loadLocked(now); err != nil {
			w.mu.Unlock()
			return err
		}
		batch = batch[:0]
		if now >= retryAt {
			for len(w.mu.heap) > 0 && w.mu.heap[0].DeliverAt <= now && len(batch) < w.opts.MaxBatch {
				batch = append(batch, w.popLocked())
			}
		}
		next := w.nextWakeLocked()
		if now < retryAt {
			next = retryAt
		}
		w.mu.nextWake = next
		w.mu.Unlock()

		if len(batch) > 0 {
			out = out[:0]
			for _, l := range batch {
				out = append(out, l.Entry)
			}
			err := deliver(out)
			w.mu.Lock()
			if err != nil {
				for _, l := range batch {
					w.pushLocked(l)
				}
				retryAt = time.Now().Add(w.opts.RetryInterval).UnixMilli()
			} else {
				w.ackLocked(batch)
			}
			w.mu.Unlock()
			continue
		}
		d := time.Duration(math.MaxInt64)
		if next != math.MaxInt64 {
			d = time.Duration(next-now) * time.Millisecond
		}
		timer.Reset(max(d, 0))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.done:
			return ErrClosed
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// nextWakeLocked returns the ms at which the scheduler must look again:
// the earliest read timer, or the lookahead before the next slot that may
// hold timers.
func (w *Wheel) nextWakeLocked() int64 {
	next := int64(math.MaxInt64)
	if len(w.mu.heap) > 0 {
		next = w.mu.heap[0].DeliverAt
	}
	if s, ok := w.nextSetLocked(w.mu.loadedEnd, w.mu.cursor+w.nslots-1); ok {
		next = min(next, s*w.slotMs-w.opts.Lookahead.Milliseconds())
	}
	return next
}

// loadLocked reads every slot starting before now+Lookahead (and within
// the ring) into the heap. A timer found in a slot before its own (parked
// there beyond the ring) is re-added to a later slot.
func (w *Wheel) loadLocked(now int64) error {
	limit := min(w.slotOf(now+w.opts.Lookahead.Milliseconds()), w.mu.cursor+w.nslots-1)
	for w.mu.loadedEnd <= limit {
		a, ok := w.nextSetLocked(w.mu.loadedEnd, limit)
		if !ok {
			w.mu.loadedEnd = limit + 1
			break
		}
		if err := w.loadSlotLocked(a, true); err != nil {
			return err
		}
	}
	w.advanceCursorLocked()
	return nil
}

// loadSlotLocked reads slot a, the first unread one, into the heap. With
// yield it lets go of w.mu every yieldEvery entries, so Adds do not wait
// for the whole chain of a large slot.
func (w *Wheel) loadSlotLocked(a int64, yield bool) error {
	pos := w.ring(a)
	w.mu.loadedEnd = a + 1
	if w.mu.bits[pos/64]&(1<<(pos%64)) == 0 {
		return nil
	}
	rec, err := w.readRecordLocked(pos)
	if err != nil {
		return err
	}
	if rec.slot != a {
		return nil // the position holds a later turn of the ring
	}
	w.mu.bits[pos/64] &^= 1 << (pos % 64)
	return w.readSlotLocked(a, rec, yield)
}

const yieldEvery = 512

// readSlotLocked walks the chain of slot a (already marked read: Adds to
// it go straight to the heap) into the heap. While it walks, a
// placeholder count in inflight keeps the cursor, and so the checkpoint
// and segment deletion, from passing a; this is what makes yielding w.mu
// safe.
func (w *Wheel) readSlotLocked(a int64, rec slotRecord, yield bool) error {
	w.mu.inflight[a]++
	defer func() {
		if c := w.mu.inflight[a] - 1; c > 0 {
			w.mu.inflight[a] = c
		} else {
			delete(w.mu.inflight, a)
		}
	}()
	var e logEntry
	idx := rec.head - 1
	for n := rec.count; n > 0; n-- {
		if yield && n%yieldEvery == 0 && n != rec.count {
			w.mu.Unlock()
			w.mu.Lock()
			if w.mu.err != nil {
				return w.mu.err
			}
		}
		if err := w.readEntryLocked(idx, &e); err != nil {
			return err
		}
		if e.slot != a || e.seq != n {
			return w.failLocked(fmt.Errorf("%w: log entry %d of slot %d says slot %d, #%d (want #%d)", ErrCorrupt, idx, a, e.slot, e.seq, n))
		}
		ent := Entry{DeliverAt: e.deliverAt, Ref: e.ref, Size: e.size}
		if w.slotOf(e.deliverAt) > a && w.mu.cursor+w.nslots-1 > a {
			if _, err := w.addLocked(ent); err != nil { // a roll
				return err
			}
			w.mu.rolled++
		} else {
			w.pushLocked(loaded{Entry: ent, home: a, idx: idx})
			w.mu.inflight[a]++
		}
		idx = e.prev - 1
	}
	return nil
}

// ackLocked forgets acknowledged timers and moves the cursor.
func (w *Wheel) ackLocked(batch []loaded) {
	for _, l := range batch {
		if c := w.mu.inflight[l.home] - 1; c > 0 {
			w.mu.inflight[l.home] = c
		} else {
			delete(w.mu.inflight, l.home)
		}
	}
	w.mu.pending -= int64(len(batch))
	w.mu.delivered += int64(len(batch))
	w.advanceCursorLocked()
}

// advanceCursorLocked sets the cursor to the lowest slot with an
// unacknowledged read timer, or to the first unread slot.
func (w *Wheel) advanceCursorLocked() {
	c := w.mu.loadedEnd
	for s := range w.mu.inflight {
		c = min(c, s)
	}
	w.mu.cursor = max(w.mu.cursor, c)
}

func less(a, b *loaded) bool {
	return a.DeliverAt < b.DeliverAt || (a.DeliverAt == b.DeliverAt && a.idx < b.idx)
}

func (w *Wheel) pushLocked(l loaded) {
	h := append(w.mu.heap, l)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(&h[i], &h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	w.mu.heap = h
}

func (w *Wheel) popLocked() loaded {
	h := w.mu.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && less(&h[l], &h[m]) {
			m = l
		}
		if r < n && less(&h[r], &h[m]) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	if n == 0 && cap(h) > 1024 {
		h = nil // give a burst's memory back
	}
	w.mu.heap = h
	return top
}
