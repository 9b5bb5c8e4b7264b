package timer

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// BenchmarkAdd measures one Add with default options (1 s slots over 3
// days + 1 h, page-cache durability), due times spread over 3 days.
func BenchmarkAdd(b *testing.B) {
	w, err := Open(b.TempDir(), &Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	now := time.Now()
	ctx := context.Background()
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		due := now.Add(time.Duration(rng.Int64N(int64(72 * time.Hour))))
		if err := w.Add(ctx, due, i, 100); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAddSync is BenchmarkAdd under SyncAdd from 16 goroutines
// (group commit: each fsync covers the Adds that arrived meanwhile).
func BenchmarkAddSync(b *testing.B) {
	w, err := Open(b.TempDir(), &Options{SyncAdd: true})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			due := now.Add(time.Duration(rng.Int64N(int64(72 * time.Hour))))
			if err := w.Add(context.Background(), due, 1, 100); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPending adds 2^20 timers spread over 3 days (ahead of the
// lookahead, so none is loaded) per iteration and reports what holding
// them costs: heap bytes and disk bytes per pending timer, Add time, and
// the time to reopen the wheel, cleanly closed and after a crash. Run
// with -benchtime=1x.
func BenchmarkPending(b *testing.B) {
	const n = 1 << 20
	for b.Loop() {
		dir := b.TempDir()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		w, err := Open(dir, &Options{})
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(2, 2))
		now := time.Now().Add(time.Minute)
		start := time.Now()
		for i := range int64(n) {
			due := now.Add(time.Duration(rng.Int64N(int64(71 * time.Hour))))
			if err := w.Add(context.Background(), due, i, 100); err != nil {
				b.Fatal(err)
			}
		}
		addNs := float64(time.Since(start).Nanoseconds()) / n
		runtime.GC()
		runtime.ReadMemStats(&after)
		s := w.Stats()
		if s.Pending != n {
			b.Fatalf("pending %d, want %d", s.Pending, n)
		}
		heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		crashed := b.TempDir()
		copyDir(b, dir, crashed) // what kill -9 leaves: not clean, nothing past the last checkpoint trusted
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(dir, "wheel"))
		disk := float64(s.LogBytes+st.Size()) / n
		reopen := timeOpen(b, dir, n)
		recovery := timeOpen(b, crashed, n)
		b.ReportMetric(float64(recovery.Milliseconds()), "recover-ms")
		b.ReportMetric(heap, "heap-B/timer")
		b.ReportMetric(disk, "disk-B/timer")
		b.ReportMetric(addNs, "add-ns/timer")
		b.ReportMetric(float64(s.MemoryBytes), "wheel-heap-B")
		b.ReportMetric(float64(reopen.Milliseconds()), "reopen-ms")
	}
}

// timeOpen opens dir, checks that n timers are pending and closes it; it
// returns how long Open took.
func timeOpen(b *testing.B, dir string, n int64) time.Duration {
	start := time.Now()
	w, err := Open(dir, &Options{})
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	if s := w.Stats(); s.Pending != n {
		b.Fatalf("%s: pending %d after Open, want %d", dir, s.Pending, n)
	}
	w.Close()
	return took
}

// BenchmarkDeliver measures reading timers back from disk and delivering
// them: b.N timers already due, delivered in batches, ns per timer.
func BenchmarkDeliver(b *testing.B) {
	w, err := Open(b.TempDir(), &Options{Slots: 3600})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	past := time.Now().Add(-time.Second)
	for i := range b.N {
		if err := w.Add(context.Background(), past, int64(i), 1); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := 0
	b.ReportAllocs()
	b.ResetTimer()
	err = w.Run(ctx, func(batch []Entry) error {
		if got += len(batch); got >= b.N {
			cancel()
		}
		return nil
	})
	if err != context.Canceled {
		b.Fatal(err)
	}
}
