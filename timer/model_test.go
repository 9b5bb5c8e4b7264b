package timer

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apogeemq/apogee/store/vfs"
	"github.com/apogeemq/apogee/store/vfs/errorfs"
)

// TestModel checks the wheel against a naive model (a map of pending
// timers) under random adds across and beyond the ring (rolls), in the
// past and far ahead, while Run delivers, with clean restarts and failing
// deliveries: nothing is lost, nothing is early, a run without failures
// delivers each timer within 1 ms of max(due, added, run start) and so in
// due order, and a timer is delivered twice only across a restart.
//
// The clock is synctest's: virtual time, exact and independent of load.
func TestModel(t *testing.T) {
	for seed := range uint64(4) {
		synctest.Test(t, func(t *testing.T) {
			o := testOptions()
			if seed%2 == 1 { // the pread/pwrite path for slot records
				var unmapped errorfs.Toggle
				unmapped.Fail(errorfs.OpMap, errorfs.ErrInjected)
				o.FS = errorfs.Wrap(vfs.Default, &unmapped)
			}
			testModel(t, seed, o)
		})
	}
}

func testModel(t *testing.T, seed uint64, o *Options) {
	rng := rand.New(rand.NewPCG(seed, 7))
	dir := t.TempDir()
	type timerModel struct {
		due, added time.Time
		size       int32
	}
	model := make(map[int64]timerModel)
	delivered := make(map[int64]int)
	var next int64
	for round := range 6 {
		w := openT(t, dir, o)
		runStart := time.Now()
		var fail func([]Entry) error
		failing := round%3 == 2
		if failing {
			until := runStart.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			fail = func([]Entry) error {
				if time.Now().Before(until) {
					return errors.New("refused")
				}
				return nil
			}
		}
		r := startRun(w, fail)
		for range 20 {
			time.Sleep(time.Duration(rng.IntN(700)) * time.Millisecond)
			for range rng.IntN(60) {
				now := time.Now()
				var due time.Time
				switch rng.IntN(10) {
				case 0:
					due = now.Add(-time.Duration(rng.IntN(5000)) * time.Millisecond) // past
				case 1:
					due = now.Add(time.Duration(rng.IntN(59_000)) * time.Millisecond) // far: rolls
				default:
					due = now.Add(time.Duration(rng.IntN(8000)) * time.Millisecond)
				}
				due = due.Truncate(time.Millisecond)
				m := timerModel{due: due, added: now, size: int32(rng.IntN(1 << 20))}
				if err := w.Add(context.Background(), due, next, m.size); err != nil {
					t.Fatal(err)
				}
				model[next] = m
				next++
			}
		}
		time.Sleep(time.Duration(rng.IntN(5000)) * time.Millisecond)
		r.stop()
		<-r.done
		perRun := make(map[int64]int)
		for _, d := range r.deliveries() {
			m, ok := model[d.Ref]
			if !ok || d.DeliverAt != m.due.UnixMilli() || d.Size != m.size {
				t.Fatalf("seed %d: delivered %+v, which was not added", seed, d.Entry)
			}
			if d.at.Before(m.due) {
				t.Fatalf("seed %d: ref %d delivered %v early", seed, d.Ref, m.due.Sub(d.at))
			}
			earliest := m.due
			if m.added.After(earliest) {
				earliest = m.added
			}
			if runStart.After(earliest) {
				earliest = runStart
			}
			if late := d.at.Sub(earliest); !failing && late > time.Millisecond {
				t.Fatalf("seed %d: ref %d delivered %v late", seed, d.Ref, late)
			}
			// A timer rolled before a restart may be rolled again after it
			// (two copies); one added in this run is delivered once.
			if perRun[d.Ref]++; perRun[d.Ref] > 1 && !m.added.Before(runStart) {
				t.Fatalf("seed %d round %d: ref %d (due %v added %v) delivered twice in one run", seed, round, d.Ref, m.due.Sub(runStart), m.added.Sub(runStart))
			}
			delivered[d.Ref]++
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Let everything fall due.
	w := openT(t, dir, o)
	r := startRun(w, nil)
	time.Sleep(time.Minute)
	r.stop()
	<-r.done
	for _, d := range r.deliveries() {
		delivered[d.Ref]++
	}
	dups := 0
	for ref, m := range model {
		switch n := delivered[ref]; {
		case n == 0:
			t.Errorf("seed %d: ref %d (due %v) lost", seed, ref, m.due)
		case n > 1:
			dups++
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	s := w.Stats()
	if s.Segments > 1 { // only the one being written: finished segments are deleted
		t.Errorf("seed %d: %d segments kept after everything was delivered", seed, s.Segments)
	}
	if s.Pending != 0 || s.Loaded != 0 {
		t.Errorf("seed %d: stats %+v after everything fell due", seed, s)
	}
	t.Logf("seed %d: %d timers, %d delivered more than once (restarts), %d rolls in the last run", seed, len(model), dups, s.Rolled)
	w.Close()
}
