package broker

import (
	"context"
	"strconv"
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

// BenchmarkPullOverTCP measures the pull path: 4 goroutines each drain one queue of 1 KiB messages,
// 32 per pull, through one connection. b.N is the number of messages read.
func BenchmarkPullOverTCP(b *testing.B) {
	tb := openTestBrokerTB(b, "", nil)
	ctx := context.Background()
	const queues = 4
	per := b.N/queues + 1
	req := sendRequest("PullBench", 0, string(make([]byte, 1024)), nil)
	for q := range queues {
		req.ExtFields.Set("queueId", strconv.Itoa(q))
		for range per {
			if resp, err := tb.cl.Invoke(ctx, tb.Addr(), req); err != nil || resp.ResponseCode() != code.Success {
				b.Fatalf("fill: %v", err)
			}
		}
	}
	for q := range queues {
		for tb.store.MaxOffset("PullBench", int32(q)) < int64(per) {
			time.Sleep(time.Millisecond)
		}
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := int64(0); off < int64(per); {
				resp, err := tb.cl.Invoke(ctx, tb.Addr(), pullRequest("pb", "PullBench", q, off, 0, "*"))
				if err != nil || resp.ResponseCode() != code.Success {
					b.Errorf("pull: %v %v", err, resp)
					return
				}
				off, _ = strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64)
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(queues*per)/time.Since(start).Seconds(), "msgs/s")
}
