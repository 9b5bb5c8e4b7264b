package timer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"testing/synctest"
	"time"
)

// copyDir copies the files of a wheel directory: the image a crash at
// this instant leaves (every write so far is in the page cache).
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	for _, sub := range []string{"", "log"} {
		os.MkdirAll(filepath.Join(to, sub), 0o755)
		ents, err := os.ReadDir(filepath.Join(from, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(from, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(to, sub, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x5a
	f.WriteAt(b, off)
}

// TestRecoverTornTail cuts the log at a damaged entry past the checkpoint,
// rebuilds slot records that pointed beyond it, and never lets the cut
// entries come back; a damaged slot record is rebuilt from the log.
func TestRecoverTornTail(t *testing.T) {
	for _, damage := range []string{"entry", "record"} {
		t.Run(damage, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testRecoverTornTail(t, damage) })
		})
	}
}

func testRecoverTornTail(t *testing.T, damage string) {
	o := testOptions()
	o.FlushInterval = time.Hour // only Sync makes anything durable
	dir, crashed := t.TempDir(), t.TempDir()
	w := openT(t, dir, o)
	start := time.Now()
	add := func(w *Wheel, from, to int) {
		for i := from; i < to; i++ {
			due := start.Add(time.Duration(i%50) * 100 * time.Millisecond)
			if err := w.Add(context.Background(), due, int64(i), int32(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(w, 0, 300) // segments of 256 entries: the tail crosses into the second
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	add(w, 300, 310)
	copyDir(t, dir, crashed)
	w.Close()

	want := 310
	switch damage {
	case "entry": // entry 305 torn: 305..309 are lost (they were never synced)
		flipByte(t, filepath.Join(crashed, "log", "00000000000000000256"), headerSize+(305-256)*entrySize+3)
		want = 305
	case "record": // a slot record the replay past the checkpoint does not rewrite
		pos := (start.UnixMilli()/100 + 20) % int64(o.Slots)
		flipByte(t, filepath.Join(crashed, "wheel"), headerSize+pos*recordSize+9)
	}
	w = openT(t, crashed, o)
	if got := w.MaxRef(); got != int64(want-1) {
		t.Fatalf("MaxRef after recovery %d, want %d", got, want-1)
	}
	add(w, 1000, 1010) // overwrites the cut tail
	w.Close()
	w = openT(t, crashed, o) // and survives another unclean-looking open
	if got := w.MaxRef(); got != 1009 {
		t.Fatalf("MaxRef after reopen %d, want 1009", got)
	}
	r := startRun(w, nil)
	time.Sleep(10 * time.Second)
	r.stop()
	<-r.done
	var got []int
	for _, d := range r.deliveries() {
		if d.Size != int32(d.Ref) {
			t.Fatalf("delivered %+v: size does not match", d.Entry)
		}
		got = append(got, int(d.Ref))
	}
	sort.Ints(got)
	got = slices.Compact(got)
	var exp []int
	for i := range want {
		exp = append(exp, i)
	}
	for i := 1000; i < 1010; i++ {
		exp = append(exp, i)
	}
	if !slices.Equal(got, exp) {
		t.Fatalf("delivered %d distinct timers %v..., want %d", len(got), got[:min(len(got), 5)], len(exp))
	}
}

// TestLatency measures delivery against the real clock: timers must come
// no earlier than due and, on a loaded machine, nearly all within 100 ms.
func TestLatency(t *testing.T) {
	o := &Options{Slots: 3600, FlushInterval: 100 * time.Millisecond}
	w := openT(t, t.TempDir(), o)
	const n = 300
	lat := make(chan time.Duration, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx, func(batch []Entry) error {
		now := time.Now()
		for _, e := range batch {
			lat <- now.Sub(e.Due())
		}
		return nil
	})
	start := time.Now()
	for i := range n {
		due := start.Add(100*time.Millisecond + time.Duration(i)*5*time.Millisecond)
		if err := w.Add(context.Background(), due, int64(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	var all []time.Duration
	timeout := time.After(30 * time.Second)
	for len(all) < n {
		select {
		case d := <-lat:
			if d < -time.Millisecond { // DeliverAt is truncated to the ms
				t.Fatalf("delivered %v early", -d)
			}
			all = append(all, d)
		case <-timeout:
			t.Fatalf("only %d of %d delivered", len(all), n)
		}
	}
	slices.Sort(all)
	p50, p90, p99 := all[n/2], all[n*9/10], all[n*99/100]
	t.Logf("latency after due: p50 %v, p90 %v, p99 %v, max %v", p50, p90, p99, all[n-1])
	if p90 >= 100*time.Millisecond {
		t.Fatalf("p90 latency %v, want < 100ms", p90)
	}
}

// TestLostCheckpoint deletes the checkpoint of a wheel whose finished
// segments were deleted: Open rebuilds everything from the log, starts
// after the last slot that lost entries with a deleted segment, and every
// timer not delivered before is delivered.
func TestLostCheckpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		w := openT(t, dir, testOptions())
		start := time.Now()
		const n = 2000
		for i := range n {
			if err := w.Add(context.Background(), start.Add(time.Duration(i)*10*time.Millisecond), int64(i), 0); err != nil {
				t.Fatal(err)
			}
		}
		r := startRun(w, nil)
		time.Sleep(12 * time.Second)
		r.stop()
		<-r.done
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		delivered := make(map[int64]bool)
		for _, d := range r.deliveries() {
			delivered[d.Ref] = true
		}
		if err := os.Remove(filepath.Join(dir, "checkpoint")); err != nil {
			t.Fatal(err)
		}
		w = openT(t, dir, testOptions())
		r = startRun(w, nil)
		time.Sleep(10 * time.Second)
		r.stop()
		if err := <-r.done; err != context.Canceled {
			t.Fatalf("Run: %v", err)
		}
		for _, d := range r.deliveries() {
			delivered[d.Ref] = true
		}
		if len(delivered) != n {
			t.Fatalf("%d of %d timers delivered", len(delivered), n)
		}
	})
}
