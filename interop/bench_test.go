package interop

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// BenchmarkOfficialClientSyncSend measures the official Go client's synchronous send throughput
// against `apogee dev` (ASYNC_FLUSH): 8 goroutines, 1 KiB messages. Client and server share the
// machine. Run without -race:
//
//	go test -run '^$' -bench OfficialClientSyncSend -benchtime 20000x ./
func BenchmarkOfficialClientSyncSend(b *testing.B) {
	dc := startDev(b, "", nil)
	p := newProducer(b, dc.ns)
	body := make([]byte, 1024)
	ctx := context.Background()
	if _, err := p.SendSync(ctx, primitive.NewMessage("BenchSync", body)); err != nil { // creates the topic
		b.Fatal(err)
	}
	const workers = 8
	var next sync.WaitGroup
	work := make(chan struct{}, workers)
	b.SetBytes(1024)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < workers; w++ {
		next.Add(1)
		go func() {
			defer next.Done()
			for range work {
				if _, err := p.SendSync(ctx, primitive.NewMessage("BenchSync", body)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		work <- struct{}{}
	}
	close(work)
	next.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
