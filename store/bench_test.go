package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apogeemq/apogee/message"
	"github.com/apogeemq/apogee/store/vfs"
)

// benchMessage is a message with a realistic set of properties.
func benchMessage(size int) *message.Message {
	return newMsg("BenchTopic", 0, make([]byte, size), "TagA", "", "C0A8000100002A9F0000000000000000")
}

func reportRates(b *testing.B, msgs int64, bytes int64) {
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(msgs)/secs, "msgs/s")
	b.ReportMetric(float64(bytes)/secs/1e6, "MB/s")
}

// processCPU returns the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per operation since since, all
// goroutines included: on a shared machine it varies much less than the
// elapsed time, which depends on what else runs.
func reportCPU(b *testing.B, since time.Duration, ops int64) {
	b.ReportMetric(float64(processCPU()-since)/float64(max(ops, 1)), "cpu-ns/op")
}

// BenchmarkRawWrite is the baseline for BenchmarkAppendAsync: sequential
// buffered writes of the same sizes into the same kind of directory.
func BenchmarkRawWrite(b *testing.B) {
	for _, size := range []int{128, 1 << 10, 4 << 10, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			n := int64(0)
			cpu := processCPU()
			for b.Loop() {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				n++
			}
			reportCPU(b, cpu, n)
			reportRates(b, n, n*int64(size))
		})
	}
}

// BenchmarkRawFdatasync is the baseline for BenchmarkAppendSync: append a
// group of bytes and fdatasync, as one group commit does.
func BenchmarkRawFdatasync(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 64 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			f, err := vfs.Default.OpenFile(filepath.Join(b.TempDir(), "raw"), os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			f.Allocate(1 << 30)
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			off := int64(0)
			for b.Loop() {
				if _, err := f.WriteAt(buf, off); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				off += int64(size)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func benchStore(b *testing.B, flush FlushDiskType) *Store {
	return benchStoreFS(b, flush, nil)
}

func benchStoreFS(b *testing.B, flush FlushDiskType, fs vfs.FS) *Store {
	s, err := Open(b.TempDir(), &Options{FS: fs, FlushDiskType: flush, IndexSlots: 1 << 16, IndexEntries: 1 << 22})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkAppendAsync appends from one goroutine under AsyncFlush.
func BenchmarkAppendAsync(b *testing.B) {
	for _, size := range []int{128, 1 << 10, 4 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			s := benchStore(b, AsyncFlush)
			m := benchMessage(size)
			rec := int64(message.EncodedSize(m))
			b.SetBytes(rec)
			n := int64(0)
			cpu := processCPU()
			for b.Loop() {
				if res, err := s.Append(context.Background(), m); err != nil || res.Status != PutOK {
					b.Fatal(res.Status, err)
				}
				n++
			}
			reportCPU(b, cpu, n)
			reportRates(b, n, n*rec)
		})
	}
}

// BenchmarkAppendVisible appends 128-byte messages from one goroutine
// under AsyncFlush and waits after each until it is readable by queue
// offset, woken by Listener.MessageArrived as the broker wakes a long-polling
// pull: every dispatch batch holds one message, the case of synchronous
// producers at a moderate rate.
func BenchmarkAppendVisible(b *testing.B) {
	arrived := make(chan struct{}, 1)
	s, err := Open(b.TempDir(), &Options{FlushDiskType: AsyncFlush, IndexSlots: 1 << 16, IndexEntries: 1 << 22,
		Listener: EventListener{MessageArrived: func(string, int32, int64) {
			select {
			case arrived <- struct{}{}:
			default:
			}
		}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	m := benchMessage(128)
	rec := int64(message.EncodedSize(m))
	b.SetBytes(rec)
	b.ReportAllocs()
	n := int64(0)
	cpu := processCPU()
	for b.Loop() {
		res, err := s.Append(context.Background(), m)
		if err != nil || res.Status != PutOK {
			b.Fatal(res.Status, err)
		}
		for s.MaxOffset("BenchTopic", 0) <= res.QueueOffset {
			<-arrived
		}
		n++
	}
	reportCPU(b, cpu, n)
	reportRates(b, n, n*rec)
}

// BenchmarkAppendPaced appends 128-byte messages from one goroutine under
// AsyncFlush and spins for gap of thread CPU time after each (time.Sleep is
// far too coarse here), so the dispatcher finds its list empty between
// appends, as with synchronous producers at a moderate rate. cpu-ns/op
// leaves out the spinning, so it is the cost of storing and dispatching one
// message, all goroutines included.
func BenchmarkAppendPaced(b *testing.B) {
	if _, ok := threadCPU(); !ok {
		b.Skip("no thread CPU clock")
	}
	for _, gap := range []time.Duration{20 * time.Microsecond, 100 * time.Microsecond} {
		b.Run(fmt.Sprintf("gap=%v", gap), func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			s := benchStore(b, AsyncFlush)
			m := benchMessage(128)
			rec := int64(message.EncodedSize(m))
			b.SetBytes(rec)
			b.ReportAllocs()
			n, spun := int64(0), int64(0)
			cpu := processCPU()
			for b.Loop() {
				if res, err := s.Append(context.Background(), m); err != nil || res.Status != PutOK {
					b.Fatal(res.Status, err)
				}
				t0, _ := threadCPU()
				t := t0
				for t-t0 < int64(gap) {
					t, _ = threadCPU()
				}
				spun += t - t0
				n++
			}
			b.ReportMetric(float64(int64(processCPU()-cpu)-spun)/float64(max(n, 1)), "cpu-ns/op")
			reportRates(b, n, n*rec)
		})
	}
}

// BenchmarkAppendSync appends 1 KiB messages under SyncFlush from 1, 16 and
// 64 goroutines; fsyncs/s and msgs/fsync show the group commit at work.
func BenchmarkAppendSync(b *testing.B) {
	for _, appenders := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("1KiB-appenders=%d", appenders), func(b *testing.B) {
			benchAppendSync(b, appenders, nil)
		})
	}
}

func benchAppendSync(b *testing.B, appenders int, fs vfs.FS) {
	{
		{
			s := benchStoreFS(b, SyncFlush, fs)
			rec := int64(message.EncodedSize(benchMessage(1 << 10)))
			b.SetBytes(rec)
			syncs0, nanos0 := s.syncs.Load(), s.syncNanos.Load()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range appenders {
				wg.Go(func() {
					m := benchMessage(1 << 10)
					for next.Add(1) <= int64(b.N) {
						if res, err := s.Append(context.Background(), m); err != nil || res.Status != PutOK {
							b.Error(res.Status, err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			syncs := s.syncs.Load() - syncs0
			reportRates(b, int64(b.N), int64(b.N)*rec)
			b.ReportMetric(float64(syncs)/b.Elapsed().Seconds(), "fsyncs/s")
			b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "msgs/fsync")
			b.ReportMetric(float64(s.syncNanos.Load()-nanos0)/float64(max(syncs, 1))/1e3, "µs/fsync")
		}
	}
}

// BenchmarkGetMessages reads 32-message batches of 1 KiB messages the way
// the pull path does; -benchmem shows no allocation per batch.
func BenchmarkGetMessages(b *testing.B) {
	s := benchStore(b, AsyncFlush)
	const total = 20000
	for range total {
		if _, err := s.Append(context.Background(), benchMessage(1<<10)); err != nil {
			b.Fatal(err)
		}
	}
	waitDispatched(s)
	var res GetResult
	off := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.GetMessages("BenchTopic", 0, off, 32, nil, &res); err != nil || res.Status != Found || len(res.Records) != 32 {
			b.Fatal(res.Status, err, len(res.Records))
		}
		b.SetBytes(int64(len(res.Body)))
		off = (off + 32) % (total - 32)
	}
	b.ReportMetric(float64(b.N*32)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRecover1GiB measures Open after an unclean stop with 1 GiB of
// commit log past the checkpoint: every record is re-validated (size,
// magic, CRC, position) and redispatched; with rebuild the consume queues
// and index are rebuilt from nothing.
func BenchmarkRecover1GiB(b *testing.B) {
	dir := b.TempDir()
	opts := &Options{IndexSlots: 1 << 20, IndexEntries: 2 << 20}
	s, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	m := benchMessage(1 << 10)
	for s.MaxCommitLogOffset() < 1<<30 {
		if _, err := s.Append(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
	size := s.MaxCommitLogOffset()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for _, rebuild := range []bool{false, true} {
		b.Run(fmt.Sprintf("rebuild=%t", rebuild), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				b.StopTimer()
				os.Remove(filepath.Join(dir, checkpointFile))
				if rebuild {
					os.RemoveAll(filepath.Join(dir, consumeQueueDir))
					os.RemoveAll(filepath.Join(dir, indexDir))
				}
				b.StartTimer()
				s, err := Open(dir, opts)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if s.Recovery().To != size || s.Recovery().From != 0 {
					b.Fatalf("recovered %+v, want 0..%d", s.Recovery(), size)
				}
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N)*float64(1<<30)/float64(size), "s/GiB")
		})
	}
	_ = time.Second
}
