package broker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/apogeemq/apogee/remoting/code"
	"github.com/apogeemq/apogee/store"
)

// BenchmarkSendOverTCP measures the broker's send path end to end over loopback: 8 goroutines send
// 1 KiB messages synchronously through one connection (as one client process does), ASYNC_FLUSH.
// The client side is Apogee's transport, so the figure is the broker's cost, not a client library's.
func BenchmarkSendOverTCP(b *testing.B) {
	benchSend(b, store.AsyncFlush, 8)
}

// BenchmarkSendOverTCPSyncFlush is the same with SYNC_FLUSH and 64 senders (group commit).
func BenchmarkSendOverTCPSyncFlush(b *testing.B) {
	benchSend(b, store.SyncFlush, 64)
}

func benchSend(b *testing.B, flush store.FlushDiskType, senders int) {
	tb := openTestBrokerTB(b, "", func(o *Options) { o.Store.FlushDiskType = flush })
	req := sendRequest("Bench", 0, string(make([]byte, 1024)), map[string]string{"UNIQ_KEY": "X"})
	ctx := context.Background()
	if resp, err := tb.cl.Invoke(ctx, tb.Addr(), req); err != nil || resp.ResponseCode() != code.Success {
		b.Fatalf("warm-up send: %v", err)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan struct{}, senders)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				resp, err := tb.cl.Invoke(ctx, tb.Addr(), req)
				if err != nil || resp.ResponseCode() != code.Success {
					b.Errorf("send: %v %v", err, resp)
					return
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
