package timer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/apogeemq/apogee/store/vfs"
	"github.com/apogeemq/apogee/store/vfs/crashfs"
)

// TestPowerLoss cuts the power (every write since its file's last fsync is
// undone) while goroutines Add under SyncAdd and Run delivers: after
// reopening, every timer whose Add returned nil is delivered, whatever the
// wheel file, the log and the checkpoint each kept.
func TestPowerLoss(t *testing.T) {
	for seed := range 6 {
		synctest.Test(t, func(t *testing.T) {
			dir := t.TempDir()
			fs := crashfs.Wrap(vfs.Default)
			fs.NoMap = true // writes through a mapping are not simulated
			o := testOptions()
			o.FS, o.SyncAdd = fs, true
			w, err := Open(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			r := startRun(w, nil)
			start := time.Now()
			var mu sync.Mutex
			acked := make(map[int64]bool)
			var count atomic.Int64
			crashAt := int64(100 + seed*150)
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						ref := int64(g)<<32 | int64(i)
						due := start.Add(time.Duration((i*37+g*11)%3000-500) * time.Millisecond)
						if err := w.Add(context.Background(), due, ref, 0); err != nil {
							return
						}
						mu.Lock()
						acked[ref] = true
						mu.Unlock()
						if count.Add(1) == crashAt {
							fs.Crash()
						}
						if i%7 == 0 {
							time.Sleep(time.Millisecond)
						}
					}
				})
			}
			wg.Wait()
			r.stop()
			<-r.done
			w.Close() // fails: the files are gone with the process
			delivered := make(map[int64]bool)
			for _, d := range r.deliveries() {
				delivered[d.Ref] = true
			}

			w = openT(t, dir, testOptions())
			r = startRun(w, nil)
			time.Sleep(5 * time.Second)
			r.stop()
			<-r.done
			for _, d := range r.deliveries() {
				delivered[d.Ref] = true
			}
			lost := 0
			for ref := range acked {
				if !delivered[ref] {
					lost++
				}
			}
			if lost > 0 {
				t.Fatalf("seed %d: %d of %d acknowledged timers lost", seed, lost, len(acked))
			}
			t.Logf("seed %d: %d timers acknowledged before the power cut, all delivered", seed, len(acked))
			w.Close()
		})
	}
}
