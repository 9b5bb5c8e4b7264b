package timer

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apogeemq/apogee/store/vfs"
	"github.com/apogeemq/apogee/store/vfs/errorfs"
)

func testOptions() *Options {
	return &Options{
		SlotDuration:      100 * time.Millisecond,
		Slots:             64, // a 6.4 s ring: longer timers roll
		MaxDelay:          time.Minute,
		EntriesPerSegment: 256,
		FlushInterval:     50 * time.Millisecond,
		Lookahead:         50 * time.Millisecond,
		RetryInterval:     200 * time.Millisecond,
	}
}

func openT(t *testing.T, dir string, o *Options) *Wheel {
	t.Helper()
	w, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { w.Close() }) // after a failure; ErrClosed otherwise
	return w
}

// delivery is one delivered timer and the (virtual) instant it arrived.
type delivery struct {
	Entry
	at time.Time
}

// runner runs w.Run in a goroutine and collects deliveries.
type runner struct {
	mu   sync.Mutex
	got  []delivery
	fail func(batch []Entry) error
	stop context.CancelFunc
	done chan error
}

func startRun(w *Wheel, fail func(batch []Entry) error) *runner {
	r := &runner{done: make(chan error, 1), fail: fail}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() {
		r.done <- w.Run(ctx, func(batch []Entry) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.fail != nil {
				if err := r.fail(batch); err != nil {
					return err
				}
			}
			now := time.Now()
			for _, e := range batch {
				r.got = append(r.got, delivery{e, now})
			}
			return nil
		})
	}()
	return r
}

func (r *runner) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func TestAddDeliverInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := openT(t, t.TempDir(), testOptions())
		r := startRun(w, nil)
		start := time.Now()
		dues := []time.Duration{3 * time.Second, 150 * time.Millisecond, -time.Second, 20 * time.Second, 3 * time.Second, 0}
		for i, d := range dues {
			if err := w.Add(context.Background(), start.Add(d), int64(i), int32(i*10)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		got := r.deliveries()
		want := []int64{2, 5, 1, 0, 4, 3}
		if len(got) != len(want) {
			t.Fatalf("got %d deliveries, want %d: %v", len(got), len(want), got)
		}
		for i, d := range got {
			if d.Ref != want[i] || d.Size != int32(d.Ref*10) {
				t.Errorf("delivery %d: ref %d size %d, want ref %d", i, d.Ref, d.Size, want[i])
			}
			due := start.Add(max(dues[d.Ref], 0))
			if late := d.at.Sub(due); late < 0 || late > time.Millisecond {
				t.Errorf("ref %d delivered %v after due", d.Ref, late)
			}
		}
		if s := w.Stats(); s.Pending != 0 || s.Delivered != 6 || s.Rolled == 0 {
			t.Errorf("stats %+v: want 0 pending, 6 delivered, a roll", s)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-r.done; !errors.Is(err, ErrClosed) {
			t.Fatalf("Run returned %v, want ErrClosed", err)
		}
	})
}

func TestTooFarAndClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := openT(t, t.TempDir(), testOptions())
		if err := w.Add(context.Background(), time.Now().Add(2*time.Minute), 1, 1); !errors.Is(err, ErrTooFar) {
			t.Fatalf("Add beyond MaxDelay: %v", err)
		}
		w.Close()
		if err := w.Add(context.Background(), time.Now(), 1, 1); !errors.Is(err, ErrClosed) {
			t.Fatalf("Add after Close: %v", err)
		}
		if err := w.Run(context.Background(), nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Run after Close: %v", err)
		}
	})
}

func TestOptionsChanged(t *testing.T) {
	dir := t.TempDir()
	w := openT(t, dir, testOptions())
	w.Close()
	o := testOptions()
	o.Slots = 100
	if _, err := Open(dir, o); !errors.Is(err, ErrOptionsChanged) {
		t.Fatalf("Open with other Slots: %v", err)
	}
}

// TestRestart closes and reopens the wheel while timers are pending, with
// deliveries failing for a while; nothing is lost and nothing is early.
func TestRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		start := time.Now()
		w := openT(t, dir, testOptions())
		rng := rand.New(rand.NewPCG(1, 2))
		due := make(map[int64]time.Time)
		for i := range 2000 {
			d := start.Add(time.Duration(rng.IntN(20_000)-2000) * time.Millisecond)
			due[int64(i)] = d
			if err := w.Add(context.Background(), d, int64(i), 0); err != nil {
				t.Fatal(err)
			}
		}
		seen := make(map[int64]bool)
		for round := range 4 {
			var fail func([]Entry) error
			if round == 1 {
				fail = func([]Entry) error { return errors.New("refused") }
			}
			r := startRun(w, fail)
			time.Sleep(3 * time.Second)
			r.stop()
			<-r.done
			for _, d := range r.deliveries() {
				if d.at.Before(due[d.Ref]) {
					t.Fatalf("ref %d delivered %v early", d.Ref, due[d.Ref].Sub(d.at))
				}
				seen[d.Ref] = true
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w = openT(t, dir, testOptions())
		}
		r := startRun(w, nil)
		time.Sleep(20 * time.Second)
		r.stop()
		<-r.done
		for _, d := range r.deliveries() {
			seen[d.Ref] = true
		}
		for ref := range due {
			if !seen[ref] {
				t.Errorf("ref %d (due %v) never delivered", ref, due[ref].Sub(start))
			}
		}
		if s := w.Stats(); s.Pending != 0 {
			t.Errorf("pending %d after all due", s.Pending)
		}
		w.Close()
	})
}

// TestStickyError fails an fsync: Sync, Add and Close return that error
// from then on, and a reopen on a healthy disk finds every timer whose
// Add returned (they are in the page cache).
func TestStickyError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var faults errorfs.Toggle
		o := testOptions()
		o.FS = errorfs.Wrap(vfs.Default, &faults)
		w := openT(t, dir, o)
		start := time.Now()
		for i := range 20 {
			if err := w.Add(context.Background(), start.Add(time.Duration(i)*time.Second), int64(i), 0); err != nil {
				t.Fatal(err)
			}
		}
		faults.Fail(errorfs.OpSync, errorfs.ErrInjected)
		err := w.Sync()
		if !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("Sync: %v, want the injected error", err)
		}
		if err2 := w.Add(context.Background(), start, 99, 0); err2 == nil || err2.Error() != err.Error() {
			t.Fatalf("Add after a failed fsync: %v, want %v", err2, err)
		}
		if err2 := w.Close(); err2 == nil || err2.Error() != err.Error() {
			t.Fatalf("Close: %v, want %v", err2, err)
		}
		w = openT(t, dir, testOptions())
		r := startRun(w, nil)
		time.Sleep(25 * time.Second)
		r.stop()
		<-r.done
		if got := len(r.deliveries()); got != 20 {
			t.Fatalf("%d timers delivered after reopen, want 20", got)
		}
		w.Close()
	})
}

// TestLargeSlot reads a slot of several thousand timers (Run lets go of
// the lock while it walks the chain) while other goroutines keep adding
// to the same, already read, slot: each timer is delivered once, on time.
func TestLargeSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := openT(t, t.TempDir(), testOptions())
		start := time.Now()
		due := start.Add(time.Second)
		const n, extra = 3000, 4 * 500
		for i := range n {
			if err := w.Add(context.Background(), due.Add(time.Duration(i%90)*time.Millisecond), int64(i), 0); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second - 40*time.Millisecond) // within the lookahead: Run reads the slot at once
		r := startRun(w, nil)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range extra / 4 {
					ref := int64(n + g*extra/4 + i)
					if err := w.Add(context.Background(), due.Add(time.Duration(i%90)*time.Millisecond), ref, 0); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		time.Sleep(2 * time.Second)
		r.stop()
		<-r.done
		seen := make(map[int64]bool)
		for _, d := range r.deliveries() {
			if seen[d.Ref] {
				t.Fatalf("ref %d delivered twice", d.Ref)
			}
			seen[d.Ref] = true
			if late := d.at.Sub(d.Due()); late < 0 || late > time.Millisecond {
				t.Fatalf("ref %d delivered %v after due", d.Ref, late)
			}
		}
		if len(seen) != n+extra {
			t.Fatalf("%d delivered, want %d", len(seen), n+extra)
		}
	})
}
